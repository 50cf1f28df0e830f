"""A sweep's tune block: each arm's value chosen on the selection set, the verdict read on the report set
(bench/sweep/tune.py expands and validates; analysis/tuning.py chooses from the records; the report shows both)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from analysis.evalnoise import noise_rows
from analysis.records import metrics, runs
from analysis.report import build
from analysis.tables import ablation_table
from analysis.tuning import TUNING, choose
from bench.results import EVALS, RUN_RECORD, RUNS, SWEEPS, read_json, read_jsonl, write_json
from bench.sweep.config import load_sweep_config
from bench.sweep.plan import expand, main
from tests.conftest import TINY_RUN


def tuned_file(tmp_path: Path, **extra) -> Path:
    """Two arms (losses) x two LRs x two seeds of the tests' tiny run, tuned on shapes:val top-1."""
    import yaml

    from bench.config import parse_override

    body = {"name": "tuned", "base": "base/tiny.yaml", "results": str(tmp_path / "results"),
            "set": {**dict(parse_override(o) for o in TINY_RUN), "train.budget.samples": 64, "eval.grid": [64], **extra},
            "grid": {"model.loss.name": ["infonce", "cosine"]},
            "tune": {"key": "train.lr", "values": [1e-3, 3e-3], "metric": "classification/top1"},
            "seeds": [0, 1]}
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_a_tuned_sweep_runs_every_arm_at_every_value_and_evaluates_both_sets(tmp_path, capsys):
    f = tuned_file(tmp_path)
    sweep, path = load_sweep_config(f)
    runs = expand(sweep, path)
    assert len(runs) == 2 * 2 * 2
    assert {(r.cfg.model.loss.name, r.cfg.train.lr) for r in runs} == {
        (loss, lr) for loss in ("infonce", "cosine") for lr in (1e-3, 3e-3)}
    for r in runs:  # every task on the set the value is chosen on and on the one reported
        assert r.cfg.eval.sets == {"classification": ["shapes:val", "shapes:test"], "vqa": ["shapes:val", "shapes:test"]}
        assert r.arm == f"model.loss.name={r.cfg.model.loss.name}" and r.condition.startswith(r.arm + ", train.lr=")
    assert sweep.swept() == ["model.loss.name", "train.lr"]  # parity lets the tuned key differ within a seed
    assert main([str(f), "--dry-run"]) == 0
    assert "varied: model.loss.name, train.lr" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    ({"tune.key": "model.loss.name"}, "also swept by the grid"),
    ({"tune.select": "shapes:test"}, "overstates it"),
    ({"tune.values": [1.0e-3]}, "at least two values"),
    ({"tune.metric": "top1"}, "expected task/metric"),
    ({"tune.metric": "captioning/CIDEr"}, "does not evaluate 'captioning'"),
    ({"eval.sets": {"classification": ["shapes:val"]}}, "missing ['shapes:test']"),
])
def test_a_wrong_tune_block_is_refused_before_anything_runs(tmp_path, capsys, change, message):
    import yaml

    f = tuned_file(tmp_path)
    body = yaml.safe_load(f.read_text())
    for key, value in change.items():
        section, _, name = key.partition(".")
        if section == "tune":
            body["tune"][name] = value
        else:
            body["set"][key] = value
    f.write_text(yaml.safe_dump(body))
    assert main([str(f), "--executor", "inline"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results" / RUNS).exists()


# -- the choice, from records written as runs write them -----------------------------------------------------------

# (arm, lr, seed) -> (top-1 on the selection set, on the report set). infonce: 3e-3 wins on val (59 vs 51) though it
# loses on test; cosine: 1e-3 wins on val (70.5 vs 67.5).
SCORES = {("infonce", 1e-3, 0): (50, 90), ("infonce", 1e-3, 1): (52, 92),
          ("infonce", 3e-3, 0): (60, 40), ("infonce", 3e-3, 1): (58, 42),
          ("cosine", 1e-3, 0): (70, 30), ("cosine", 1e-3, 1): (71, 34),
          ("cosine", 3e-3, 0): (65, 99), ("cosine", 3e-3, 1): (70, 99)}


def write_tuned_store(results: Path, done=lambda key: True, goal: str = "max", twins: bool = False) -> dict:
    """A tuned sweep's record and its runs' records, in the store's layout, with SCORES as their top-1 (twins:
    the two arms are the two models of a comparison, infonce's VL-JEPA and cosine's the VLM)."""
    runs = []
    for i, ((loss, lr, seed), (val, test)) in enumerate(SCORES.items()):
        run_id = f"run{i:02d}"
        arm = f"model.loss.name={loss}"
        runs.append({"run_id": run_id, "seed": seed, "condition": f"{arm}, train.lr={lr}",
                     "point": {"model.loss.name": loss, "train.lr": lr}, "arm": arm})
        folder = results / RUNS / run_id
        status = "done" if done((loss, lr, seed)) else "running"
        model = ("vljepa" if loss == "infonce" else "vlm") if twins else "vljepa"
        write_json(folder / RUN_RECORD, {"run_id": run_id, "model": model, "seed": seed, "status": status,
                                         "samples_seen": 64 if status == "done" else 32, "started": 0.0, "finished": 1.0,
                                         "config": {"train": {"budget": {"samples": 64}}}})
        rows = [{"run_id": run_id, "samples_seen": 64, "stage": "main", "task": "classification", "metric": "top1",
                 "value": v, "chance": 12.5, "dataset": d, "n": 400, "se": 1.0,
                 **({"sets": ["shapes:val", "shapes:test"]} if d == "mean" else {})}
                for v, d in ((val, "shapes:val"), (test, "shapes:test"), ((val + test) / 2, "mean"))]
        if status == "done":
            (folder / EVALS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = {"name": "tuned", "file": "tuned.yaml", "swept": ["model.loss.name", "train.lr"], "runs": runs,
              "tune": {"key": "train.lr", "values": [1e-3, 3e-3], "metric": "classification/top1",
                       "select": "shapes:val", "report": "shapes:test", "goal": goal}, "updated": time.time()}
    write_json(results / SWEEPS / "tuned.json", record)
    return record


def test_each_arm_takes_the_value_best_on_the_selection_set_and_is_read_on_the_report_set(tmp_path):
    record = write_tuned_store(tmp_path)
    assert {c.arm: c.chosen for c in choose(tmp_path, record)} == {"model.loss.name=infonce": 3e-3,
                                                                   "model.loss.name=cosine": 1e-3}
    frame = metrics(tmp_path)
    arms = frame[frame["sweep"] == "tuned"]
    assert set(arms["condition"]) == {"model.loss.name=infonce", "model.loss.name=cosine"}
    assert set(arms["dataset"]) == {"shapes:test"}  # not the mean over both sets, not the selection set
    table = ablation_table(arms, "tuned", "model.loss.name").set_index("setting")
    assert table.loc["infonce", "Class."][0] == pytest.approx(41.0)  # 3e-3's test numbers: 40, 42
    assert table.loc["cosine", "Class."][0] == pytest.approx(32.0)  # 1e-3's: 30, 34
    assert len(frame[frame["sweep"] == "tuned" + TUNING].drop_duplicates("run_id")) == 4  # the values not chosen
    page = build(tmp_path, tmp_path / "report").read_text()
    assert "Tuned: `train.lr` per arm" in page
    assert ("| model.loss.name=infonce | 51.0 ± 12.7 (2) | **59.0 ± 12.7 (2)** | train.lr=0.003, the largest value "
            "tried: the best may lie beyond it |") in page
    assert "| model.loss.name=cosine | **70.5 ± 6.4 (2)** | 67.5 ± 31.8 (2) | train.lr=0.001, the smallest value" in page


def test_a_choice_at_either_end_of_the_values_tried_is_flagged_and_one_inside_them_is_not():
    from analysis.tuning import Choice, edge

    def at(value, values):
        return edge(Choice("arm", "arm", {}, {}, value, json.dumps(value)), values)

    assert at(3e-3, [3e-4, 1e-3, 3e-3]) == "largest" and at(3e-4, [3e-4, 1e-3, 3e-3]) == "smallest"
    assert at(1e-3, [3e-4, 1e-3, 3e-3]) is None and at(2, [4, 2, 1]) is None  # inside, whatever the order
    assert at("causal", ["bidirectional", "causal"]) is None  # no order to be at the end of
    assert edge(Choice("arm", "arm", {}, {}), [1, 2]) is None  # nothing chosen yet


def test_a_tuned_comparison_compares_the_twins_at_their_own_chosen_values_on_the_report_set(tmp_path):
    write_tuned_store(tmp_path, twins=True)
    page = build(tmp_path, tmp_path / "report").read_text()
    assert "Tuned: `train.lr` per arm" in page and "## tuned" in page
    row = next(line for line in page.splitlines() if line.startswith("| 64 |") or line.startswith("| 64"))
    assert "41.0" in row and "32.0" in row  # VL-JEPA at 3e-3 (40, 42), the VLM at 1e-3 (30, 34), both on test


def test_the_lowest_value_wins_where_the_goal_is_min(tmp_path):
    record = write_tuned_store(tmp_path, goal="min")
    assert {c.arm: c.chosen for c in choose(tmp_path, record)} == {"model.loss.name=infonce": 1e-3,
                                                                   "model.loss.name=cosine": 3e-3}


def test_an_arm_waits_for_every_seed_of_every_value_before_it_is_chosen(tmp_path):
    record = write_tuned_store(tmp_path, done=lambda key: key != ("cosine", 3e-3, 1))
    choices = {c.arm: c for c in choose(tmp_path, record)}
    assert choices["model.loss.name=infonce"].chosen == 3e-3
    waiting = choices["model.loss.name=cosine"]
    assert waiting.chosen is None and waiting.waits == ["train.lr=0.003: 1 of 2 seed(s) not done"]
    frame = metrics(tmp_path)
    assert set(frame[frame["sweep"] == "tuned"]["condition"]) == {"model.loss.name=infonce"}
    page = build(tmp_path, tmp_path / "report").read_text()
    assert "not yet: train.lr=0.003: 1 of 2 seed(s) not done" in page


@pytest.mark.slow
def test_a_tuned_sweep_trains_chooses_and_reports_end_to_end(tmp_path, capsys):
    f = tuned_file(tmp_path)
    assert main([str(f), "--executor", "inline"]) == 0
    results = tmp_path / "results"
    record = read_json(results / SWEEPS / "tuned.json")
    assert record["tune"]["key"] == "train.lr" and len(record["runs"]) == 8
    # the choice, recomputed here from the runs' own evals.jsonl: best mean top-1 on shapes:val, first on a tie
    val: dict[tuple[str, float], list[float]] = {}
    test: dict[tuple[str, float, int], float] = {}
    for r in record["runs"]:
        for e in read_jsonl(results / RUNS / r["run_id"] / EVALS):
            if e["task"] == "classification" and e["metric"] == "top1" and e["samples_seen"] == 64:
                if e["dataset"] == "shapes:val":
                    val.setdefault((r["arm"], r["point"]["train.lr"]), []).append(e["value"])
                elif e["dataset"] == "shapes:test":
                    test[(r["arm"], r["point"]["train.lr"], r["seed"])] = e["value"]
    arms = list(dict.fromkeys(r["arm"] for r in record["runs"]))
    frame, chosen = metrics(results), {}
    for arm in arms:
        means = [(sum(val[(arm, lr)]) / 2, -i, lr) for i, lr in enumerate(record["tune"]["values"])]
        chosen[arm] = max(means)[2]
        rows = frame[(frame["sweep"] == "tuned") & (frame["condition"] == arm) & (frame["task"] == "classification")
                     & (frame["metric"] == "top1")]
        assert sorted(rows["value"]) == sorted(test[(arm, chosen[arm], s)] for s in (0, 1))
    # the evaluation-noise table pairs the same runs' hits on the report set
    noise = [r for r in noise_rows(results, runs(results), "tuned") if r["metric"] == "classification/top1"]
    second, first = arms[1], arms[0]
    assert noise and noise[0]["mean"] == pytest.approx(
        sum(test[(second, chosen[second], s)] - test[(first, chosen[first], s)] for s in (0, 1)) / 2)
    page = build(results, results / "report").read_text()
    assert "Tuned: `train.lr` per arm" in page and "## tuned" in page
