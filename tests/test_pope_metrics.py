"""POPE's metrics in the vqa task (yes_no_metrics): precision, recall, F1 and yes-ratio, "yes" the positive class,
on a hand-computed example that a swapped precision/recall or a yes-ratio over the answers would fail."""

from __future__ import annotations

import pytest

from bench.eval.sets.kinds import ChoiceSet
from bench.eval.tasks.vqa import is_yes_no, pope_scores, summarise, yes_no_metrics

Y, N = True, False


def _set_and_rows(gold: dict[str, list[bool]], said: dict[str, list[bool]]) -> tuple[ChoiceSet, dict[str, list]]:
    """A yes/no ChoiceSet (candidates in both orders and cases) and choice_accuracy's rows for the given answers
    and choices."""
    cands, answers, kinds, rows = [], [], [], {}
    for kind in gold:
        for g, s in zip(gold[kind], said[kind]):
            j = len(answers)
            c = ("yes", "no") if j % 2 else ("No", "Yes")
            cands.append(c)
            answers.append([x.lower() for x in c].index("yes" if g else "no"))
            kinds.append(kind)
            rows.setdefault(kind, []).append((g == s, 0.5, False, j))
    return ChoiceSet("pope", None, [0] * len(answers), [""] * len(answers), cands, answers, kinds), rows


def test_pope_metrics_by_hand():
    # random: answers Y Y Y N N N N N, said Y Y N Y Y Y N N -> TP 2, FN 1, FP 3, TN 2
    # adversarial: answers Y N, said N N -> TP 0, FN 1, FP 0, TN 1 (no yes said: precision 0, as lmms-eval gives it)
    gold = {"random": [Y, Y, Y, N, N, N, N, N], "adversarial": [Y, N]}
    said = {"random": [Y, Y, N, Y, Y, Y, N, N], "adversarial": [N, N]}
    s, rows = _set_and_rows(gold, said)
    recs = {r["metric"]: r for r in yes_no_metrics("vqa", s, rows)}
    value = {m: r["value"] for m, r in recs.items()}
    assert value["precision_random"] == pytest.approx(100 * 2 / 5)  # TP / (TP + FP), not TP / (TP + FN)
    assert value["recall_random"] == pytest.approx(100 * 2 / 3)
    assert value["f1_random"] == pytest.approx(100 * 2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))  # 50
    assert value["yes_ratio_random"] == pytest.approx(100 * 5 / 8)  # said yes 5 of 8 (the answers: 3 of 8)
    assert [value[f"{m}_adversarial"] for m in ("precision", "recall", "f1", "yes_ratio")] == [0, 0, 0, 0]
    # overall: TP 2, FN 2, FP 3, TN 3 over 10 items
    assert value["precision"] == pytest.approx(40) and value["recall"] == pytest.approx(50)
    assert value["f1"] == pytest.approx(100 * 0.4 / 0.9) and value["yes_ratio"] == pytest.approx(50)
    assert recs["precision"]["n"] == 10 and recs["recall_random"]["n"] == 8
    # chance: a model saying yes to half the items at random: precision the share of yes answers, recall 50
    assert recs["precision"]["chance"] == pytest.approx(40) and recs["precision_random"]["chance"] == pytest.approx(37.5)
    assert recs["recall"]["chance"] == 50 and recs["yes_ratio_adversarial"]["chance"] == 50
    assert set(value) == {f"{m}{k}" for m in ("precision", "recall", "f1", "yes_ratio") for k in ("", "_random", "_adversarial")}


def test_pope_metrics_match_sklearn():
    """An independent reference: scikit-learn's binary precision/recall/F1 with "yes" the positive label."""
    metrics = pytest.importorskip("sklearn.metrics")
    gold = [Y, N, Y, Y, N, N, Y, N, N, Y, Y, N]
    said = [Y, Y, N, Y, N, Y, Y, N, Y, N, Y, N]
    ours = pope_scores(list(zip(said, gold)))
    p, r, f, _ = metrics.precision_recall_fscore_support(gold, said, pos_label=True, average="binary")
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((100 * p, 100 * r, 100 * f))
    assert ours["yes_ratio"] == pytest.approx(100 * sum(said) / len(said))


def test_only_yes_no_sets_get_them_and_accuracy_is_unchanged():
    gold, said = {"random": [Y, N, Y, N]}, {"random": [Y, Y, N, N]}
    s, rows = _set_and_rows(gold, said)
    assert is_yes_no(("Yes", " no")) and not is_yes_no(("yes", "no", "maybe")) and not is_yes_no(("yes", "yes"))
    mixed = ChoiceSet("m", None, s.visual, s.questions, [("red", "blue"), *s.candidates[1:]], s.answers, s.kinds)
    assert yes_no_metrics("vqa", mixed, rows) == []  # one item that is not yes/no: no POPE records at all
    before = summarise("vqa", rows)
    assert [r["metric"] for r in before] == ["accuracy", "accuracy_random"] and before[0]["value"] == 50
    assert len(yes_no_metrics("vqa", s, rows)) == 8  # 4 metrics, overall and for the one kind
