"""CLEVR v1.0 (Johnson et al., CVPR 2017), the val split, as discriminative VQA.

Release files (https://cs.stanford.edu/people/jcjohns/clevr/: CLEVR_v1.0.zip):
  questions/CLEVR_val_questions.json  {"info": ..., "questions": [{"image_filename": "CLEVR_val_000000.png",
                                      "image_index", "question", "answer", "program": [{"function", "inputs",
                                      "value_inputs"}, ...], "question_family_index", "split", ...}]}
  images/val/CLEVR_val_000000.png
paths relative to the release's root (--src CLEVR_v1.0; images as `images/val/...` under --media-root, by
default the same folder). The answer vocabulary is fixed by the generator (facebookresearch/clevr-dataset-gen:
question_generation/metadata.json and image_generation/data/properties.json): yes/no, the counts 0..10
(scenes hold 3 to 10 objects), 8 colours, 3 shapes, 2 materials, 2 sizes: 28 answers.

CLEVR is open-ended; the paper's discriminative VQA scores candidate answers, so candidates are built
(--candidates): `type` (default) is the answers of the answer's family (yes/no, counts, colours, shapes,
materials or sizes): what a model that knows the kind of question could answer; `all` is every answer in
the split. Numbers in increasing order, then words alphabetically. --max-candidates K keeps the answer and
K-1 others per question (gqa.capped).

`kind` is the question type of the CLEVR paper, read from the program's last function: exist, count,
compare_integer (equal_integer, less_than, greater_than), query_attribute (query_color, ...),
compare_attribute (equal_color, ...); the answer's family where a question has no program.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.data.convert.candidates import MAX_CANDIDATES, candidates_option, capped, vocabulary
from bench.data.convert.common import Context, ConvertError, load_json, register

FAMILIES: dict[str, list[str]] = {
    "yes_no": ["no", "yes"],
    "count": [str(c) for c in range(11)],
    "color": sorted(["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"]),
    "shape": ["cube", "cylinder", "sphere"],
    "material": ["metal", "rubber"],
    "size": ["large", "small"],
}
FAMILY_OF = {a: family for family, answers in FAMILIES.items() for a in answers}
QUESTION_TYPES = {"exist": "exist", "count": "count", "equal_integer": "compare_integer", "less_than": "compare_integer",
                  "greater_than": "compare_integer"}


def question_type(q: dict, family: str) -> str:
    """The CLEVR paper's question type, from the last function of q's program (key `function`, or `type` as the
    generator writes it); the answer's family when q has no program."""
    program = q.get("program")
    if not isinstance(program, list) or not program or not isinstance(program[-1], dict):
        return family
    last = str(program[-1].get("function", program[-1].get("type", "")))
    if last in QUESTION_TYPES:
        return QUESTION_TYPES[last]
    if last.startswith("query_"):
        return "query_attribute"
    if last.startswith("equal_"):
        return "compare_attribute"
    return last or family


def _questions(path: Path, data: Any) -> list[dict]:
    """The val questions, checked: an image file, a question and an answer of CLEVR's vocabulary."""
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list) or not questions:
        raise ConvertError(f"{path}: expected {{\"questions\": [...]}} with at least one question")
    for n, q in enumerate(questions):
        if not isinstance(q, dict) or not all(isinstance(q.get(k), str) for k in ("image_filename", "question")) \
                or str(q.get("answer")) not in FAMILY_OF:
            got = {k: q.get(k) for k in ("image_filename", "question", "answer")} if isinstance(q, dict) else q
            raise ConvertError(f"{path}: questions[{n}] needs 'image_filename' and 'question' strings and an 'answer' "
                               f"of CLEVR's vocabulary ({', '.join(sorted(FAMILY_OF))}), got {got}")
    return questions


@register("clevr", "CLEVR v1.0 val: discriminative VQA (candidates: the answer family's vocabulary)",
          options=(candidates_option("the answers of the answer's family (yes/no, counts 0..10, colours, shapes, "
                                     "materials, sizes)"), MAX_CANDIDATES),
          source="CLEVR_v1.0.zip (questions/CLEVR_val_questions.json, images/val), https://cs.stanford.edu/people/jcjohns/clevr/")
def convert(ctx: Context) -> dict[str, dict]:
    path, data = load_json(ctx, "questions/CLEVR_val_questions.json", "CLEVR_val_questions.json")
    questions = _questions(path, data)
    every, k = vocabulary(str(q["answer"]) for q in questions), ctx.options["max_candidates"]
    if ctx.options["candidates"] == "all" and len(every) < 2:
        raise ConvertError(f"{path}: every question has the answer {every[0]!r}: no candidates to choose among")
    items = []
    for n, q in enumerate(questions):
        answer = str(q["answer"])
        qid = str(q.get("question_index", n))
        image = ctx.media(f"images/val/{q['image_filename']}", f"question_index {qid}")
        if image is None:
            continue
        vocab = every if ctx.options["candidates"] == "all" else FAMILIES[FAMILY_OF[answer]]
        items.append({"image": image, "question": q["question"].strip(), "candidates": capped(answer, vocab, k, qid),
                      "answer": answer, "kind": question_type(q, FAMILY_OF[answer]),
                      "question_index": q.get("question_index", n)})
    ctx.write_jsonl("val.jsonl", items)
    return {"vqa": {"annotations": "val.jsonl"}}
