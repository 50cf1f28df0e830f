"""Something-Something v2 validation (Goyal et al. 2017, arXiv 1706.04261), as the 20BN / Qualcomm release
ships it.

Release files (the `labels` archive of https://developer.qualcomm.com/software/ai-datasets/something-something):
  something-something-v2-labels.json       {"Approaching something with your camera": "0", ...}  (174 classes)
  something-something-v2-validation.json   [{"id": "74225", "label": "spinning cube that quickly stops
                                             spinning", "template": "Spinning [something] that quickly stops
                                             spinning", "placeholders": ["cube"]}, ...]
and the videos as 20bn-something-something-v2/<id>.webm.

An item's class is its template with the brackets removed, the key of the labels file (as SlowFast's
loader reads it, slowfast/datasets/ssv2.py of https://github.com/facebookresearch/SlowFast); class names are
the labels file's keys in index order. The prompt templates are ours: the class names are already
sentences, so the name alone, and the name after "a video of someone".
"""

from __future__ import annotations

from bench.data.convert.common import Context, ConvertError, register
from bench.data.convert.layouts import TEMPLATES, write_classification

SSV2_TEMPLATES = ["{}", "a video of someone {}."]


def class_names(labels: object, where: str) -> list[str]:
    """The labels file's {template: "index"} as a list in index order; indices must be 0..K-1."""
    if not isinstance(labels, dict) or not labels:
        raise ConvertError(f"{where}: expected a JSON object {{class template: index}}")
    try:
        index = {name: int(i) for name, i in labels.items()}
    except (TypeError, ValueError):
        raise ConvertError(f"{where}: every value must be a class index (\"0\"..\"{len(labels) - 1}\")") from None
    if sorted(index.values()) != list(range(len(index))):
        raise ConvertError(f"{where}: class indices must be 0..{len(index) - 1}, each once")
    return sorted(index, key=index.__getitem__)


def class_of(item: dict, exact: set[str], folded: dict[str, str], where: str) -> str:
    """The class of a validation item: its template without brackets, matched exactly, else ignoring case
    (copies of the release differ in the case of a few templates)."""
    if not isinstance(item, dict) or "id" not in item or "template" not in item:
        raise ConvertError(f"{where}: every item needs 'id' and 'template', got {item!r:.120}")
    name = str(item["template"]).replace("[", "").replace("]", "").strip()
    if name in exact:
        return name
    if name.lower() in folded:
        return folded[name.lower()]
    raise ConvertError(f"{where}: item {item['id']}: template {item['template']!r} is no class of "
                       f"something-something-v2-labels.json (brackets removed: {name!r})")


@register("ssv2", "Something-Something v2 validation: classification, 174 classes", options=(TEMPLATES,),
          source="something-something-v2-labels.json and -validation.json of the 20BN release, "
                 "https://developer.qualcomm.com/software/ai-datasets/something-something")
def convert(ctx: Context) -> dict[str, dict]:
    label_files = ("something-something-v2-labels.json", "labels/something-something-v2-labels.json", "labels.json",
                   "labels/labels.json")
    val_files = ("something-something-v2-validation.json", "labels/something-something-v2-validation.json",
                 "validation.json", "labels/validation.json")
    names = class_names(ctx.json(*label_files), str(ctx.source(*label_files)))
    exact, folded = set(names), {n.lower(): n for n in names}
    items, where = ctx.json(*val_files), str(ctx.source(*val_files))
    if not isinstance(items, list):
        raise ConvertError(f"{where}: expected a JSON list of {{id, label, template, placeholders}}")
    rows = []
    for i, item in enumerate(items):
        label = class_of(item, exact, folded, f"{where}[{i}]")
        path = ctx.first_media(str(item["id"]), (".webm", ".mp4"))
        if path is not None:
            rows.append({"video": path, "label": label})
    return write_classification(ctx, rows, names, SSV2_TEMPLATES)
