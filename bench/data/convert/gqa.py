"""GQA (Hudson & Manning, CVPR 2019), the testdev balanced split, as discriminative VQA.

Release files (https://cs.stanford.edu/people/dorarad/gqa/download.html: questions1.2.zip, images.zip):
  testdev_balanced_questions.json  {qid: {"imageId", "question", "answer", "types": {"structural", "semantic",
                                   "detailed"}, "isBalanced", "fullAnswer", "semantic", "entailed", ...}}
  images/<imageId>.jpg
The schema is the one GQA's own eval.py (gqadataset.org, "Evaluation code for GQA") reads: it scores the
balanced questions and reports accuracy per structural type (verify, query, choose, logical, compare) and
per semantic type; lmms-eval's `gqa` task evaluates the same testdev balanced split (12,578 questions).

GQA is open-ended: a question has one answer and no choices. The paper's discriminative VQA embeds candidate
answers and picks the one nearest the prediction, so candidates are built here, from the split's own answers
(every list sorted: numbers by value, then words alphabetically; the answer always in it):
  --candidates type (default): a question answered yes or no is asked [no, yes] (verify, logical and most
      compare questions); any other question chooses among the answers other than yes/no that questions of
      its detailed type (e.g. queryColor, chooseAttr, categoryRelS) have in the split: the answers a model
      that knows what is being asked could give. A type with a single such answer falls back to its
      structural type's answers, then to the split's.
  --candidates structural: the same with the structural type (query, choose, compare, ...).
  --candidates all: every answer of the split for every question (the open-vocabulary setting).
  --max-candidates K keeps the answer and K-1 others chosen per question by a hash of its id (cheaper to
      score; see `capped`).
Items are grouped (`kind`) by structural type, as eval.py reports them (--kind semantic or detailed also).

The candidate helpers (candidates.py) are shared with the CLEVR and TallyQA converters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.convert.candidates import MAX_CANDIDATES, YES_NO, capped, vocabulary
from bench.data.convert.common import Context, ConvertError, Option, load_json, register

TYPES = ("structural", "semantic", "detailed")


# -- GQA -------------------------------------------------------------------------------------------------
def _questions(path: Path, data: Any) -> list[dict]:
    """The questions as (qid, image, question, answer, types) dicts, checked, in the file's order."""
    if not isinstance(data, dict) or not data:
        raise ConvertError(f"{path}: expected a JSON object {{question id: question}}, got {type(data).__name__}")
    rows = []
    for qid, q in data.items():
        types = q.get("types") if isinstance(q, dict) else None
        if not isinstance(types, dict) or not all(isinstance(q.get(k), str) and q[k] for k in ("imageId", "question", "answer")) \
                or not all(isinstance(types.get(t), str) for t in TYPES):
            got = sorted(q) if isinstance(q, dict) else type(q).__name__
            raise ConvertError(f"{path}: question {qid!r} needs string 'imageId', 'question', 'answer' and 'types' "
                               f"with {', '.join(TYPES)}; got {got}")
        rows.append({"qid": str(qid), "image": q["imageId"], "question": q["question"].strip(),
                     "answer": q["answer"].strip(), "types": types})
    return rows


def _open_vocabularies(rows: list[dict]) -> dict[tuple[str, str], list[str]]:
    """(level, type) -> the answers other than yes/no of the questions of that type, level detailed,
    structural or all (type "")."""
    answers: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        if r["answer"] not in YES_NO:
            for key in (("detailed", r["types"]["detailed"]), ("structural", r["types"]["structural"]), ("all", "")):
                answers.setdefault(key, set()).add(r["answer"])
    return {key: vocabulary(a) for key, a in answers.items()}


def _candidates(row: dict, mode: str, every: list[str], open_vocab: dict[tuple[str, str], list[str]]) -> list[str]:
    """A question's candidates before any cap (see the module's docstring)."""
    if mode == "all":
        return every
    if row["answer"] in YES_NO:
        return list(YES_NO)
    levels = ("detailed", "structural") if mode == "type" else ("structural",)
    for key in [(level, row["types"][level]) for level in levels] + [("all", "")]:
        if len(open_vocab[key]) > 1:
            return open_vocab[key]
    return every  # the split has a single answer other than yes/no


@register("gqa", "GQA testdev balanced: discriminative VQA (candidates built from the split's answers)",
          options=(Option("candidates", "type", "candidate answers: type: [no, yes] for yes/no questions, else the "
                          "answers of the question's detailed type; structural: of its structural type; all: every "
                          "answer in the split", choices=("type", "structural", "all")),
                   MAX_CANDIDATES,
                   Option("kind", "structural", "the type that groups items into accuracy_<kind>", choices=TYPES)),
          source="GQA questions1.2 (testdev_balanced_questions.json) and images, https://cs.stanford.edu/people/dorarad/gqa/ "
                 "(schema: GQA's eval.py)")
def convert(ctx: Context) -> dict[str, dict]:
    path, data = load_json(ctx, "testdev_balanced_questions.json", "questions1.2/testdev_balanced_questions.json")
    rows = _questions(path, data)
    every, open_vocab = vocabulary(r["answer"] for r in rows), _open_vocabularies(rows)
    if len(every) < 2:
        raise ConvertError(f"{path}: every question has the answer {every[0]!r}: no candidates to choose among")
    mode, k, kind = ctx.options["candidates"], ctx.options["max_candidates"], ctx.options["kind"]
    items = []
    for r in rows:
        image = ctx.media(f"{r['image']}.jpg", f"question {r['qid']}")
        if image is None:
            continue
        cands = capped(r["answer"], _candidates(r, mode, every, open_vocab), k, r["qid"])
        items.append({"image": image, "question": r["question"], "candidates": cands, "answer": r["answer"],
                      "kind": r["types"][kind], "question_id": r["qid"]})
    ctx.write_jsonl("testdev_balanced.jsonl", items)
    return {"vqa": {"annotations": "testdev_balanced.jsonl"}}
