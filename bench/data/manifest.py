"""Real training data: JSONL manifests and tar shards, alone or as a weighted mixture, read by position.

A manifest has one JSON object a line:
    {"video": "clips/a.mp4", "query": "...", "target": "...", "candidates": [...], "label": 3}
or "image" instead of "video" (the image is repeated to fill the clip, as in the paper). Paths are
relative to the manifest's folder. Shards hold the same samples in tar files (bench/data/shards.py).
T frames are sampled uniformly over the video, the short side is resized to `size` and the centre
cropped to size x size, by the seeking reader the eval sets use (bench/data/video.py).

A mixture (data.mixture, or a stage's datasets) names datasets by registry name, dataset folder (its
dataset.yaml's `train: {manifest: ...}` or `train: {shards: ...}`), manifest file, or shard folder or
glob, each with a weight. Sample k is a pure function of k: positions are dealt to datasets in blocks of
BLOCK positions, each dataset's share of a block fixed by its weight and spread evenly through it; each
dataset is read in a fresh permutation every epoch of its own. So resume is one integer, every rank
layout sees the same sequence, and the proportions are exact at every block boundary.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.clips import CaptionClips
from bench.data.config import ManifestConfig, MixtureEntry
from bench.data.datasets import (
    DATASET_FILE,
    DatasetError,
    is_dataset_folder,
    load_registry,
    read_dataset_file,
    registry_file,
    resolve_name,
)
from bench.data.shards import VIDEO_SUFFIXES, index_shard, sample_texts, shard_paths
from bench.data.video import IMAGE_SUFFIXES, read_clip, read_image

BLOCK = 10_000  # positions a mixture deals out at a time: weights are exact to 1 / BLOCK


class ManifestError(ValueError):
    """A manifest line or the file it names is unusable; the message names both."""


@dataclass(frozen=True)
class Record:
    line: int
    path: Any  # a Path, or a shards.Member
    is_image: bool
    query: str
    target: str
    candidates: tuple[str, ...] = ()
    label: int | None = None
    prepared: tuple[int, int] | None = None  # a prepared shard's clip shape (frames, size)


def _record(n: int, media: Any, is_image: bool, texts: dict) -> Record:
    if not isinstance(texts.get("target"), str):
        raise ValueError("'target' must be a string")
    return Record(n, media, is_image, str(texts.get("query", "")), texts["target"],
                  tuple(texts.get("candidates", ())), texts.get("label"))


def _collect(items, build, where, on_error: str, what: str) -> tuple[list[Record], list[str]]:
    """Records build(*item) for items; one that raises fails (naming where(*item)) or, with on_error='skip',
    is skipped and its message kept. Locations are formatted only for the items that fail."""
    records, skipped = [], []
    for item in items:
        try:
            records.append(build(*item))
        except (ValueError, TypeError) as e:
            if on_error == "fail":
                raise ManifestError(f"{where(*item)}: {e}") from None
            skipped.append(f"{where(*item)}: {e}")
    if not records:
        raise ManifestError(f"{what}: no usable samples")
    return records, skipped


def parse_manifest(path: Path, on_error: str = "fail") -> tuple[list[Record], list[str]]:
    """The records of a manifest and, with on_error='skip', the messages of the lines skipped."""
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")

    def line(n: int, raw: str) -> Record:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("a line must be a JSON object")
        if ("video" in obj) == ("image" in obj):
            raise ValueError("a line needs exactly one of 'video' or 'image'")
        return _record(n, (path.parent / obj.get("video", obj.get("image"))).resolve(), "image" in obj, obj)

    with open(path) as f:
        items = ((n, raw) for n, raw in enumerate(f, start=1) if raw.strip())
        return _collect(items, line, lambda n, raw: f"{path}:{n}", on_error, str(path))


def read_shard_records(spec: str | Path, on_error: str = "fail") -> tuple[list[Record], list[str]]:
    """The records of tar shards (a folder, glob or file): one per key with a media member and a .json."""

    paths = shard_paths(spec)
    if not paths:
        raise ManifestError(f"{spec}: no tar shards found")

    def sample(n: int, path: Path, key: str, members: dict) -> Record:
        media = [m for suffix, m in members.items() if suffix in VIDEO_SUFFIXES + IMAGE_SUFFIXES]
        if len(media) != 1 or ".json" not in members:
            raise ValueError("a sample needs one media member (video or image) and a .json")
        is_image = Path(media[0].name).suffix.lower() in IMAGE_SUFFIXES
        texts = sample_texts(members[".json"])
        record = _record(n, media[0], is_image, texts)
        shape = texts.get("prepared")
        return replace(record, prepared=(shape["frames"], shape["size"])) if shape else record

    samples = ((path, key, members) for path in paths for key, members in index_shard(path))
    items = ((n, *sample_) for n, sample_ in enumerate(samples, start=1))
    return _collect(items, sample, lambda n, path, key, members: f"{path}:{key}", on_error, str(spec))


def locate_dataset(name: str) -> tuple[str, Path | str]:
    """A training dataset's name -> ("manifest", file) or ("shards", folder or glob)."""
    registry = load_registry()
    target: Path | str = resolve_name(name, registry) or name
    p = Path(target)
    if is_dataset_folder(p):
        try:
            train = read_dataset_file(p).get("train") or {}
        except DatasetError as e:
            raise ManifestError(str(e)) from None
        if "manifest" in train:
            return "manifest", p / train["manifest"]
        if "shards" in train:
            return "shards", str(p / train["shards"])
        raise ManifestError(f"{p / DATASET_FILE}: no 'train' section with a 'manifest' or 'shards' file "
                            "(docs/data.md)")
    if p.suffix == ".jsonl" or p.is_file() and p.suffix != ".tar":
        return "manifest", p
    if p.is_dir() or p.suffix == ".tar" or any(c in str(target) for c in "*?["):
        return "shards", target
    if name not in registry and "/" not in name:
        raise ManifestError(f"training dataset {name!r} is not in the dataset registry {registry_file()}, nor a path")
    raise ManifestError(f"training dataset {name!r}: {p} does not exist")


