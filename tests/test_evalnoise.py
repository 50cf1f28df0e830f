"""Evaluation noise from per-item hits: the split-half estimate, and its table from a results store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.evalnoise import noise_markdown, noise_rows, split_half_se
from analysis.records import runs


def test_split_half_se_is_the_average_over_random_splits_and_sees_what_two_runs_share():
    rng = np.random.default_rng(0)
    a = rng.random(400) < 0.6
    b = rng.random(400) < 0.5
    d = 100 * (a.astype(float) - b)
    gaps = []
    for _ in range(20_000):  # the estimate spelled out: random halves, their mean differences' gap
        p = rng.permutation(400)
        gaps.append(d[p[:200]].mean() - d[p[200:]].mean())
    assert split_half_se(d) == pytest.approx(np.sqrt(np.mean(np.square(gaps))) / 2, rel=0.02)
    assert split_half_se(np.zeros(400)) == 0  # two runs that hit the same items: no evaluation noise in Δ
    # runs that share most of their hits: far below the bound that treats their errors as independent
    shared = a.copy()
    shared[:20] = ~shared[:20]
    bound = 100 * np.hypot(a.std(ddof=1), shared.std(ddof=1)) / np.sqrt(400)
    assert split_half_se(100 * (a.astype(float) - shared)) < bound / 3


def _run(results: Path, rid: str, seed: int) -> Path:
    run = results / "runs" / rid
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": rid, "model": "vljepa", "seed": seed, "status": "done",
                                              "git_commit": "aaa", "config": {"train": {"budget": {"samples": 64}}}}))
    return run


def _evaluation(run: Path, source: str, metrics: dict[str, str]) -> None:
    """One evaluation of a run at 64 samples that kept its hits: the training's ("train") or an on-demand one."""
    rows = "".join(json.dumps({"metric": m, "n": len(h), "hits": h}) + "\n" for m, h in metrics.items())
    if source == "train":
        folder = run / "predictions" / f"{64:012d}"
    else:
        folder = run / "ondemand" / f"s0_000000000064.{source}.predictions"
    folder.mkdir(parents=True)
    if source != "train":
        (run / "ondemand" / f"s0_000000000064.{source}.jsonl").write_text(json.dumps(
            {"run_id": run.name, "samples_seen": 64, "task": "vqa", "metric": "accuracy", "value": 0.0}) + "\n")
    (folder / "vqa__shapes.outcomes.jsonl").write_text(rows)
    (folder / "vqa__shapes.jsonl").write_text("{}\n")  # the choices: not what the snapshot keeps


def _bits(x: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in x)


def test_noise_rows_pair_seeds_at_every_evaluation_size_and_survive_the_snapshot(tmp_path):
    from analysis.snapshot import snapshot

    results, rng, hits = tmp_path / "results", np.random.default_rng(1), {}
    for cond in ("causal", "bidirectional"):
        for seed in range(3):
            small, big = rng.random(40) < 0.5, rng.random(400) < (0.6 if cond == "bidirectional" else 0.5)
            hits[cond, seed] = (small, big)
            run = _run(results, f"{cond}{seed}", seed)
            _evaluation(run, "train", {"accuracy": _bits(small)})
            if not (cond == "causal" and seed == 2):  # one run without the large evaluation: no row at 400
                _evaluation(run, "items400", {"accuracy": _bits(big)})
    (results / "sweeps").mkdir()
    (results / "sweeps" / "att.json").write_text(json.dumps({"name": "att", "swept": ["model.attention"], "runs": [
        {"run_id": f"{c}{s}", "seed": s, "condition": f"model.attention={c}", "point": {"model.attention": c}}
        for c in ("bidirectional", "causal") for s in range(3)]}))

    rows = noise_rows(results, runs(results), "att")
    assert [(r["items"], r["seeds"]) for r in rows] == [(40, 3)]  # 400 items: not every run of the pair has them
    diffs = [100 * (hits["causal", s][0].astype(float) - hits["bidirectional", s][0]) for s in range(3)]
    deltas = [d.mean() for d in diffs]
    r = rows[0]
    assert r["comparison"] == "model.attention=causal - model.attention=bidirectional" and r["metric"] == "vqa/accuracy"
    assert r["mean"] == pytest.approx(np.mean(deltas)) and r["sd"] == pytest.approx(np.std(deltas, ddof=1))
    assert r["eval_se"] == pytest.approx(np.sqrt(np.mean([split_half_se(d) ** 2 for d in diffs])))
    assert "| vqa/accuracy | 40 | 3 |" in noise_markdown(rows)
    items = split_half_se(np.mean(diffs, axis=0))  # the item noise all three seeds share
    assert r["half_both"] == pytest.approx(np.hypot(r["half"], 1.96 * items)) and r["half_both"] > r["half"]

    _evaluation(results / "runs" / "causal2", "items400", {"accuracy": _bits(hits["causal", 2][1])})
    out = tmp_path / "example"
    snapshot(results, out, ["att"])  # the committed copy keeps the hits and the on-demand records, not the choices
    kept = sorted(str(p.relative_to(out / "runs" / "causal0")) for p in (out / "runs" / "causal0").rglob("*") if p.is_file())
    assert kept == ["ondemand/s0_000000000064.items400.jsonl",
                    "ondemand/s0_000000000064.items400.predictions/vqa__shapes.outcomes.jsonl",
                    f"predictions/{64:012d}/vqa__shapes.outcomes.jsonl", "run.json"]
    rows = noise_rows(out, runs(out), "att")
    assert [(r["items"], r["seeds"]) for r in rows] == [(40, 3), (400, 3)]
    assert rows[1]["eval_se"] < rows[0]["eval_se"]  # ten times the items


def test_committed_reevaluations_measure_the_evaluation_noise_at_two_sizes():
    """results/example holds (d'')'s runs evaluated on 400 items during training (with their hits) and their last
    checkpoints re-scored on 4,000: the report's evaluation-noise rows come from both."""
    example = Path(__file__).resolve().parent.parent / "results" / "example"
    rows = [r for r in noise_rows(example, runs(example), "attention_cosine") if r["metric"] == "vqa/accuracy"]
    assert [r["items"] for r in rows] == [327, 3244]  # the answerable VQA items among 400 and 4,000
    small, big = rows
    assert big["eval_se"] < small["eval_se"] / 2  # ten times the items: about a third of the noise
    assert small["mean"] == pytest.approx(1.5, abs=0.05)  # the training's own last evaluation, item for item
