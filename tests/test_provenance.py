"""Where committed records come from: the snapshot's provenance rules (one clean commit, or commits that ran the
same code) and the committed sweeps checked against them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "results" / "example"


def test_snapshot_refuses_runs_from_dirty_trees_or_several_commits(tmp_path):
    from analysis.snapshot import ProvenanceError, snapshot

    def store(commits: list[str], status: str = "done") -> Path:
        root = tmp_path / "stores" / str(len(list((tmp_path / "stores").glob("*"))) if (tmp_path / "stores").is_dir() else 0)
        runs = [{"run_id": f"r{i}", "seed": i, "condition": "c", "point": {}} for i in range(len(commits))]
        (root / "sweeps").mkdir(parents=True)
        (root / "sweeps" / "s.json").write_text(json.dumps({"name": "s", "runs": runs, "swept": []}))
        for i, commit in enumerate(commits):
            (root / "runs" / f"r{i}").mkdir(parents=True)
            (root / "runs" / f"r{i}" / "run.json").write_text(json.dumps({"run_id": f"r{i}", "status": status,
                                                                           "git_commit": commit}))
        return root

    out = tmp_path / "out"
    with pytest.raises(ProvenanceError, match="run r1 was run from a dirty tree at bbb"):
        snapshot(store(["aaa", "bbb-dirty"]), out, ["s"])
    with pytest.raises(ProvenanceError, match=r"run at aaa \(1 runs\), bbb \(1 runs\), whose run code differs "
                                              r"\(aaa..bbb: cannot tell here\): paired arms"):
        snapshot(store(["aaa", "bbb"]), out, ["s"])
    with pytest.raises(ProvenanceError, match="run r0 is running, not done"):
        snapshot(store(["aaa"], "running"), out, ["s"])
    assert not out.exists()  # nothing copied
    assert snapshot(store(["aaa", "bbb-dirty"]), out, ["s"], allow_dirty=True) == 2
    assert json.loads((out / "sweeps" / "s.json").read_text())["provenance"]["commits"] == ["aaa", "bbb-dirty"]
    assert snapshot(store(["ccc", "ccc"]), tmp_path / "clean", ["s"]) == 2



def test_committed_records_are_what_their_sweeps_compute_today_from_one_clean_commit():
    """Every committed sweep's run_ids are the ones its sweep file (with its recorded overrides) computes
    from today's configs, and all its runs ran at one commit with a clean tree."""
    from analysis.snapshot import provenance
    from bench.sweep.config import load_sweep_config
    from bench.sweep.plan import expand

    for f in sorted((EXAMPLE / "sweeps").glob("*.json")):
        rec = json.loads(f.read_text())
        sweep, path = load_sweep_config(rec["file"])
        today = {r.run_id for r in expand(sweep, path, rec.get("overrides", []))}
        assert {r["run_id"] for r in rec["runs"]} == today, f"{f.name}: records from an older config; run it again"
        assert provenance(EXAMPLE, rec)[1] == [], f"{f.name}: one clean commit, or commits that ran the same code"


def test_runs_at_two_commits_ran_the_same_code_only_where_no_run_code_changed_between_them():
    """The project's own history: 4357d5b only added a value to a sweep file's tune grid (jepa_vs_vlm_tuned's
    1e-2 runs were run there, its other runs at its parent 81de81e); 3c0c367 -> 81de81e moved code in bench/."""
    from analysis.snapshot import run_code_changes

    assert run_code_changes("81de81e", "4357d5b") == []
    assert "bench/tools/clip_benchmark_check.py" in run_code_changes("3c0c367", "81de81e")
    assert run_code_changes("81de81e", "0" * 40) is None  # a commit this clone does not have: cannot tell
