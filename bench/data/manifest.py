"""Real data at paper scale: a JSONL manifest of training triplets, decoded with PyAV.

One JSON object a line:
    {"video": "clips/a.mp4", "query": "...", "target": "...", "candidates": [...], "label": 3}
or "image" instead of "video" (the image is repeated to fill the clip, as in the paper). Paths are
relative to the manifest's folder. T frames are sampled uniformly over the video, the short side is
resized to `size` and the centre cropped to size x size, by the seeking reader the eval sets use
(bench/data/video.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.config import ManifestConfig
from bench.data.video import read_clip, read_image


class ManifestError(ValueError):
    """A manifest line or the file it names is unusable; the message names both."""


@dataclass(frozen=True)
class Record:
    line: int
    path: Path
    is_image: bool
    query: str
    target: str
    candidates: tuple[str, ...] = ()
    label: int | None = None


def parse_manifest(path: Path, on_error: str = "fail") -> tuple[list[Record], list[str]]:
    """The records of a manifest and, with on_error='skip', the messages of the lines skipped."""
    records, skipped = [], []
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("a line must be a JSON object")
            if ("video" in obj) == ("image" in obj):
                raise ValueError("a line needs exactly one of 'video' or 'image'")
            if not isinstance(obj.get("target"), str):
                raise ValueError("'target' must be a string")
            rel = obj.get("video", obj.get("image"))
            records.append(Record(n, (path.parent / rel).resolve(), "image" in obj, str(obj.get("query", "")),
                                  obj["target"], tuple(obj.get("candidates", ())), obj.get("label")))
        except (ValueError, TypeError) as e:
            msg = f"{path}:{n}: {e}"
            if on_error == "fail":
                raise ManifestError(msg) from None
            skipped.append(msg)
    if not records:
        raise ManifestError(f"{path}: no usable lines")
    return records, skipped


@dataclass
class ManifestSamples:
    """Global position k -> a decoded sample; the order is a per-epoch permutation from the seed.
    A file that fails to decode fails the run, or (on_error='skip') is replaced by the next record
    and counted, so that every model still sees the same sequence."""

    cfg: ManifestConfig
    seed: int
    records: list[Record] = field(init=False)
    skipped_lines: list[str] = field(init=False)
    failed_files: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self):
        self.records, self.skipped_lines = parse_manifest(Path(self.cfg.path), self.cfg.on_error)
        self._order: tuple[int, np.ndarray] | None = None

    def _record_index(self, k: int) -> int:
        epoch, pos = divmod(k, len(self.records))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch, 31]).permutation(len(self.records)))
        return int(self._order[1][pos])

    def load(self, rec: Record) -> np.ndarray:
        try:
            if rec.is_image:
                return read_image(rec.path, self.cfg.frames, self.cfg.size)
            return read_clip(rec.path, self.cfg.frames, self.cfg.size)
        except Exception as e:  # any decoder failure: name the manifest line and the file
            raise ManifestError(f"{self.cfg.path}:{rec.line}: cannot decode {rec.path}: {e}") from None

    def __getitem__(self, k: int) -> dict[str, Any]:
        i = self._record_index(k)
        for attempt in range(len(self.records)):
            rec = self.records[(i + attempt) % len(self.records)]
            try:
                video = self.load(rec)
                break
            except ManifestError as e:
                if self.cfg.on_error == "fail":
                    raise
                self.failed_files[str(rec.path)] = str(e)
        else:
            raise ManifestError(f"{self.cfg.path}: no record could be decoded")
        return {"video": video, "query": rec.query, "target": rec.target, "index": i, "position": k,
                "kind": "manifest"}

    def caption_texts(self, n: int) -> list[str]:
        """The distinct targets of the first n caption records (no candidates: not a question's answer), in
        file order: what a Y-decoder learns from."""
        texts = [r.target for r in self.records if not r.candidates][:n]
        return list(dict.fromkeys(texts))

    def report(self) -> dict[str, Any]:
        """What was skipped: bad lines at parse time and files that failed to decode."""
        return {"skipped_lines": len(self.skipped_lines), "failed_files": len(self.failed_files),
                "examples": (self.skipped_lines + list(self.failed_files.values()))[:5]}
