"""POPE (Li et al., EMNLP 2023: Polling-based Object Probing Evaluation), its three COCO splits, as yes/no
discriminative VQA.

Release files (https://github.com/AoiDragon/POPE: output/coco/):
  coco_pope_random.json, coco_pope_popular.json, coco_pope_adversarial.json
      JSON Lines {"question_id", "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the
      image?", "label": "yes" | "no"}  (3,000 questions each: 500 images, 3 present and 3 absent objects)
with the COCO val2014 images (--media-root val2014). The schema is the one POPE's evaluate.py reads.

Every question is asked [no, yes]; `kind` is the split, so the vqa task reports accuracy_<split> and, as
POPE and lmms-eval do, precision, recall, F1 and the yes-ratio per split and overall, "yes" the positive
class (bench/eval/tasks/vqa.py: yes_no_metrics).
"""

from __future__ import annotations

from bench.data.convert.common import Context, ConvertError, Option, register

SPLITS = ("random", "popular", "adversarial")


def _splits(value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise ConvertError(f"--splits {value!r}: expected a comma-separated list of {', '.join(SPLITS)}")
    return names


def _items(ctx: Context, split: str) -> list[dict]:
    """One split's questions as vqa lines; a label other than yes/no stops the conversion."""
    names = (f"coco_pope_{split}.json", f"output/coco/coco_pope_{split}.json", f"coco/coco_pope_{split}.json")
    path = ctx.source(*names)
    items = []
    for n, q in enumerate(ctx.jsonl(str(path.relative_to(ctx.src))), start=1):
        label = str(q.get("label", "")).strip().lower() if isinstance(q, dict) else ""
        if label not in ("yes", "no") or not isinstance(q.get("image"), str) or not isinstance(q.get("text"), str):
            raise ConvertError(f"{path}: question {n} needs 'image' and 'text' strings and a 'label' yes or no, got {q}")
        image = ctx.media(q["image"], f"{split} question_id {q.get('question_id')}")
        if image is not None:
            items.append({"image": image, "question": q["text"].strip(), "candidates": ["no", "yes"], "answer": label,
                          "kind": split, "question_id": q.get("question_id")})
    return items


@register("pope", "POPE (COCO): random, popular and adversarial splits, yes/no VQA (kind: the split)",
          options=(Option("splits", ",".join(SPLITS), "the splits to convert, comma-separated"),),
          source="POPE's output/coco/coco_pope_{random,popular,adversarial}.json, https://github.com/AoiDragon/POPE; "
                 "COCO val2014 images")
def convert(ctx: Context) -> dict[str, dict]:
    items = [item for split in _splits(ctx.options["splits"]) for item in _items(ctx, split)]
    ctx.write_jsonl("pope.jsonl", items)
    return {"vqa": {"annotations": "pope.jsonl"}}
