"""MSVD (Chen & Dolan 2011), the test split of 670 videos with ~41 English captions each, as CLIP4Clip and UMT
read it: retrieval (every caption a query) and captioning (every caption a reference).

Release files, either of:
  CLIP4Clip's `msvd_data.zip` (https://github.com/ArrowLuo/CLIP4Clip#data-preparing; the splits of
  collaborative-experts, https://github.com/albanie/collaborative-experts/tree/master/misc/datasets/msvd):
    raw-captions.pkl   a pickled {video id: [caption as a list of words, ...]}
    test_list.txt      one video id a line (670; train_list.txt 1,200, val_list.txt 100)
  VINDLU's JSON annotations, which UMT reads (https://github.com/OpenGVLab/unmasked_teacher, DATASET.md):
    msvd_ret_test.json [{"video": "<id>.avi", "caption": [...]}, ...]
and the videos as `<id>.avi` (the release's YouTubeClips/; .mp4 and other containers are found too).

CLIP4Clip's files are read when both are there. The pickle is read with an unpickler that builds nothing
but lists, dicts and strings, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from bench.data.convert.common import Context, ConvertError, Option, load_json, register

SUFFIXES = (".avi", ".mp4", ".mkv", ".webm")
PICKLE = ("raw-captions.pkl", "msvd_data/raw-captions.pkl")


class _PlainUnpickler(pickle.Unpickler):
    """Lists, dicts and strings only (the containers the release pickled them in included)."""

    ALLOWED = {("collections", "defaultdict"), ("collections", "OrderedDict"), ("builtins", "list"),
               ("builtins", "dict"), ("builtins", "str")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to build {module}.{name}")


def _captions_pickle(ctx: Context) -> tuple[Path, dict[str, list[str]]]:
    path = ctx.source(*PICKLE)
    try:
        data = _PlainUnpickler(io.BytesIO(path.read_bytes()), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ConvertError(f"{path}: not a pickled {{video id: [caption words, ...]}} of plain lists and strings: {e}") from None
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: expected a mapping of video id -> captions, got {type(data).__name__}")
    out = {}
    for vid, caps in data.items():
        if not isinstance(caps, list) or not all(isinstance(c, (list, str)) for c in caps):
            raise ConvertError(f"{path}: [{vid!r}]: expected a list of captions (each a list of words or a string)")
        out[str(vid)] = [c.strip() if isinstance(c, str) else " ".join(map(str, c)).strip() for c in caps]
    return path, out


def _clip4clip(ctx: Context, split: str) -> list[tuple[str, list[str]]]:
    """(video id, captions) of the split, in the list file's order (CLIP4Clip's)."""
    pkl, captions = _captions_pickle(ctx)
    listing = ctx.source(f"{split}_list.txt", f"msvd_data/{split}_list.txt")
    out = []
    for n, line in enumerate(listing.read_text().splitlines(), start=1):
        vid = line.strip()
        if not vid:
            continue
        if not captions.get(vid):
            raise ConvertError(f"{listing}:{n}: video {vid!r} has no captions in {pkl}")
        out.append((vid, captions[vid]))
    return out


def _vindlu(ctx: Context, split: str) -> list[tuple[str, list[str]]]:
    path, data = load_json(ctx, f"msvd_ret_{split}.json", f"anno_downstream/msvd_ret_{split}.json")
    if not isinstance(data, list) or not data:
        raise ConvertError(f"{path}: expected a non-empty list of {{video, caption}}")
    out = []
    for i, item in enumerate(data):
        item = item if isinstance(item, dict) else {}
        caps = [item["caption"]] if isinstance(item.get("caption"), str) else item.get("caption")
        if not isinstance(item.get("video"), str) or not isinstance(caps, list) or not caps \
                or not all(isinstance(c, str) for c in caps):
            raise ConvertError(f"{path}: [{i}]: expected {{'video': '<id>.avi', 'caption': [text, ...]}}, got {data[i]!r}")
        out.append((Path(item["video"]).stem, [c.strip() for c in caps]))
    return out


@register("msvd", "MSVD test (670 videos, ~41 captions each): retrieval and captioning",
          options=(Option("split", "test", "which split's videos", choices=("test", "val", "train")),),
          source="CLIP4Clip's msvd_data (raw-captions.pkl, test_list.txt), https://github.com/ArrowLuo/CLIP4Clip, "
                 "or VINDLU/UMT's msvd_ret_test.json, https://github.com/OpenGVLab/unmasked_teacher")
def convert(ctx: Context) -> dict[str, dict]:
    split = ctx.options["split"]
    if ctx.has(*PICKLE):
        videos = _clip4clip(ctx, split)
    elif ctx.has(f"msvd_ret_{split}.json", f"anno_downstream/msvd_ret_{split}.json"):
        videos = _vindlu(ctx, split)
    else:
        raise ConvertError(f"{ctx.src}: neither raw-captions.pkl with {split}_list.txt (CLIP4Clip's msvd_data) nor "
                           f"msvd_ret_{split}.json (VINDLU / UMT) found")
    rows = []
    for vid, caps in videos:
        rel = ctx.first_media(vid, SUFFIXES)
        if rel is not None:
            rows.append({"video": rel, "captions": caps})
    out = ctx.write_jsonl(f"{split}.jsonl", rows)
    return {"retrieval": {"annotations": out}, "captioning": {"annotations": out}}
