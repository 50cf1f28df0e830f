"""TallyQA (Acharya, Kafle & Kanan, AAAI 2019), the test split, as discriminative VQA: counting questions,
simple and complex.

Release files (https://github.com/manoja328/TallyQA_dataset: tallyqa.zip):
  test.json  [{"image": "VG_100K_2/2410408.jpg", "image_id", "question", "answer": 4, "issimple": false,
              "data_source", "question_id"}, ...]
with the images of Visual Genome (VG_100K/, VG_100K_2/; the test split's) and COCO 2014 (train2014/,
val2014/), the image paths relative to a folder holding them (--media-root). The schema is the README's
and the one big_vision's TallyQA import reads (`issimple` exists in the test split only).

Three converters, as the registry (experiments/datasets.yaml) names three sets (the paper's Table 5 reports
simple and complex apart): `tallyqa` writes every test question (kind: simple / complex),
`tallyqa_simple` and `tallyqa_complex` only theirs.

TallyQA is open-ended (an integer answer). The paper's discriminative VQA scores candidate answers, so
candidates are built (--candidates): `type` (default) is every count 0..15, the range TallyQA's answers
span (TRI-ML/vlm-evaluation's TallyQA harness scores the same 16 choices), extended to the largest answer of the test file
if one is larger; `all` is the distinct answers of the test file. Both come from the whole test file, so a
question has the same candidates in the three folders; numbers in increasing order. --max-candidates K
keeps the answer and K-1 others per question (gqa.capped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.convert.candidates import MAX_CANDIDATES, candidates_option, capped, vocabulary
from bench.data.convert.common import Context, ConvertError, load_json, register

COUNTS = 16  # answers 0..15
SOURCE = "TallyQA test.json (tallyqa.zip), https://github.com/manoja328/TallyQA_dataset; Visual Genome and COCO 2014 images"
OPTIONS = (candidates_option(f"every count 0..{COUNTS - 1} (or up to the largest answer)"), MAX_CANDIDATES)


def _questions(path: Path, data: Any) -> list[dict]:
    """The test questions, checked: an image path, a question, an integer answer >= 0 and issimple."""
    if not isinstance(data, list) or not data:
        raise ConvertError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
    for n, q in enumerate(data):
        ok = isinstance(q, dict) and isinstance(q.get("image"), str) and isinstance(q.get("question"), str) \
            and isinstance(q.get("answer"), int) and not isinstance(q["answer"], bool) and q["answer"] >= 0 \
            and isinstance(q.get("issimple"), bool)
        if not ok:
            got = {k: q.get(k) for k in ("image", "question", "answer", "issimple")} if isinstance(q, dict) else q
            raise ConvertError(f"{path}: question {n} (question_id {q.get('question_id') if isinstance(q, dict) else '?'}) "
                               f"needs 'image' and 'question' strings, an integer 'answer' >= 0 and a boolean "
                               f"'issimple' (the test split's), got {got}")
    return data


def _vocab(questions: list[dict], mode: str) -> list[str]:
    if mode == "all":
        return vocabulary(str(q["answer"]) for q in questions)
    top = max(COUNTS - 1, max(q["answer"] for q in questions))
    return [str(c) for c in range(top + 1)]


def _convert(ctx: Context, kinds: tuple[str, ...]) -> dict[str, dict]:
    path, data = load_json(ctx, "test.json", "tallyqa/test.json")
    questions = _questions(path, data)
    vocab, k = _vocab(questions, ctx.options["candidates"]), ctx.options["max_candidates"]
    if len(vocab) < 2:
        raise ConvertError(f"{path}: every question has the answer {vocab[0]}: no candidates to choose among")
    items = []
    for n, q in enumerate(questions):
        kind = "simple" if q["issimple"] else "complex"
        if kind not in kinds:
            continue
        qid = str(q.get("question_id", n))
        image = ctx.media(q["image"], f"question_id {qid}")
        if image is None:
            continue
        answer = str(q["answer"])
        items.append({"image": image, "question": q["question"].strip(), "answer": answer,
                      "candidates": capped(answer, vocab, k, qid), "kind": kind, "question_id": q.get("question_id", n)})
    ctx.write_jsonl("test.jsonl", items)
    return {"vqa": {"annotations": "test.jsonl"}}


@register("tallyqa", "TallyQA test, simple and complex (kinds): discriminative VQA over counts", options=OPTIONS, source=SOURCE)
def convert(ctx: Context) -> dict[str, dict]:
    return _convert(ctx, ("simple", "complex"))


@register("tallyqa_simple", "TallyQA test, simple questions only: discriminative VQA over counts", options=OPTIONS, source=SOURCE)
def convert_simple(ctx: Context) -> dict[str, dict]:
    return _convert(ctx, ("simple",))


@register("tallyqa_complex", "TallyQA test, complex questions only: discriminative VQA over counts", options=OPTIONS,
          source=SOURCE)
def convert_complex(ctx: Context) -> dict[str, dict]:
    return _convert(ctx, ("complex",))
