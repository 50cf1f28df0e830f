"""Caches of what frozen encoders compute, shared by every run of every sweep on a machine.

- X features: the frozen X-encoder's output for every clip of a set of visuals (the training clips, or
  an eval set's clips, from the world or from files), keyed by the encoder's weight hash, its pooling,
  and the identity of the clips (the world's settings, or the files and how they are read). With it a
  training step or an evaluation neither renders, decodes nor encodes video. A clip that cannot be decoded
  (a broken file in an eval set) gets a row of zeros, and its index and error are kept beside the features
  (unreadable_clips), so the set is cached once and every run that reads it knows which clips to leave out.
- Y targets: a frozen Y-encoder's pooled output for every target text a stage can draw, and for every
  text an eval set has it encode (the hard negatives), keyed by the encoder's weight hash, its tokenizer
  settings and the texts.

Both are computed once, in a fixed order and fixed batches (so their bits do not depend on which run
built them), written atomically as .npy files under the cache folder (cache_dir) and memory-mapped
read-only, so runs in parallel share one copy through the page cache. A key names the weights and the data,
not the code or the library versions that computed them, so every open of an X-feature entry (and of the
feature statistics) encodes one clip again and compares it with the stored row: an entry built by other code
is an error naming it (StaleCacheError), never a run silently trained on features it would not compute. (The
committed records of results/example before December 2026 read such an entry: the statistics their parity
records, x_feature_norm_hash 9f2d0993c6ad5ed5, are not what any commit computes in a clean cache.)

The trainer, bench.tools.evaluate, bench.tools.perf and bench.tools.probe wire caches through the last functions of this
file only: training_samples, eval_features, attach_target_cache, attach_eval_text_cache and world_features.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bench.build_once import BuildOnce
from bench.config import REPO_ROOT
from bench.data.loader import collate
from bench.data.shapes import ShapesWorld, TrainSamples, WorldClips
from bench.data.video import VideoError
from bench.dist import barrier
from models.encoders import weight_hash
from models.protocol import frozen_text_encoder_of

if TYPE_CHECKING:  # a type only: eval sets sit above the caches
    from bench.eval.sets.kinds import Visuals

BATCH = 128


def cache_dir() -> Path:
    """Where derived artefacts (the tiny tokenizer, feature caches) live: $VLJEPA_CACHE or results/cache."""
    return Path(os.environ.get("VLJEPA_CACHE", REPO_ROOT / "results" / "cache"))


def content_key(*parts: Any) -> str:
    """A short hash of JSON-able parts: the name of a cache entry built from exactly these inputs."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _build(path: Path, rows: int, compute: Callable[[int, int], np.ndarray], rank: int, log,
           what: str, finish: Callable[[], None] | None = None) -> np.ndarray:
    """Rank 0 fills a .npy in BATCH-row chunks under a temporary name and renames it; others wait, and so do
    other jobs that want the same entry (bench/build_once.py: one builds it). Progress is logged as it goes:
    what is built, rows done, rate and time left. `finish` writes what goes beside the entry, before the
    rename: whoever sees the entry sees it too."""
    if not path.is_file() and rank == 0:
        with BuildOnce(path, path.is_file, f"the cache of {what}", log) as build:
            if build:
                _fill(path, rows, compute, log, what, build, finish)
    barrier()
    return np.load(path, mmap_mode="r")


def _fill(path: Path, rows: int, compute: Callable[[int, int], np.ndarray], log, what: str, build: BuildOnce,
          finish: Callable[[], None] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"building the cache of {what}: {rows:,} rows -> {path}")
    t0 = time.perf_counter()
    first = compute(0, min(BATCH, rows))
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, *first.shape[1:]))
    out[: len(first)] = first
    for start in range(BATCH, rows, BATCH):
        out[start:start + BATCH] = compute(start, min(start + BATCH, rows))
        rate = start / (time.perf_counter() - t0)
        build.progress(f"{start:,}/{rows:,} rows, {(rows - start) / rate / 60:.1f} min left")
        if log and start // BATCH % 50 == 0:
            log(f"cache of {what}: {start:,}/{rows:,} ({rate:,.0f} rows/s, {(rows - start) / rate / 60:.1f} min left)")
    out.flush()
    del out
    if finish:
        finish()
    os.replace(tmp, path)


class StaleCacheError(RuntimeError):
    """A cache entry holds what this code, these weights and these libraries do not compute."""


