"""YouCook2 (Zhou et al. 2018), the validation split's annotated segments: clip retrieval and captioning.

Release files (http://youcook2.eecs.umich.edu/download, `YouCookII/annotations/`):
  youcookii_annotations_trainval.json   {"database": {"<youtube id>": {"subset": "training" | "validation",
                                         "recipe_type": "113", "duration": s, "video_url": ...,
                                         "annotations": [{"id": 0, "segment": [start, end], "sentence": ...}]}}}
and the videos as the release's scripts/download_youcookii_videos.py saves them:
`raw_videos/<subset>/<recipe_type>/<youtube id>.{mp4,mkv,webm}` (also found: `<subset>/<recipe_type>/...`,
`<recipe_type>/...` or flat `<youtube id>.*` under --media-root).

Each annotation segment is one clip (`start`/`end` in seconds): captioning's item with its sentence as the
reference, and for retrieval (`--retrieval segment`, the default: the clip-level protocol of MIL-NCE,
VideoCLIP and UniVL, ~3.5k validation clips) a query against that clip. `--retrieval paragraph` joins a
video's sentences into one query against the whole video instead (as ActivityNet's protocol does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.convert.common import Context, ConvertError, Option, find_media, load_json, register, seconds
from bench.data.convert.segments import steps_with_sentences

ANNOTATIONS = ("youcookii_annotations_trainval.json", "annotations/youcookii_annotations_trainval.json",
               "YouCookII/annotations/youcookii_annotations_trainval.json")
SUFFIXES = (".mp4", ".mkv", ".webm")  # what youtube-dl left


def _database(path: Path, data: Any) -> dict[str, dict]:
    db = data.get("database") if isinstance(data, dict) else None
    if not isinstance(db, dict) or not db:
        raise ConvertError(f"{path}: expected {{\"database\": {{youtube id: {{subset, recipe_type, annotations}}}}}}")
    return db


def _segments(path: Path, vid: str, v: Any) -> list[tuple[float, float, str]]:
    """(start, end, sentence) of each annotation of one video."""
    where = f"{path}: database[{vid!r}]"
    if not isinstance(v, dict) or not isinstance(v.get("annotations"), list):
        raise ConvertError(f"{where}: expected an object with an 'annotations' list")
    out = []
    for i, a in enumerate(v["annotations"]):
        seg = a.get("segment") if isinstance(a, dict) else None
        if not isinstance(seg, list) or len(seg) != 2 or not isinstance(a.get("sentence"), str):
            raise ConvertError(f"{where}.annotations[{i}]: expected {{'segment': [start, end], 'sentence': text}}, got {a!r}")
        out.append((seconds(seg[0], f"{where}.annotations[{i}].segment"),
                    seconds(seg[1], f"{where}.annotations[{i}].segment"), a["sentence"].strip()))
    return out


def _names(subset: str, recipe: str, vid: str) -> list[str]:
    folders = (f"raw_videos/{subset}/{recipe}/", f"{subset}/{recipe}/", f"{recipe}/", "") if recipe else ("",)
    return [f"{folder}{vid}{s}" for folder in folders for s in SUFFIXES]


@register("youcook2", "YouCook2 validation segments: clip retrieval and captioning",
          options=(Option("split", "validation", "the release's subset (its test annotations are not public)",
                          choices=("validation", "training")),
                   Option("retrieval", "segment", "segment: each segment's sentence a query against that clip "
                          "(MIL-NCE, VideoCLIP, UniVL); paragraph: a video's sentences joined, against the whole video",
                          choices=("segment", "paragraph"))),
          source="YouCook2 youcookii_annotations_trainval.json, http://youcook2.eecs.umich.edu/download")
def convert(ctx: Context) -> dict[str, dict]:
    split = ctx.options["split"]
    path, data = load_json(ctx, *ANNOTATIONS)
    listed = {vid: v for vid, v in _database(path, data).items() if isinstance(v, dict) and v.get("subset") == split}
    if not listed:
        raise ConvertError(f"{path}: no video has 'subset' {split!r}")
    videos = []
    for vid, v in listed.items():
        annotations = _segments(path, vid, v)
        rel = find_media(ctx, _names(split, str(v.get("recipe_type", "")), vid), f"{path.name} {vid}")
        if rel is None or not annotations:
            continue
        duration = seconds(v["duration"], f"{path}: database[{vid!r}].duration") if "duration" in v else None
        videos.append((rel, duration, annotations))
    return steps_with_sentences(ctx, split, videos, ctx.options["retrieval"])
