"""The media of eval sets read from files: their clips (whole videos, segments of long videos, images,
state pairs), the checks at load that need the files themselves (a segment within its video), and the
cheap probe validation runs on a sample of every set's clips before any model is built."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.datasets import DatasetError
from bench.data.video import Segment, VideoError, VideoInfo, View, probe, read_clip, read_image

PROBE_FIRST = 3  # validation decodes a set's first clips (a wrong layout shows at once) ...
PROBE_RANDOM = 3  # ... and a few more drawn with a fixed seed (one bad file in many is caught by chance only)


class FileVisuals:
    """Clips read from files: each entry one video or image, or (initial, final) state images whose clip
    shows the first state for the first half of the frames and the final state for the rest. A video entry
    may have a segment (segments[i], seconds): its clip is then T frames over that segment only."""

    def __init__(self, entries: list[tuple[Path, ...]], frames: int, size: int,
                 segments: Sequence[Segment | None] | None = None):
        self.entries, self.frames, self.size = entries, frames, size
        self.segments = list(segments) if segments is not None and any(segments) else None
        self._identity: tuple | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def segment(self, i: int) -> Segment | None:
        return self.segments[i] if self.segments else None

    def clip(self, i: int, view: View | None = None) -> np.ndarray:
        """Clip i as the X-encoder reads it; `view` picks another window or crop of it (eval.views)."""
        entry, seg, view = self.entries[i], self.segment(i), view or View()
        if len(entry) == 1:
            return read_clip(entry[0], self.frames, self.size, *((seg.start, seg.end) if seg else (None, None)), view)
        first = read_image(entry[0], self.frames // 2, self.size, view) if self.frames // 2 else None
        last = read_image(entry[1], self.frames - self.frames // 2, self.size, view)
        return last if first is None else np.concatenate([first, last])

    def views(self, clips: int, crops: int) -> list[FileVisuals | FileView]:
        """The clips x crops views of every clip a multi-view evaluation averages over (eval.views), window by
        window, crops left to right. A view that reads exactly the one clip (a single window, the middle of an
        odd number of crops) is this set itself: it shares its cached features."""
        views = [View(c, clips, m, crops) for c in range(clips) for m in range(crops)]
        return [self if clips == 1 and 2 * v.crop == crops - 1 else FileView(self, v) for v in views]

    def name(self, i: int) -> str:
        """Clip i's file(s), and its segment: what an error or a skipped item is reported as."""
        seg = self.segment(i)
        return ", ".join(str(p) for p in self.entries[i]) + (f" [{seg.start:g}-{seg.end:g} s]" if seg else "")

    def head(self, m: int) -> FileVisuals:
        """The first m clips."""
        return FileVisuals(self.entries[:m], self.frames, self.size, self.segments[:m] if self.segments else None)

    def identity(self) -> tuple:
        """The files (path and size, in order), their segments and how they are read: a moved or changed file
        is a new set, and so is another segment of the same video. Sets without segments keep the key they
        had before segments existed (their caches stay valid)."""
        if self._identity is None:
            h = hashlib.sha256()
            for i, entry in enumerate(self.entries):
                for p in entry:
                    h.update(f"{p}\x00{p.stat().st_size}\x01".encode())
                seg = self.segment(i)
                if seg:
                    h.update(f"[{seg.start!r},{seg.end!r}]\x02".encode())
            self._identity = ("files", h.hexdigest(), self.frames, self.size)
        return self._identity


class FileView:
    """One view (a window, a crop: bench.data.video.View) of every clip of a FileVisuals, for eval.views. Its
    identity is the set's and the view's, so the feature cache keeps each view's features apart; `viewed` is
    the set itself, whose clip a clip that cannot be decoded is (eval.on_error skips it in the set)."""

    def __init__(self, viewed: FileVisuals, view: View):
        self.viewed, self.view = viewed, view

    def __len__(self) -> int:
        return len(self.viewed)

    def clip(self, i: int) -> np.ndarray:
        return self.viewed.clip(i, self.view)

    def name(self, i: int) -> str:
        return self.viewed.name(i)

    def identity(self) -> tuple:
        v = self.view
        return (*self.viewed.identity(), "view", v.window, v.windows, v.crop, v.crops)


def _seconds(obj: dict, key: str, where: str) -> float:
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DatasetError(f"{where}: '{key}' {v!r} must be a number of seconds")
    return float(v)


def parse_segment(obj: dict, where: str, key: str) -> Segment | None:
    """An item's `start`/`end` (seconds into its video), or None for the whole video. Both or neither;
    0 <= start < end; a video only (an image has no time)."""
    has = [k for k in ("start", "end") if k in obj]
    if not has:
        return None
    if key != "video":
        raise DatasetError(f"{where}: '{has[0]}' marks a segment of a video; this item's visual is an image")
    if len(has) == 1:
        other = "end" if has[0] == "start" else "start"
        raise DatasetError(f"{where}: '{has[0]}' {obj[has[0]]!r} without '{other}': a segment needs both (seconds)")
    start, end = _seconds(obj, "start", where), _seconds(obj, "end", where)
    if start < 0:
        raise DatasetError(f"{where}: 'start' {start:g} is negative; expected seconds >= 0")
    if start >= end:
        raise DatasetError(f"{where}: 'start' {start:g} is not before 'end' {end:g}; expected start < end (seconds)")
    return Segment(start, end)


def check_segments(items: list[tuple[str, Path, Segment]]) -> None:
    """Every segment (item's place, video, segment) lies within its video. Each video with segments is probed
    once (its header only: loading stays fast); one that cannot be probed is left to the decode, which
    reports it as an unreadable item (eval.on_error)."""
    infos: dict[Path, VideoInfo | None] = {}
    for where, path, seg in items:
        if path not in infos:
            try:
                infos[path] = probe(path)
            except VideoError:
                infos[path] = None
        info = infos[path]
        if info is not None and not seg.fits(info):
            raise DatasetError(f"{where}: 'end' {seg.end:g} is past the end of {path} ({info.frames / info.fps:.3f} s: "
                               f"{info.frames} frames at {info.fps:g} fps); expected at most one frame past it")


def probe_picks(n: int, first: int = PROBE_FIRST, drawn: int = PROBE_RANDOM, seed: int = 0) -> list[int]:
    """The clips validation decodes: the first few, and a few more drawn with a fixed seed from the rest."""
    head = list(range(min(first, n)))
    rest = np.arange(len(head), n)
    more = np.random.default_rng(seed).choice(rest, min(drawn, len(rest)), replace=False) if len(rest) else []
    return head + sorted(int(i) for i in more)


def unreadable_sample(visuals: Any, picks: list[int]) -> list[str]:
    """Errors of the picked clips that cannot be decoded (each names its file)."""
    bad = []
    for i in picks:
        try:
            visuals.clip(i)
        except VideoError as e:
            bad.append(one_line(e))
    return bad


def one_line(error: BaseException) -> str:
    """An error's message on one line (FFmpeg's may hold several), for a log line or a record."""
    return " ".join(str(error).split())