def _tolerance(x_encoder) -> float:
    """How far a clip encoded alone may sit from its row encoded in a batch (relative L2): batch shape changes
    the order of float sums, by ~1e-7 in float32 and a rounding step in bf16/fp16."""
    return 1e-4 if next(x_encoder.parameters()).dtype == torch.float32 else 2e-2


def _check_row(x_encoder, clip: np.ndarray, stored: np.ndarray, path: Path, index: int) -> None:
    """Encode one clip again and compare it with what the entry holds for it: an entry that another version of
    the code or of the libraries built (its key names weights and data, not the code) is caught here, before a
    run trains on features it would not compute itself."""
    fresh = _encode_clips(x_encoder, [clip]).double().cpu().numpy()
    ref = np.asarray(stored, dtype=np.float64).reshape(fresh.shape)
    gap = float(np.linalg.norm(fresh - ref) / max(np.linalg.norm(fresh), 1e-12))
    if not gap <= _tolerance(x_encoder):
        raise StaleCacheError(
            f"the cache entry {path} does not hold what this code computes: clip {index} encoded now differs from its "
            f"stored value by {gap:.2e} (relative L2; at most {_tolerance(x_encoder):.0e} expected). It was built by "
            "other code or other library versions under the same key. Delete it (and any file beside it with the same "
            "stem) and run again to rebuild it")


def _encode(x_encoder, visuals: Visuals, indices) -> torch.Tensor:
    """The frozen encoder's raw output for clips `indices` of `visuals`, on the encoder's device."""
    return _encode_clips(x_encoder, [visuals.clip(int(i)) for i in indices])


def _encode_clips(x_encoder, clips: list[np.ndarray]) -> torch.Tensor:
    video = collate([{"video": c} for c in clips])["video"]
    with torch.no_grad():
        return x_encoder(video.to(next(x_encoder.parameters()).device))


def _x_path(x_encoder, visuals: Visuals, cache_root: Path) -> Path:
    weight = next(x_encoder.parameters())
    key = content_key(x_encoder.weight_hash(), str(weight.dtype), x_encoder.pool, *visuals.identity())
    return cache_root / "x_features" / f"{key}.npy"


def _unreadable_file(path: Path) -> Path:
    return path.with_name(f"{path.stem}.unreadable.json")


def x_features(x_encoder, visuals: Visuals, cache_root: Path, rank: int = 0, log=None) -> np.ndarray:
    """(clips, tokens, dim) float32, memory-mapped: the encoder's output for every clip of `visuals`; zeros for
    a clip that cannot be decoded, listed beside them (unreadable_clips). The build never stops on a broken
    file: every rank waits for it, and what to do with such clips (eval.on_error) is each task's to decide."""
    path = _x_path(x_encoder, visuals, cache_root)
    failed: dict[int, str] = {}
    shape: list[int] = []  # one clip's features, learnt from the first readable clip

    def compute(a: int, b: int) -> np.ndarray:
        return _encode_readable(x_encoder, visuals, list(range(a, b)), failed, shape)

    def finish() -> None:
        side = _unreadable_file(path)
        tmp = side.with_name(f".{side.name}.{os.getpid()}")
        tmp.write_text(json.dumps({str(i): failed[i] for i in sorted(failed)}))
        os.replace(tmp, side)

    features = _build(path, len(visuals), compute, rank, log, "the frozen X-encoder's features", finish)
    skip = unreadable_clips(x_encoder, visuals, cache_root)
    first = next((i for i in range(len(visuals)) if i not in skip), None)
    if first is not None:
        _check_row(x_encoder, visuals.clip(first), features[first][None], path, first)
    return features


def unreadable_clips(x_encoder, visuals: Visuals, cache_root: Path) -> dict[int, str]:
    """The clips of a cached set that could not be decoded when it was built: index -> the error (naming the
    file). Empty for an entry built before unreadable clips were kept (its build stopped at any)."""
    side = _unreadable_file(_x_path(x_encoder, visuals, cache_root))
    return {int(k): v for k, v in json.loads(side.read_text()).items()} if side.is_file() else {}