def read_dataset(name: str, on_error: str = "fail") -> tuple[list[Record], list[str]]:
    kind, where = locate_dataset(name)
    return parse_manifest(Path(where), on_error) if kind == "manifest" else read_shard_records(where, on_error)


def load_record(rec: Record, frames: int, size: int, where: str = "") -> np.ndarray:
    """A record's clip, (frames, size, size, 3) uint8; a failure names the record and its file."""
    source = rec.path.blob() if hasattr(rec.path, "blob") else rec.path
    try:
        return read_image(source, frames, size) if rec.is_image else read_clip(source, frames, size)
    except Exception as e:  # any decoder failure: name the manifest line and the file
        raise ManifestError(f"{where}:{rec.line}: cannot decode {rec.path}: {e}") from None


class RecordClips:
    """Visuals (bench.eval.sets.kinds) over manifest records: clip i is record i, decoded as training decodes it."""

    def __init__(self, records: list[Record], frames: int, size: int, where: str):
        self.records, self.frames, self.size, self.where = records, frames, size, where

    def __len__(self) -> int:
        return len(self.records)

    def clip(self, i: int) -> np.ndarray:
        return load_record(self.records[i], self.frames, self.size, self.where)

    def identity(self) -> tuple:
        h = hashlib.sha256("".join(f"{r.path}\x00{r.line}\x01" for r in self.records).encode())
        return "manifest_records", h.hexdigest(), self.frames, self.size


def check_dataset(name: str, on_error: str = "fail", probes: int = 8) -> None:
    """A training dataset resolves and every line parses; every file it names exists; and `probes` samples
    spread over it (the first and the last among them) decode, at their prepared shape if they have one.
    With on_error="skip" (bad lines and unreadable files are passed over in training) only a dataset with
    no usable line, no existing file or no decodable probe fails."""
    records, _ = read_dataset(name, on_error)
    missing = [r for r in records if isinstance(r.path, Path) and not r.path.is_file()]
    if missing and (on_error == "fail" or len(missing) == len(records)):
        shown = ", ".join(f"line {r.line}: {r.path}" for r in missing[:3])
        raise ManifestError(f"{len(missing):,} of {len(records):,} files it names do not exist ({shown}"
                            f"{', ...' if len(missing) > 3 else ''})")
    picks = sorted({round(i * (len(records) - 1) / max(1, probes - 1)) for i in range(min(probes, len(records)))})
    failures = []
    for i in picks:
        try:
            load_record(records[i], *(records[i].prepared or (2, 16)), name)
        except ManifestError as e:
            if on_error == "fail":
                raise
            failures.append(str(e))
    if failures and len(failures) == len(picks):
        raise ManifestError(f"none of {len(picks)} samples probed decodes ({failures[0]})")


