"""SugarCrepe++ (Dumpala, Jaiswal et al., NeurIPS 2024 Datasets and Benchmarks) as text-only hard negatives.

Release files (https://github.com/Sri-Harsha/scpp: data/), one per category:
  replace_att.json (788), replace_obj.json (1,652), replace_rel.json (1,406), swap_att.json (666), swap_obj.json (245)
      [{"id", "filename": "000000331352.jpg", "caption", "caption2", "negative_caption"}, ...]
`caption` and `caption2` are two positive captions of a COCO val2017 image (same meaning, other words),
`negative_caption` SugarCrepe's hard negative (other meaning, the first caption's words). The schema is the
one the release's evaluate_ulms.py reads (caption, caption2, negative_caption; the five file names and sizes).

Each triplet becomes a hardneg line: anchor = caption, positive = caption2, negatives = [negative_caption],
kind = the category. The images are not needed (the text-only task, TOT in the paper).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.convert.common import Context, ConvertError, Option, load_json, register

CATEGORIES = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
FIELDS = ("caption", "caption2", "negative_caption")


def _categories(value: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in value.split(",") if c.strip())
    if not names or any(c not in CATEGORIES for c in names):
        raise ConvertError(f"--categories {value!r}: expected a comma-separated list of {', '.join(CATEGORIES)}")
    return names


def _triplets(path: Path, data: Any) -> list[dict]:
    """A category file's records, as a list (the release's) or an object keyed by id (SugarCrepe's layout)."""
    records = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise ConvertError(f"{path}: expected a JSON list of {{id, filename, {', '.join(FIELDS)}}}")
    for n, r in enumerate(records):
        if not isinstance(r, dict) or not all(isinstance(r.get(f), str) and r[f].strip() for f in FIELDS):
            got = {f: r.get(f) for f in FIELDS} if isinstance(r, dict) else r
            raise ConvertError(f"{path}: record {n} (id {r.get('id') if isinstance(r, dict) else '?'}) needs non-empty "
                               f"strings {', '.join(FIELDS)}, got {got}")
    return records


@register("sugarcrepepp", "SugarCrepe++: text-only hard negatives (two positive captions, one negative; kind: category)",
          options=(Option("categories", ",".join(CATEGORIES), "the categories to convert, comma-separated"),),
          source="SugarCrepe++ data/{replace,swap}_*.json, https://github.com/Sri-Harsha/scpp")
def convert(ctx: Context) -> dict[str, dict]:
    lines = []
    for category in _categories(ctx.options["categories"]):
        path, data = load_json(ctx, f"data/{category}.json", f"{category}.json")
        for r in _triplets(path, data):
            lines.append({"anchor": r["caption"].strip(), "positive": r["caption2"].strip(),
                          "negatives": [r["negative_caption"].strip()], "kind": category, "id": r.get("id")})
    ctx.write_jsonl("hardneg.jsonl", lines)
    return {"hardneg": {"annotations": "hardneg.jsonl"}}