def _encode_readable(x_encoder, visuals: Visuals, indices: list[int], failed: dict[int, str],
                     shape: list[int]) -> np.ndarray:
    """The features of clips `indices` with zeros for those that cannot be decoded (recorded in `failed`)."""
    clips, rows = [], []
    for j, i in enumerate(indices):
        try:
            clips.append(visuals.clip(i))
            rows.append(j)
        except VideoError as e:
            failed[i] = " ".join(str(e).split())  # one line: it goes into logs and records
    out = _encode_clips(x_encoder, clips).float().cpu().numpy() if clips else None
    if out is not None:
        shape[:] = out.shape[1:]
        if len(rows) == len(indices):
            return out
    elif not shape:
        shape[:] = _feature_shape(x_encoder, visuals, indices[-1] + 1)
    full = np.zeros((len(indices), *shape), np.float32)
    if out is not None:
        full[rows] = out
    return full


def _feature_shape(x_encoder, visuals: Visuals, start: int) -> tuple[int, ...]:
    """One clip's feature shape, from the first readable clip at or after `start` (when a set's first batch
    has none)."""
    for i in range(start, len(visuals)):
        try:
            clip = visuals.clip(i)
        except VideoError:
            continue
        return tuple(_encode_clips(x_encoder, [clip]).shape[1:])
    raise VideoError(f"none of the {len(visuals):,} clips of the set can be decoded")


class FeatureLookup:
    """EvalContext.features: visuals -> their cached features, each set built (or opened) once; and which of
    a set's clips could not be decoded (unreadable)."""

    def __init__(self, x_encoder, cache_root: Path, rank: int = 0, log=None):
        self.x_encoder, self.cache_root, self.rank, self.log = x_encoder, cache_root, rank, log
        self.opened: dict[str, np.ndarray] = {}

    def __call__(self, visuals: Visuals) -> np.ndarray:
        key = content_key(*visuals.identity())
        if key not in self.opened:
            self.opened[key] = x_features(self.x_encoder, visuals, self.cache_root, self.rank, self.log)
        return self.opened[key]

    def unreadable(self, visuals: Visuals) -> dict[int, str]:
        """Index -> error of every clip of `visuals` that cannot be decoded (the set is cached first)."""
        self(visuals)
        return unreadable_clips(self.x_encoder, visuals, self.cache_root)


def feature_lookup(x_encoder, cache_root: Path, rank: int = 0, log=None) -> FeatureLookup:
    """visuals -> their cached features, each set built (or opened) once: EvalContext.features."""
    return FeatureLookup(x_encoder, cache_root, rank, log)


def y_targets(text_encoder, texts: list[str], cache_root: Path, rank: int = 0, log=None) -> np.ndarray:
    """(len(texts), dim) float32 pooled outputs of a frozen text encoder, memory-mapped."""
    tok = text_encoder.tokenizer
    pipeline = text_encoder.cache_identity()  # "" for mean pooling: the keys of existing entries stand
    key = content_key(weight_hash(text_encoder.backbone), str(next(text_encoder.backbone.parameters()).dtype),
               type(tok).__name__, len(tok), text_encoder.cfg.max_tokens,
               hashlib.sha256("\n".join(texts).encode()).hexdigest(), *([pipeline] if pipeline else []))
    path = cache_root / "y_targets" / f"{key}.npy"

    def compute(a: int, b: int) -> np.ndarray:
        with torch.no_grad():
            return text_encoder.encode(texts[a:b]).float().cpu().numpy()

    return _build(path, len(texts), compute, rank, log, "the frozen Y-encoder's targets")


def attach_target_cache(model, samples: TrainSamples, rank: int = 0, log=None) -> None:
    """Give a model's frozen text encoder its cached outputs for every target text `samples` can draw (a
    no-op for a model without one: a trainable Y-encoder, or none)."""
    y = frozen_text_encoder_of(model)
    if y is not None:
        texts = samples.possible_targets()
        y.add_cache(texts, y_targets(y, texts, cache_dir(), rank, log))


def attach_eval_text_cache(model, sets: dict[str, list], rank: int = 0, log=None) -> None:
    """Give a model's frozen text encoder its cached outputs for every text its eval sets have it encode (the
    sets with `encoded_texts`: the hard negatives' anchors, paraphrases and negatives, which an evaluation
    would otherwise encode again each time). A no-op for a model without a frozen text encoder."""
    y = frozen_text_encoder_of(model)
    texts = {t for per_task in sets.values() for s in per_task if hasattr(s, "encoded_texts") for t in s.encoded_texts()}
    if y is not None and texts:
        texts = sorted(texts, key=lambda t: (len(t.split()), t))  # by length: little padding when encoded
        y.add_cache(texts, y_targets(y, texts, cache_dir(), rank, log))