def block_layout(weights: list[float], block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dataset of each slot of a block, each slot's rank among its dataset's slots, slots per dataset):
    counts by largest remainder, slots spread evenly (each dataset's slots at (j + 0.5) / count)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = w / w.sum() * block
    counts = np.floor(exact).astype(np.int64)
    for d in np.argsort(-(exact - counts), kind="stable")[: block - counts.sum()]:
        counts[d] += 1
    keys = [((j + 0.5) / c, d, j) for d, c in enumerate(counts) for j in range(c)]
    keys.sort()
    owner = np.array([d for _, d, _ in keys], dtype=np.int64)
    rank = np.array([j for _, _, j in keys], dtype=np.int64)
    return owner, rank, counts


@dataclass
class ManifestSamples:
    """Global position k -> a decoded sample of the mixture (one manifest when data.mixture is empty).

    A file that fails to decode fails the run (on_error='fail', naming the file), or is replaced by the next
    record of its dataset (on_error='skip'), deterministically, so every model still sees the same
    sequence; the sample then carries "replaced": the files and reasons, for the run to log and count."""

    cfg: ManifestConfig
    seed: int
    mixture: tuple = ()
    sources: list[tuple[str, float, list[Record]]] = field(init=False)
    skipped_lines: list[str] = field(init=False)
    failed_files: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self):
        entries = list(self.mixture) or [MixtureEntry(self.cfg.path, 1.0)]
        self.sources, self.skipped_lines = [], []
        for e in entries:
            records, skipped = read_dataset(e.name, self.cfg.on_error)
            shape = records[0].prepared
            if shape and shape != (self.cfg.frames, self.cfg.size):
                raise ManifestError(f"{e.name}: shards prepared as clips of {shape[0]} frames at {shape[1]} px, but "
                                    f"this stage reads {self.cfg.frames} frames at {self.cfg.size} px; prepare them "
                                    "again (python -m bench.data.prepare --frames --size) or read the originals")
            self.sources.append((e.name, e.weight, records))
            self.skipped_lines += skipped
        self.records = self.sources[0][2] if len(self.sources) == 1 else [r for _, _, rs in self.sources for r in rs]
        self._owner, self._rank, self._counts = block_layout([w for _, w, _ in self.sources])
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def _order(self, d: int, epoch: int) -> np.ndarray:
        if (d, epoch) not in self._orders:
            n = len(self.sources[d][2])
            # one dataset keeps the key of a single manifest (its order is unchanged by the mixture code)
            key = [self.seed, epoch, 31] if len(self.sources) == 1 else [self.seed, d, epoch, 31]
            if len(self._orders) > 8:
                self._orders.clear()
            self._orders[(d, epoch)] = np.random.default_rng(key).permutation(n)
        return self._orders[(d, epoch)]

    def locate(self, k: int) -> tuple[int, int]:
        """(dataset, record index) of position k."""
        block, slot = divmod(k, BLOCK)
        d = int(self._owner[slot])
        j = block * int(self._counts[d]) + int(self._rank[slot])
        epoch, pos = divmod(j, len(self.sources[d][2]))
        return d, int(self._order(d, epoch)[pos])

    def load(self, rec: Record, where: str = "") -> np.ndarray:
        return load_record(rec, self.cfg.frames, self.cfg.size, where or self.cfg.path)

    def __getitem__(self, k: int) -> dict[str, Any]:
        d, i = self.locate(k)
        name, _, records = self.sources[d]
        replaced = []
        for attempt in range(len(records)):
            rec = records[(i + attempt) % len(records)]
            try:
                video = self.load(rec, name)
                break
            except ManifestError as e:
                if self.cfg.on_error == "fail":
                    raise
                self.failed_files[str(rec.path)] = str(e)
                replaced.append(str(e))
        else:
            raise ManifestError(f"{name}: no record could be decoded")
        sample = {"video": video, "query": rec.query, "target": rec.target, "index": i, "position": k,
                  "kind": "manifest", "dataset": name}
        if replaced:
            sample["replaced"] = replaced
        return sample

    def training_clips(self) -> RecordClips:
        """Every record the samples draw from, in file order (every dataset of the mixture in turn; not the
        seed's order): what statistics of the training data are measured on."""
        return RecordClips(self.records, self.cfg.frames, self.cfg.size, self.cfg.path or "mixture")

    def caption_texts(self, n: int) -> list[str]:
        """The distinct targets of the first n caption records (no candidates: not a question's answer), in
        file order: what a Y-decoder learns from."""
        texts = [r.target for r in self.records if not r.candidates][:n]
        return list(dict.fromkeys(texts))

    def caption_clips(self, n: int) -> CaptionClips:
        """The records of the first n caption targets (as caption_texts), each with its own query and its
        target as its one reference."""
        records = [r for r in self.records if not r.candidates][:n]
        return CaptionClips(RecordClips(records, self.cfg.frames, self.cfg.size, self.cfg.path or "mixture"),
                            [r.query for r in records], [[r.target] for r in records])

    def mixture_summary(self) -> list[dict[str, Any]]:
        """The mixture, for the run's parity block: each dataset's name, weight, share, records and a hash
        of its records (what twins must share)."""
        out = []
        for (name, weight, records), count in zip(self.sources, self._counts):
            h = hashlib.sha256()
            for r in records:
                h.update(f"{r.path}\x00{r.query}\x00{r.target}\x01".encode())
            out.append({"name": name, "weight": weight, "share": int(count) / BLOCK, "records": len(records),
                        "sha": h.hexdigest()[:16]})
        return out

    def report(self) -> dict[str, Any]:
        """What was skipped: bad lines at parse time and files that failed to decode."""
        return {"skipped_lines": len(self.skipped_lines), "failed_files": len(self.failed_files),
                "examples": (self.skipped_lines + list(self.failed_files.values()))[:5]}
