"""ActivityNet Captions (Krishna et al. 2017): paragraph-to-video retrieval over val_1, as CLIP4Clip and UMT
report it, and captioning of its annotated segments.

Release files (`captions.zip` of https://cs.stanford.edu/people/ranjaykrishna/densevid/):
  train.json, val_1.json, val_2.json   {"v_<youtube id>": {"duration": s, "timestamps": [[start, end], ...],
                                        "sentences": [...]}}   (seconds; one sentence per timestamp)
and the videos from ActivityNet v1.3 (http://activity-net.org/download.html), as `v_<id>.mp4` (the
ActivityNet crawler's names) or `<id>.mp4` (CLIP4Clip strips the `v_`; .mkv and .webm are found too).

Retrieval (`--retrieval paragraph`, the default: CLIP4Clip's dataloader_activitynet_retrieval.py, UMT's
`is_paragraph_retrieval`): one query per video, its sentences joined in file order, against the whole
video. `--retrieval sentence` makes each sentence a query against its own segment instead. Captioning: each
segment (`start`/`end` in seconds) with its sentence as the reference. `--split` picks the file (val_1,
the protocol's; val_2 annotates the same videos with other segments).
Segments are fitted to the files (segments.py: `Segments.fit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.convert.common import VIDEO_SUFFIXES, Context, ConvertError, Option, find_media, load_json, register, seconds
from bench.data.convert.segments import steps_with_sentences


def _entries(path: Path, data: Any) -> list[tuple[str, float | None, list[tuple[float, float]], list[str]]]:
    """(video id, duration, timestamps, sentences) for each video of an ActivityNet Captions file."""
    if not isinstance(data, dict) or not data:
        raise ConvertError(f"{path}: expected a non-empty mapping of video id -> "
                           "{duration, timestamps, sentences}")
    out = []
    for vid, v in data.items():
        where = f"{path}: {vid!r}"
        if not isinstance(v, dict) or not isinstance(v.get("sentences"), list) or not isinstance(v.get("timestamps"), list):
            raise ConvertError(f"{where}: expected an object with lists 'timestamps' and 'sentences'")
        if len(v["sentences"]) != len(v["timestamps"]) or not v["sentences"]:
            raise ConvertError(f"{where}: 'timestamps' ({len(v['timestamps'])}) and 'sentences' ({len(v['sentences'])}) "
                               "must be non-empty and pair up one to one")
        spans = []
        for i, t in enumerate(v["timestamps"]):
            if not isinstance(t, list) or len(t) != 2:
                raise ConvertError(f"{where}: timestamps[{i}] must be [start, end] in seconds, got {t!r}")
            spans.append((seconds(t[0], f"{where} timestamps[{i}]"), seconds(t[1], f"{where} timestamps[{i}]")))
        if not all(isinstance(s, str) for s in v["sentences"]):
            raise ConvertError(f"{where}: 'sentences' must be strings")
        duration = seconds(v["duration"], f"{where} duration") if "duration" in v else None
        out.append((vid, duration, spans, [s.strip() for s in v["sentences"]]))
    return out


def _names(vid: str) -> list[str]:
    """v_<id> as the ActivityNet crawler saves it, and <id> as CLIP4Clip's loader looks for it."""
    stems = [vid, vid[2:]] if vid.startswith("v_") else [vid, f"v_{vid}"]
    return [stem + s for stem in stems for s in VIDEO_SUFFIXES]


@register("activitynet", "ActivityNet Captions val_1: paragraph-to-video retrieval, segment captioning",
          options=(Option("split", "val_1", "which captions file (val_1: the retrieval protocol's)",
                          choices=("val_1", "val_2", "train")),
                   Option("retrieval", "paragraph", "paragraph: a video's sentences joined, one query per whole video "
                          "(CLIP4Clip, UMT); sentence: each sentence a query against its segment",
                          choices=("paragraph", "sentence"))),
          source="ActivityNet Captions captions.zip (val_1.json), https://cs.stanford.edu/people/ranjaykrishna/densevid/; "
                 "read as CLIP4Clip's dataloader_activitynet_retrieval.py, https://github.com/ArrowLuo/CLIP4Clip")
def convert(ctx: Context) -> dict[str, dict]:
    split = ctx.options["split"]
    path, data = load_json(ctx, f"{split}.json", f"captions/{split}.json")
    videos = []
    for vid, duration, spans, sentences in _entries(path, data):
        rel = find_media(ctx, _names(vid), f"{path.name} {vid}")
        if rel is not None:
            videos.append((rel, duration, [(start, end, s) for (start, end), s in zip(spans, sentences)]))
    return steps_with_sentences(ctx, split, videos, ctx.options["retrieval"])
