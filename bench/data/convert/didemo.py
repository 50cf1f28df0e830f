"""DiDeMo (Hendricks et al. 2017), the test split: paragraph-to-video retrieval as CLIP4Clip and UMT report it,
and (on request) captioning of its moments.

Release files (https://github.com/LisaAnne/LocalizingMoments, `data/`):
  test_data.json   [{"annotation_id", "description", "video": "<flickr name>.<ext>", "times": [[s, e], ...],
                     "dl_link", "num_segments"}, ...]   (times: 5-second chunk indices, one pair per annotator)
  test_list.txt    optional, the video list CLIP4Clip reads (collaborative-experts' splits, 1,004 test
                   videos, https://github.com/albanie/collaborative-experts/tree/master/misc/datasets/didemo)
and the videos: as `video` names them (the Flickr download), as `<video>.mp4` (the release's
download_videos_AWS.py, from the YFCC100M copies), or transcoded to `<stem>.mp4`.

Retrieval (CLIP4Clip's dataloader_didemo_retrieval.py, UMT's `is_paragraph_retrieval`): one query per video,
its descriptions joined in file order, against the video's first 30 s (the annotated part: CLIP4Clip reads
0-31 s, UMT sets `trimmed30`; `--retrieval-clip whole` takes the whole video instead). Captioning
(`--captioning moments`; off by default, no paper reports it, and the descriptions are referring
expressions, "the dog jumps for the first time"): each description against its moment, the annotators'
mean start chunk x 5 s to (mean end chunk + 1) x 5 s as CLIP4Clip computes it, within the 5 s x
num_segments (at most 30 s) that was annotated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.convert.common import VIDEO_SUFFIXES, Context, ConvertError, Option, find_media, load_json, register, seconds
from bench.data.convert.segments import Segments

CHUNK = 5.0  # seconds per annotation chunk
ANNOTATED = 30.0  # longer videos were cut to their first 30 s for annotation


@dataclass(frozen=True)
class Moment:
    """One description of one video, with the moment its annotators marked (in seconds) and the length
    of video that was annotated (limit)."""

    description: str
    start: float
    end: float
    limit: float


def _moment(path: Path, i: int, item: Any) -> tuple[str, Moment]:
    """(video name, its moment) from one annotation of the release."""
    where = f"{path}: [{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("video"), str) or not isinstance(item.get("description"), str):
        raise ConvertError(f"{where}: expected an object with strings 'video' and 'description', got {item!r}")
    times = item.get("times")
    if not isinstance(times, list) or not times or not all(isinstance(t, list) and len(t) == 2 for t in times):
        raise ConvertError(f"{where}.times: expected [[start chunk, end chunk], ...] (one pair per annotator), got {times!r}")
    starts = [seconds(t[0], f"{where}.times") for t in times]
    ends = [seconds(t[1], f"{where}.times") for t in times]
    chunks = item.get("num_segments")
    limit = min(ANNOTATED, CHUNK * seconds(chunks, f"{where}.num_segments")) if chunks is not None else ANNOTATED
    start, end = sum(starts) / len(starts) * CHUNK, (sum(ends) / len(ends) + 1) * CHUNK
    return item["video"], Moment(item["description"].strip(), start, end, limit)


def _videos(ctx: Context, split: str) -> tuple[Path, dict[str, list[Moment]]]:
    """Each video's moments in file order, the videos limited to {split}_list.txt when the release has it."""
    path, data = load_json(ctx, f"{split}_data.json", f"data/{split}_data.json")
    if not isinstance(data, list) or not data:
        raise ConvertError(f"{path}: expected a non-empty list of {{video, description, times}} annotations")
    keep = None
    if ctx.has(f"{split}_list.txt", f"data/{split}_list.txt"):
        listed = ctx.source(f"{split}_list.txt", f"data/{split}_list.txt").read_text().split()
        keep = set(listed) | {Path(x).stem for x in listed}
    videos: dict[str, list[Moment]] = {}
    for i, item in enumerate(data):
        video, moment = _moment(path, i, item)
        if keep is None or video in keep or Path(video).stem in keep:
            videos.setdefault(video, []).append(moment)
    if not videos:
        raise ConvertError(f"{path}: none of its videos is in {split}_list.txt")
    return path, videos


def _first30(ctx: Context, segs: Segments, rel: str) -> dict[str, float]:
    """The segment a paragraph is matched against: the first 30 s of a longer video (with the default
    --retrieval-clip first30), else nothing (the whole video; also when its length is unknown, --missing keep)."""
    length = segs.length(rel) if ctx.options["retrieval_clip"] == "first30" else None
    return {"start": 0.0, "end": ANNOTATED} if length is not None and length > ANNOTATED else {}


def _names(video: str) -> list[str]:
    stem = Path(video).stem if Path(video).suffix else video
    return list(dict.fromkeys([video, f"{video}.mp4", *(stem + s for s in VIDEO_SUFFIXES)]))


@register("didemo", "DiDeMo test: paragraph-to-video retrieval (and moment captioning on request)",
          options=(Option("split", "test", "which release split", choices=("test", "val", "train")),
                   Option("captioning", "none", "moments: also a captioning set, each description against its moment "
                          "(start/end); none: retrieval only, the benchmark's protocol", choices=("none", "moments")),
                   Option("retrieval_clip", "first30", "first30: a paragraph is matched against the video's first 30 s, "
                          "the part that was annotated (CLIP4Clip, UMT's trimmed30); whole: against the whole video",
                          choices=("first30", "whole"))),
          source="DiDeMo data/test_data.json, https://github.com/LisaAnne/LocalizingMoments; read as CLIP4Clip's "
                 "dataloader_didemo_retrieval.py, https://github.com/ArrowLuo/CLIP4Clip")
def convert(ctx: Context) -> dict[str, dict]:
    split = ctx.options["split"]
    path, videos = _videos(ctx, split)
    captioning = ctx.options["captioning"] == "moments"
    segs = Segments(ctx)
    paragraphs, moments = [], []
    for video, ms in videos.items():
        rel = find_media(ctx, _names(video), f"{path.name} {video}")
        if rel is None:
            continue
        paragraphs.append({"video": rel, **_first30(ctx, segs, rel), "caption": " ".join(m.description for m in ms)})
        for m in ms if captioning else ():
            fit = segs.fit(rel, m.start, m.end, m.limit)
            if fit:
                moments.append({"video": rel, "start": fit[0], "end": fit[1], "captions": [m.description]})
    segs.record()
    tasks = {"retrieval": {"annotations": ctx.write_jsonl(f"{split}_paragraphs.jsonl", paragraphs)}}
    if captioning:
        tasks["captioning"] = {"annotations": ctx.write_jsonl(f"{split}_moments.jsonl", moments)}
    return tasks
