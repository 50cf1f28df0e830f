"""scripts/gpu_check.sh (bench/tools/gpu_check/): the GPU plan lists every step within 9 minutes, and its CPU smoke
runs every step of it on paper_micro and writes the summary a GPU run would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.config import REPO_ROOT
from bench.tools.gpu_check import DEADLINE_S, GPU, Folders, plan, select
from tests.test_paper_micro import TASKS
from tests.tinyrun import clean_env

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
KNOBS = {"vljepa": {"compile", "activation_checkpointing", "encode_targets_step", "fused_optimizer"},
         "vlm": {"compile", "activation_checkpointing", "fused_optimizer"}}  # the VLM has no Y-encoder targets
KNOB_SETTINGS = {"compile": "train.compile=true", "activation_checkpointing": "train.activation_checkpointing=true",
                 "encode_targets_step": "train.encode_targets=step", "fused_optimizer": "train.optimizer_impl=fused"}


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_the_dry_run_lists_every_step_of_the_plan_within_nine_minutes(tmp_path):
    out = tmp_path / "out"
    done = _script("--dry-run", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert not out.exists()  # a dry run writes nothing
    steps = select(plan(GPU, Folders(out, tmp_path / "work")), [])
    names = [s.name for s in steps]
    assert names[:2] == ["probe", "export"] and {"perf:vljepa", "perf:vlm", "train:vljepa"} <= set(names)
    assert {(s.twin, s.knob) for s in steps if s.kind == "knob"} == {(t, k) for t, ks in KNOBS.items() for k in ks}
    assert sum(s.budget_s for s in steps) < DEADLINE_S
    assert all(f"{s.name} " in done.stdout and f"{s.budget_s:4d} s" in done.stdout for s in steps)
    assert "train:vlm" in done.stdout  # listed as an extra step

    argv = {s.name: s.argv for s in steps}
    for twin in KNOBS:  # bench.perf of each twin, configured by its sweep file, offline, bf16, at the paper's shapes
        cmd = argv[f"perf:{twin}"]
        assert cmd[1:3] == ("-m", "bench.perf") and "--sweep" in cmd
        assert {"model.lm.backbone.pretrained=", "train.precision=bf16", "data.shapes.size=256",
                "data.shapes.frames=16"} <= set(cmd)
        for knob in KNOBS[twin]:
            assert KNOB_SETTINGS[knob] in argv[f"knob:{twin}:{knob}"]
    train = argv["train:vljepa"]
    assert train[1:4] == ("-m", "bench.train", GPU.preset) and "train.budget.samples=800" in train  # 200 steps of 4
    tasks = next(a for a in train if a.startswith("eval.tasks="))
    assert {t.strip() for t in tasks.split("=", 1)[1].strip("[]").split(",")} == TASKS
    assert {"data.manifest.size=256", "data.manifest.frames=16", "train.precision=bf16"} <= set(train)


@pytest.mark.slow
def test_the_cpu_smoke_passes_every_step_and_writes_the_summary(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = _script("--cpu-smoke", "--out", str(out), "--work", str(work), timeout=2400)
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert done.returncode == 0, {n: s["error"][-1500:] for n, s in steps.items() if s["status"] != "passed"}
    assert list(steps) == [p["name"] for p in summary["plan"]]
    assert all(s["status"] == "passed" for s in steps.values())
    assert summary["probe"]["backend"] == "gloo" and summary["precision"] == "fp32"
    for twin, knobs in KNOBS.items():
        assert steps[f"perf:{twin}"]["numbers"]["samples_per_s"] > 0 and steps[f"perf:{twin}"]["numbers"]["mfu"] > 0
        for knob in knobs:
            n = steps[f"knob:{twin}:{knob}"]["numbers"]
            assert n["samples_per_s"] > 0 and n["peak_rss_gb"] > 0 and KNOB_SETTINGS[knob] in n["overrides"]
    run = steps["train:vljepa"]["numbers"]
    assert run["status"] == "done" and run["samples_seen"] == 16  # 4 steps of 4
    assert set(run["tasks"]) == TASKS and not [t for t, r in run["tasks"].items() if "error" in r]
    seconds = [r["seconds"] for r in run["tasks"].values()]
    assert any(s is not None for s in seconds) and all(s is None or s >= 0 for s in seconds)
    assert not list(Path(run["run"]).glob("checkpoints"))  # removed: random weights
    md = (out / "summary.md").read_text()
    assert "| step | status |" in md and all(f"| {name} | passed |" in md for name in steps)
    assert (out / "perf" / "vlm" / "latest.md").is_file()  # bench.perf's own report, beside the summary
