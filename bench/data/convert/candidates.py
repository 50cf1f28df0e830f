"""Candidate answers for releases that have none (GQA, TallyQA, CLEVR): the paper's discriminative VQA scores
candidate answers, so they are built from the split's own answers, deterministically (sorted: numbers by
value, then words), always with the answer among them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from bench.data.convert.common import ConvertError, Option

YES_NO = ("no", "yes")


def answer_order(answer: str) -> tuple[int, int, str]:
    """The order of every candidate list: numbers by value first, then words alphabetically."""
    return (0, int(answer), "") if answer.isdigit() else (1, 0, answer)


def vocabulary(answers: Iterable[str]) -> list[str]:
    """The distinct answers, in answer_order: deterministic whatever the release's order."""
    return sorted(set(answers), key=answer_order)


def capped(answer: str, vocab: Sequence[str], k: int, key: str) -> list[str]:
    """vocab itself when k is 0 or vocab has at most k answers; else the answer and the k-1 other answers
    ranked first by sha256(key, answer), in vocab's order. key is the question's id: the choice is fixed per
    question, the same on every machine and Python, and independent of how frequent an answer is (so a
    distractor tells nothing about the answer)."""
    if answer not in vocab:
        raise ConvertError(f"question {key}: answer {answer!r} is not among its candidates {list(vocab)[:10]}")
    if k <= 0 or len(vocab) <= k:
        return list(vocab)
    if k < 2:
        raise ConvertError(f"--max-candidates {k}: a question needs at least 2 candidates (0 keeps them all)")
    others = sorted((a for a in vocab if a != answer), key=lambda a: hashlib.sha256(f"{key}\0{a}".encode()).hexdigest())
    keep = {answer, *others[:k - 1]}
    return [a for a in vocab if a in keep]


MAX_CANDIDATES = Option("max_candidates", 0, "keep the answer and K-1 other candidates per question, chosen by a "
                        "hash of its id (0: keep every candidate)", type=int)


def candidates_option(type_help: str) -> Option:
    """--candidates {type, all}; what `type` means is the converter's (type_help)."""
    return Option("candidates", "type", f"candidate answers: type: {type_help}; all: every answer in the split",
                  choices=("type", "all"))
