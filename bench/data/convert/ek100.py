"""EPIC-KITCHENS-100 validation (Damen et al., "Rescaling Egocentric Vision", IJCV 2022, arXiv 2006.13256), as
its annotation repository ships it; each narrated action a segment of a long video.

Release files (https://github.com/epic-kitchens/epic-kitchens-100-annotations):
  EPIC_100_validation.csv     narration_id,participant_id,video_id,narration_timestamp,start_timestamp,
                              stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,
                              all_nouns,all_noun_classes     (9,668 segments; timestamps HH:MM:SS.ff)
  EPIC_100_verb_classes.csv   id,key,instances,category      (97 verbs: take, put, turn-on, ...)
  EPIC_100_noun_classes.csv   id,key,instances,category      (300 nouns: tap, board:chopping, ...)
and the videos as <participant_id>/videos/<video_id>.MP4 (the download scripts,
https://github.com/epic-kitchens/download-scripts-100), or <participant_id>/<video_id>.MP4: the two layouts
V-JEPA 2's loader reads (evals/action_anticipation_frozen/epickitchens.py of facebookresearch/vjepa2).

--target action (default), verb or noun. An action is a (verb class, noun class) pair; its classes are the
pairs the validation file holds (1,352), named "<verb> <noun>". V-JEPA 2 reports verb, noun and action (action
anticipation, recall@5, action the headline); the VL-JEPA paper reports one EK-100 top-1 without saying which
label, so the default follows V-JEPA 2. Verb and noun classes are the whole taxonomy (97, 300), indexed by id.
Keys are written as words: "turn-on" -> "turn on", "board:chopping" -> "chopping board" (the noun class
keys put the head noun first). The prompt templates are ours.
"""

from __future__ import annotations

from bench.data.convert.common import Context, ConvertError, Option, find_media, register
from bench.data.convert.layouts import TEMPLATES, write_classification
from bench.data.convert.segments import segment

EK_TEMPLATES = ["{}", "a first-person video of {}."]
TARGET = Option("target", "action", "what an item is labelled with: the (verb, noun) action, the verb or the noun",
                choices=("action", "verb", "noun"))
COLUMNS = {"participant_id", "video_id", "start_timestamp", "stop_timestamp", "verb_class", "noun_class"}


def seconds(stamp: str, where: str) -> float:
    """HH:MM:SS.ff (the release's timestamps) in seconds."""
    try:
        h, m, s = stamp.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        raise ConvertError(f"{where}: timestamp {stamp!r} is not HH:MM:SS.ff") from None


def verb_words(key: str) -> str:
    return key.replace("-", " ").replace("_", " ")


def noun_words(key: str) -> str:
    """'board:chopping' -> 'chopping board', 'machine:sous:vide' -> 'sous vide machine': a key is the head noun
    then its modifiers."""
    head, *mods = key.split(":")
    return " ".join([*mods, head]).replace("-", " ").replace("_", " ")


def taxonomy(ctx: Context, files: tuple[str, ...], words) -> list[str]:
    """A class file (id,key,...) as names indexed by id; ids must be 0..K-1."""
    rows, where = ctx.csv(*files), ctx.source(*files)
    if not rows or not {"id", "key"} <= set(rows[0]):
        raise ConvertError(f"{where}: needs columns id and key (id,key,instances,category), "
                           f"got {list(rows[0]) if rows else 'no rows'}")
    try:
        by_id = {int(r["id"]): words(r["key"].strip()) for r in rows}
    except ValueError:
        raise ConvertError(f"{where}: every id must be an integer") from None
    if sorted(by_id) != list(range(len(rows))):
        raise ConvertError(f"{where}: class ids must be 0..{len(rows) - 1}, each once")
    return [by_id[i] for i in range(len(rows))]


def class_index(row: dict[str, str], key: str, names: list[str], where: str) -> int:
    try:
        i = int(row[key])
    except ValueError:
        i = -1
    if not 0 <= i < len(names):
        raise ConvertError(f"{where}: {key} {row[key]!r} is no class id 0..{len(names) - 1} of the class file")
    return i


def video_of(ctx: Context, row: dict[str, str]) -> str | None:
    pid, vid = row["participant_id"].strip(), row["video_id"].strip()
    return find_media(ctx, [f"{pid}/videos/{vid}.MP4", f"{pid}/{vid}.MP4", f"{pid}/videos/{vid}.mp4",
                            f"{pid}/{vid}.mp4", f"{vid}.MP4", f"{vid}.mp4"], row.get("narration_id", ""))


@register("ek100", "EPIC-KITCHENS-100 validation: classification of action segments (action, verb or noun)",
          options=(TARGET, TEMPLATES),
          source="EPIC_100_validation.csv, EPIC_100_verb_classes.csv, EPIC_100_noun_classes.csv, "
                 "https://github.com/epic-kitchens/epic-kitchens-100-annotations")
def convert(ctx: Context) -> dict[str, dict]:
    files = ("EPIC_100_validation.csv", "epic-kitchens-100-annotations/EPIC_100_validation.csv")
    rows, where = ctx.csv(*files), ctx.source(*files)
    if not rows or not COLUMNS <= set(rows[0]):
        raise ConvertError(f"{where}: needs columns {', '.join(sorted(COLUMNS))}, got {list(rows[0]) if rows else 'no rows'}")
    verbs = taxonomy(ctx, ("EPIC_100_verb_classes.csv", "epic-kitchens-100-annotations/EPIC_100_verb_classes.csv"),
                     verb_words)
    nouns = taxonomy(ctx, ("EPIC_100_noun_classes.csv", "epic-kitchens-100-annotations/EPIC_100_noun_classes.csv"),
                     noun_words)
    labelled = []
    for n, r in enumerate(rows, start=2):
        at = f"{where}:{n}"
        v, o = class_index(r, "verb_class", verbs, at), class_index(r, "noun_class", nouns, at)
        span = segment(seconds(r["start_timestamp"], at), seconds(r["stop_timestamp"], at), at)
        labelled.append((r, span, v, o))
    target = ctx.options["target"]
    if target == "action":
        pairs = sorted({(v, o) for *_, v, o in labelled})
        names = [f"{verbs[v]} {nouns[o]}" for v, o in pairs]
        label = {(v, o): name for (v, o), name in zip(pairs, names)}
    else:
        names = verbs if target == "verb" else nouns
        label = {(v, o): names[v if target == "verb" else o] for *_, v, o in labelled}
    items = []
    for r, span, v, o in labelled:
        path = video_of(ctx, r)
        if path is not None:
            items.append({"video": path, **span, "label": label[(v, o)]})
    return write_classification(ctx, items, names, EK_TEMPLATES)
