"""WebDataset-style tar shards as a training format, read by position (bench/data/prepare.py writes them).

A shard is a plain tar whose members are grouped into samples by key (the name up to its first dot):
`000000123.mp4` (or .jpg/.png/...) holds the media, `000000123.json` the texts
({"query", "target", "candidates"?, "label"?}), the layout the `webdataset` library reads and writes.

Prepared shards (`python -m bench.data.prepare --frames T --size S`) store each sample's clip at the
shape a run reads, so that the loader decodes T small frames instead of seeking through a long, large
video. A prepared shard is read only at its own shape (checked when the data is opened).

The suite reads shards itself rather than through `webdataset`: its pipelines stream (shuffle buffers,
iterable datasets), while this loader needs any sample as a pure function of its global position, so
that resume is one integer and the rank layout is exact. The standard library's tarfile gives each
member's offset once (an index of the shard's headers); a sample is then one read at that offset, and
videos decode from memory through the same seeking reader as files (bench/data/video.py).
"""

from __future__ import annotations

import glob
import json
import tarfile
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
