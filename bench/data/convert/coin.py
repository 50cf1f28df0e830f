"""COIN (Tang et al., CVPR 2019, arXiv 1903.02874): instructional videos of 180 tasks, annotated with the
steps they show. Two benchmarks from one release, as experiments/datasets.yaml names them: coin_step (each
annotated step a segment, labelled with its step) and coin_task (each whole video, labelled with its task).

Release files (https://github.com/coin-dataset/annotations, README "File Structure"):
  COIN.json   {"database": {"<youtube_id>": {"class": "ReplaceCDDriveWithSSD", "recipe_type": 131,
                "subset": "training" | "testing", "duration", "start", "end", "video_url",
                "annotation": [{"id": "212", "segment": [60.0, 69.0], "label": "take out the laptop CD drive"}]}}}
and the videos as videos/<recipe_type>/<youtube_id>.mp4 (the release's download_videos.py), or flat.

Items are the videos of --subset (default testing, the evaluation split; the README calls it "validation",
which is accepted too). Classes come from the whole file, so K is the taxonomy's, not the split's: tasks by
recipe_type (180), their CamelCase names as words ("ReplaceCDDriveWithSSD" -> "replace CD drive with SSD");
steps by step id, one class per distinct step name (a name several tasks share is one class: a text
classifier cannot tell two equal names apart). The prompt templates are ours.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bench.data.convert.common import Context, ConvertError, Option, find_media, register, with_suffixes
from bench.data.convert.layouts import TEMPLATES, write_classification
from bench.data.convert.segments import segment

HOWTO_TEMPLATES = ["{}", "a video of how to {}.", "an instructional video showing how to {}."]
SUBSET = Option("subset", "testing", "which videos are items (classes always come from every video)",
                choices=("testing", "training"))
FILES = ("COIN.json", "annotations/COIN.json")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def task_words(name: str) -> str:
    """'ReplaceCDDriveWithSSD' -> 'replace CD drive with SSD' (acronyms kept, other words lower case)."""
    words = _CAMEL.sub(" ", name.strip()).split()
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)


def database(ctx: Context) -> tuple[dict[str, dict], str]:
    data, where = ctx.json(*FILES), str(ctx.source(*FILES))
    db = data.get("database") if isinstance(data, dict) else None
    if not isinstance(db, dict) or not db:
        raise ConvertError(f"{where}: expected {{\"database\": {{youtube_id: {{class, recipe_type, subset, annotation}}}}}}")
    for vid, entry in db.items():
        if not isinstance(entry, dict) or not {"class", "recipe_type", "subset"} <= set(entry):
            raise ConvertError(f"{where}: database[{vid!r}] needs class, recipe_type and subset, got {entry!r:.160}")
    return db, where


def numbered(pairs: list[tuple[object, str]], what: str, where: str) -> dict[int, str]:
    """{id: name} from (id, name) pairs; one id with two names is an error in the release."""
    out: dict[int, str] = {}
    for key, name in pairs:
        try:
            i = int(key)
        except (TypeError, ValueError):
            raise ConvertError(f"{where}: {what} id {key!r} is not an integer") from None
        if out.setdefault(i, name) != name:
            raise ConvertError(f"{where}: {what} {i} is named both {out[i]!r} and {name!r}")
    return out


def steps_of(entry: dict, vid: str, where: str) -> list[dict]:
    steps = entry.get("annotation", [])
    if not isinstance(steps, list) or not all(isinstance(s, dict) and {"id", "segment", "label"} <= set(s)
                                              and isinstance(s["label"], str) for s in steps):
        raise ConvertError(f"{where}: database[{vid!r}].annotation must be a list of {{id, segment, label}}")
    return steps


def video_of(ctx: Context, vid: str, entry: dict) -> str | None:
    return find_media(ctx, with_suffixes(f"{entry['recipe_type']}/{vid}", f"videos/{entry['recipe_type']}/{vid}", vid),
                      vid)


def in_subset(entry: dict, subset: str) -> bool:
    return entry["subset"] == subset or (subset == "testing" and entry["subset"] == "validation")


Items = Callable[[str, dict, str], list[tuple[object, dict]]]  # (video id, entry, file) -> [(class id, start/end)]


def convert_with(ctx: Context, items_of: Items, step_classes: bool) -> dict[str, dict]:
    """Classes from the whole database (distinct names in id order: ids sharing a name share its class),
    items from the videos of --subset whose file exists."""
    db, where = database(ctx)
    if step_classes:
        by_id = numbered([(s["id"], s["label"].strip()) for vid, e in db.items() for s in steps_of(e, vid, where)],
                         "step", where)
    else:
        by_id = numbered([(e["recipe_type"], task_words(e["class"])) for e in db.values()], "task (recipe_type)", where)
    names = list(dict.fromkeys(by_id[i] for i in sorted(by_id)))
    rows = []
    for vid, entry in db.items():
        if in_subset(entry, ctx.options["subset"]):
            path = video_of(ctx, vid, entry)
            if path is not None:
                rows += [{"video": path, **span, "label": by_id[int(key)]} for key, span in items_of(vid, entry, where)]
    return write_classification(ctx, rows, names, HOWTO_TEMPLATES)


def step_items(vid: str, entry: dict, where: str) -> list[tuple[object, dict]]:
    out = []
    for s in steps_of(entry, vid, where):
        seg = s["segment"]
        if not isinstance(seg, list) or len(seg) != 2:
            raise ConvertError(f"{where}: database[{vid!r}] step {s['id']}: segment must be [start, end] in seconds")
        out.append((s["id"], segment(float(seg[0]), float(seg[1]), f"{where}: database[{vid!r}] step {s['id']}")))
    return out


@register("coin_step", "COIN testing split: classification of step segments (COIN's 778 steps)", options=(SUBSET, TEMPLATES),
          source="COIN.json, https://github.com/coin-dataset/annotations")
def convert_step(ctx: Context) -> dict[str, dict]:
    return convert_with(ctx, step_items, step_classes=True)


@register("coin_task", "COIN testing split: classification of whole videos (180 tasks)", options=(SUBSET, TEMPLATES),
          source="COIN.json, https://github.com/coin-dataset/annotations")
def convert_task(ctx: Context) -> dict[str, dict]:
    return convert_with(ctx, lambda vid, entry, where: [(entry["recipe_type"], {})], step_classes=False)