def feature_statistics(x_encoder, visuals: Visuals, clips: int, cache_root: Path, rank: int = 0,
                       log=None) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, std, count): each dimension of the encoder's raw output over every token of `clips` clips spread
    evenly over `visuals` (all of them when there are fewer), accumulated in float64 in a fixed order and
    fixed batches, so every run on this encoder and data gets the same bits. Cached like the features (a
    small file): rank 0 measures, the others wait and read it."""
    weight = next(x_encoder.parameters())
    picks = np.unique(np.linspace(0, len(visuals) - 1, min(clips, len(visuals))).round().astype(np.int64))
    key = content_key("feature_stats/2", x_encoder.weight_hash(), str(weight.dtype), x_encoder.pool,
                      *visuals.identity(), len(picks))  # 2: the entry carries its first clip's features (probe)
    path = cache_root / "x_feature_stats" / f"{key}.npz"
    if not path.is_file() and rank == 0:
        t0 = time.perf_counter()
        total = squares = None
        count = 0
        for s in range(0, len(picks), BATCH):  # the feature cache's batches
            f = _encode(x_encoder, visuals, picks[s:s + BATCH]).double().flatten(0, -2)
            total = f.sum(0) if total is None else total + f.sum(0)
            squares = (f * f).sum(0) if squares is None else squares + (f * f).sum(0)
            count += len(f)
        mean = total / count
        std = (squares / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        probe = _encode(x_encoder, visuals, picks[:1]).double().cpu().numpy()
        np.savez(tmp, mean=mean.cpu().numpy(), std=std.cpu().numpy(), count=np.int64(count), probe=probe)
        os.replace(tmp, path)
        if log:
            log(f"measured the X features' statistics on {len(picks):,} training clips ({count:,} tokens) in "
                f"{time.perf_counter() - t0:.0f} s -> {path}")
    barrier()
    with np.load(path) as z:
        _check_row(x_encoder, visuals.clip(int(picks[0])), z["probe"], path, int(picks[0]))
        return z["mean"], z["std"], int(z["count"])


def fit_feature_norm(model, samples, rank: int = 0, log=None, device: torch.device | None = None) -> None:
    """Measure the standardization of a model's X features on its training clips (model.x_encoder.normalize;
    a no-op without one). `samples` is a stage's training samples (bench.data.sources.train_samples); the
    encoder runs on `device` for it (a GPU at paper scale) and goes back where it was."""
    x = getattr(model, "x_encoder", None)
    if x is None or getattr(x, "normalize", "none") == "none":
        return
    clips = getattr(samples, "samples", samples).training_clips()  # a CachedSamples wraps the samples
    home = next(x.parameters()).device
    try:
        mean, std, count = feature_statistics(x.to(device or home), clips, x.normalize_clips, cache_dir(), rank, log)
    finally:
        x.to(home)
    x.set_feature_norm(torch.from_numpy(mean).float(), torch.from_numpy(std).float(), count)


def world_features(x_encoder, world: ShapesWorld, rank: int = 0, log=None) -> np.ndarray:
    """The X-encoder's cached output for every training clip of the shapes world."""
    return x_features(x_encoder, WorldClips(world, "train"), cache_dir(), rank, log)


def training_samples(model, samples: TrainSamples, world: ShapesWorld, rank: int = 0, log=None) -> CachedSamples:
    """The world's training samples on cached X features, with the model's frozen targets cached too."""
    feats = world_features(model.x_encoder, world, rank, log)
    attach_target_cache(model, samples, rank, log)
    return CachedSamples(samples, feats)


def eval_features(model, rank: int = 0, log=None) -> FeatureLookup:
    """EvalContext.features: the model's X-encoder's cached output for an eval set's clips."""
    return feature_lookup(model.x_encoder, cache_dir(), rank, log)


class CachedSamples:
    """Training samples whose video is replaced by the cached X features of their clip."""

    def __init__(self, samples: TrainSamples, features: np.ndarray):
        self.samples, self.features = samples, features

    def __getitem__(self, k: int) -> dict:
        sample = self.samples.describe(k)
        return {"x_features": np.array(self.features[sample["index"]]), **sample}
