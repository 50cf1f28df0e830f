"""Prepare training data: convert a manifest into tar shards, and time what a loader worker reads.

    python -m bench.data.prepare --manifest train/manifest.jsonl --out train_shards [--per-shard 1000]
    python -m bench.data.prepare --manifest M --out DIR --frames 16 --size 256   # prepared shards
    python -m bench.data.prepare --bench                 # clips/s per loader worker: mp4 files against shards

The shard layout and why the suite reads it itself: bench/data/shards.py. `--frames T --size S` stores
each sample's clip at the shape a run reads (T frames uniformly over the video, short side to S, centre
crop; H.264, lossy unless --lossless), so that the loader decodes T small frames instead of seeking
through a long, large video.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.data.config import ManifestConfig
from bench.data.manifest import ManifestSamples, parse_manifest
from bench.data.video import read_clip, write_video


def clip_bytes(source, frames: int, size: int, lossless: bool = False) -> bytes:
    """The clip a run reads from a video or image (T frames uniformly, short side to size, centre crop),
    encoded as a small mp4: what a prepared shard stores."""
    clip = read_clip(source, frames, size)
    with tempfile.TemporaryDirectory() as tmp:
        write_video(Path(tmp) / "clip.mp4", clip, fps=frames, lossless=lossless)
        return (Path(tmp) / "clip.mp4").read_bytes()


def write_shards(manifest: Path, out: Path, per_shard: int = 1000, frames: int | None = None,
                 size: int | None = None, lossless: bool = False) -> list[Path]:
    """One sample per manifest line, in order, per_shard samples a shard; returns the shards. With frames
    and size, each sample stores the clip a run reads at that shape ("prepared"), not the whole video:
    reading it then decodes T small frames."""
    records, _ = parse_manifest(manifest)
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for s in range(0, len(records), per_shard):
        path = out / f"shard-{s // per_shard:06d}.tar"
        tmp = path.with_suffix(".tar.tmp")
        with tarfile.open(tmp, "w") as tar:
            for rec in records[s:s + per_shard]:
                key = f"{rec.line:09d}"
                texts = {"query": rec.query, "target": rec.target}
                if rec.candidates:
                    texts["candidates"] = list(rec.candidates)
                if rec.label is not None:
                    texts["label"] = rec.label
                if frames:
                    media = (key + ".mp4", clip_bytes(rec.path, frames, size, lossless))
                    texts["prepared"] = {"frames": frames, "size": size}
                else:
                    media = (key + Path(str(rec.path)).suffix.lower(), Path(rec.path).read_bytes())
                for name, data in (media, (key + ".json", json.dumps(texts).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        tmp.replace(path)
        shards.append(path)
    return shards


def _bench(n: int, workers_per_gpu: int, consumption: float) -> int:
    """Clips per second one loader worker reads at 16x256x256, from mp4 files and from shards."""
    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    lines = []
    print(f"writing {n} clips of 10 s, 640x360 at 30 fps (H.264 crf 23, key frame every 250) to {root}")
    base = rng.integers(0, 255, (45, 80, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    for i in range(n):
        frames = np.stack([np.roll(base, 3 * t + i, axis=1) for t in range(300)])
        write_video(root / "clips" / f"{i}.mp4", frames, 30, lossless=False, gop=250)
        lines.append({"video": f"clips/{i}.mp4", "query": "", "target": f"clip {i}"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    write_shards(root / "manifest.jsonl", root / "shards", per_shard=max(1, n // 4))
    write_shards(root / "manifest.jsonl", root / "prepared", per_shard=max(1, n // 4), frames=16, size=256)
    print(f"format\tclips/s per worker\tworkers per GPU for 5x {consumption:g} samples/s")
    for label, cfg in (("mp4 files", ManifestConfig(path=str(root / "manifest.jsonl"), frames=16, size=256)),
                       ("tar shards", ManifestConfig(path=str(root / "shards"), frames=16, size=256)),
                       ("prepared shards (16x256 clips)", ManifestConfig(path=str(root / "prepared"), frames=16,
                                                                        size=256))):
        samples = ManifestSamples(cfg, seed=0)
        samples[0]  # warm up: imports, codec
        t = time.perf_counter()
        for k in range(1, n + 1):
            samples[k]
        rate = n / (time.perf_counter() - t)
        print(f"{label}\t{rate:.1f}\t{5 * consumption / rate:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, help="the manifest to convert")
    p.add_argument("--out", type=Path, help="the folder of shards")
    p.add_argument("--per-shard", type=int, default=1000)
    p.add_argument("--frames", type=int, help="store each sample's clip at this many frames (prepared shards)")
    p.add_argument("--size", type=int, default=256, help="with --frames: the clip's size")
    p.add_argument("--lossless", action="store_true", help="with --frames: lossless RGB H.264 (large)")
    p.add_argument("--bench", action="store_true", help="time one loader worker on mp4 files and on shards")
    p.add_argument("--clips", type=int, default=40, help="clips in the benchmark")
    p.add_argument("--consumption", type=float, default=43.0,
                   help="samples/s one GPU consumes (paper preset on an H100: 21 VL-JEPA, 43 VLM)")
    args = p.parse_args(argv)
    if args.bench:
        return _bench(args.clips, 0, args.consumption)
    if not (args.manifest and args.out):
        p.error("--manifest and --out are needed (or --bench)")
    shards = write_shards(args.manifest, args.out, args.per_shard, args.frames, args.size if args.frames else None,
                          args.lossless)
    print(f"{len(shards)} shard(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
