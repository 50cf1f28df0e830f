"""WebDataset-style tar shards as a training format: read by position, written from a manifest.

    python -m bench.data.shards --manifest train/manifest.jsonl --out train_shards [--per-shard 1000]
    python -m bench.data.shards --bench                  # clips/s per loader worker: mp4 files against shards

A shard is a plain tar whose members are grouped into samples by key (the name up to its first dot):
`000000123.mp4` (or .jpg/.png/...) holds the media, `000000123.json` the texts
({"query", "target", "candidates"?, "label"?}), the layout the `webdataset` library reads and writes.

`--frames T --size S` prepares shards: each sample stores the clip a run reads at that shape (T frames
uniformly over the video, short side to S, centre crop; H.264, lossy unless --lossless), so that the
loader decodes T small frames instead of seeking through a long, large video. A prepared shard is read
only at its own shape (checked when the data is opened).

The suite reads shards itself rather than through `webdataset`: its pipelines stream (shuffle buffers,
iterable datasets), while this loader needs any sample as a pure function of its global position, so
that resume is one integer and the rank layout is exact. The standard library's tarfile gives each
member's offset once (an index of the shard's headers); a sample is then one read at that offset, and
videos decode from memory through the same seeking reader as files (bench/data/video.py).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.data.video import Blob

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v")


@dataclass(frozen=True)
class Member:
    """A file inside a tar shard, read by offset."""

    shard: Path
    name: str
    offset: int
    size: int

    def blob(self) -> Blob:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            return Blob(f.read(self.size), str(self))

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"


def shard_paths(spec: str | Path) -> list[Path]:
    """A folder (its *.tar, sorted), a glob, or one .tar file."""
    p = Path(spec)
    if p.is_dir():
        return sorted(p.glob("*.tar"))
    if any(c in str(spec) for c in "*?["):
        return sorted(Path(x) for x in glob.glob(str(spec)))
    return [p] if p.is_file() else []


def index_shard(path: Path) -> list[tuple[str, dict[str, Member]]]:
    """The samples of one shard in order: (key, {suffix: member})."""
    samples: dict[str, dict[str, Member]] = {}
    with tarfile.open(path) as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, dot, suffix = info.name.partition(".")
            samples.setdefault(key, {})["." + suffix.lower() if dot else ""] = Member(path, info.name, info.offset_data,
                                                                                     info.size)
    return list(samples.items())


def sample_texts(member: Member) -> dict:
    with open(member.shard, "rb") as f:
        f.seek(member.offset)
        return json.loads(f.read(member.size))


def clip_bytes(source, frames: int, size: int, lossless: bool = False) -> bytes:
    """The clip a run reads from a video or image (T frames uniformly, short side to size, centre crop),
    encoded as a small mp4: what a prepared shard stores."""
    import tempfile

    from bench.data.video import read_clip, write_video

    clip = read_clip(source, frames, size)
    with tempfile.TemporaryDirectory() as tmp:
        write_video(Path(tmp) / "clip.mp4", clip, fps=frames, lossless=lossless)
        return (Path(tmp) / "clip.mp4").read_bytes()


def write_shards(manifest: Path, out: Path, per_shard: int = 1000, frames: int | None = None,
                 size: int | None = None, lossless: bool = False) -> list[Path]:
    """One sample per manifest line, in order, per_shard samples a shard; returns the shards. With frames
    and size, each sample stores the clip a run reads at that shape ("prepared"), not the whole video:
    reading it then decodes T small frames."""
    from bench.data.manifest import parse_manifest

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
    import tempfile

    import numpy as np

    from bench.data.config import ManifestConfig
    from bench.data.manifest import ManifestSamples
    from bench.data.video import write_video

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
