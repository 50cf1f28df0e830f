"""Segments of long videos in releases: an item that is `start`..`end` seconds of its video.

Two policies, by what a release's times are worth:
  - `segment`: strict. A release whose times are exact (EPIC-KITCHENS-100, COIN, CrossTask): an empty or
    reversed segment is an error in the release, named with its file and row.
  - `Segments.fit`: fitted. Releases whose annotated times run past the files people download (ActivityNet
    Captions, YouCook2, DiDeMo): each end is clamped to the release's duration and the file's own length,
    and a segment left empty is dropped and counted in convert.json.
The reader (bench/eval/sets) refuses a segment that ends past its video, so what either writes reads.
"""

from __future__ import annotations

import math

from bench.data.convert.common import Context, ConvertError
from bench.data.video import VideoError, probe

SEGMENTS_DROPPED = "segments dropped (outside the video)"  # a convert.json `left_out` entry, when any


def segment(start: float, end: float, where: str) -> dict[str, float]:
    """The `start`/`end` (seconds) of an item that is a segment of a longer video; a segment that is empty
    or reversed is an error in the release, named with its file and row."""
    if not 0 <= start < end:
        raise ConvertError(f"{where}: segment {start}-{end} s is empty or reversed (need 0 <= start < end)")
    return {"start": round(start, 3), "end": round(end, 3)}


class Segments:
    """Fits release segments to the video they are read from. Release durations and the files people
    download differ by a fraction of a second (and some annotations run past their video), while the
    reader refuses a segment that ends after the video: each end is clamped to the release's duration
    and to the file's own length (probed once per file); a segment left empty is dropped and counted."""

    def __init__(self, ctx: Context):
        self.ctx, self.lengths, self.dropped = ctx, {}, 0

    def length(self, rel: str) -> float | None:
        """The video's length in seconds; None when the file is not there (--missing keep)."""
        if rel not in self.lengths:
            path = self.ctx.media_root / rel
            try:
                info = probe(path) if path.is_file() else None
            except VideoError:
                info = None
            self.lengths[rel] = info.frames / info.fps if info and info.fps > 0 else None
        return self.lengths[rel]

    def fit(self, rel: str, start: float, end: float, duration: float | None) -> tuple[float, float] | None:
        """(start, end) inside [0, video length], to the millisecond; None when nothing is left of it.
        A reversed pair is read the other way round, as CLIP4Clip's loaders do."""
        start, end = sorted((float(start), float(end)))
        limits = [x for x in (duration, self.length(rel)) if x is not None and x > 0]
        end = min([end, *limits])
        start, end = max(0.0, math.floor(start * 1000) / 1000), math.floor(end * 1000) / 1000
        if end <= start:
            self.dropped += 1
            return None
        return start, end

    def record(self) -> None:
        """Counts the dropped segments where convert.json (and the command's last line) shows them."""
        if self.dropped:
            self.ctx.notes[SEGMENTS_DROPPED] = self.dropped


def steps_with_sentences(ctx: Context, name: str, videos: list[tuple[str, float | None, list[tuple[float, float, str]]]],
                         retrieval: str) -> dict[str, dict]:
    """Releases that describe a video's steps one sentence a segment (ActivityNet Captions, YouCook2): videos
    are (file, release duration, [(start, end, sentence)]). Captioning: each segment (fitted) and its sentence.
    Retrieval: `paragraph`, a video's sentences joined in order against the whole video; otherwise each
    sentence against its segment. Writes <name>_segments.jsonl (and <name>_paragraphs.jsonl)."""
    segs = Segments(ctx)
    paragraphs, clips = [], []
    for rel, duration, steps in videos:
        paragraphs.append({"video": rel, "caption": " ".join(sentence for _, _, sentence in steps)})
        for start, end, sentence in steps:
            fit = segs.fit(rel, start, end, duration)
            if fit:
                clips.append({"video": rel, "start": fit[0], "end": fit[1], "captions": [sentence]})
    segs.record()
    clip_file = ctx.write_jsonl(f"{name}_segments.jsonl", clips)
    ret_file = ctx.write_jsonl(f"{name}_paragraphs.jsonl", paragraphs) if retrieval == "paragraph" else clip_file
    return {"retrieval": {"annotations": ret_file}, "captioning": {"annotations": clip_file}}
