"""Sweeps: expansion, validation before submission, parity, dedupe and resume, executors, Slurm."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.config import EXPERIMENTS, REPO_ROOT, load_sweep_config
from bench.results import EVALS, RUN_RECORD, read_json, read_jsonl
from bench.sweep import SweepError, check_parity, expand, grid_points, main
from tests.conftest import FAST_Y, SMALL_DATA

TINY_RUN = [*FAST_Y, *SMALL_DATA, "model.embed_dim=64", "train.global_batch=32", "train.micro_batch=32",
            "train.warmup_samples=64", "train.log_every=1", "eval.size=16", "eval.batch=16",
            "eval.tasks=[classification, vqa]"]


def sweep_file(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).replace("RESULTS", str(tmp_path / "results")))
    return path


def tiny_sweep(tmp_path: Path, budget: int = 128, losses=("infonce", "cosine"), seeds=(0,)) -> Path:
    import yaml

    from bench.config import parse_override

    body = {"name": "tinyloss", "base": "base/tiny.yaml", "results": str(tmp_path / "results"),
            "set": {**dict(parse_override(o) for o in TINY_RUN), "train.budget.samples": budget,
                    "eval.grid": [budget]},
            "grid": {"model.loss.name": list(losses)}, "seeds": list(seeds)}
    path = tmp_path / "tinyloss.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_grid_zip_and_seeds_expand(tmp_path):
    f = sweep_file(tmp_path, """
        name: g
        base: base/tiny.yaml
        results: RESULTS
        grid:
          model.loss.name: [infonce, cosine, l2]
          model.attention: [bidirectional, causal]
        zip:
          - model.name: [vljepa, vlm]
            model.lm.layers: ["-2:", ":"]
        seeds: [0, 1]
    """)
    sweep, path = load_sweep_config(f)
    assert len(grid_points(sweep)) == 3 * 2 * 2
    runs = expand(sweep, path)
    assert len(runs) == 24 and len({r.run_id for r in runs}) == 24
    vlm = [r for r in runs if r.cfg.model.name == "vlm"]
    assert all(r.cfg.model.lm.layers == ":" for r in vlm)  # zipped keys vary together


def test_a_zip_groups_labels_name_its_conditions_without_changing_a_run(tmp_path):
    import json

    import pandas as pd

    from analysis.records import runs as run_frame
    from analysis.report import _setting_key

    body = """
        name: z
        base: base/tiny.yaml
        results: RESULTS
        grid:
          model.attention: [bidirectional, causal]
        zip:
          - LABELS
            model.name: [vljepa, vlm]
            model.lm.layers: ["-2:", ":"]
    """
    plain, path = load_sweep_config(sweep_file(tmp_path, body.replace("LABELS", "")))
    named, _ = load_sweep_config(sweep_file(tmp_path, body.replace("LABELS", "label: [VL-JEPA, token VLM]"), "n.yaml"))
    assert named.swept() == plain.swept() == ["model.attention", "model.name", "model.lm.layers"]
    before, after = expand(plain, path), expand(named, path)
    assert [r.run_id for r in before] == [r.run_id for r in after]  # a name is not a setting
    assert [r.label for r in after] == ["model.attention=bidirectional, VL-JEPA", "model.attention=bidirectional, token VLM",
                                        "model.attention=causal, VL-JEPA", "model.attention=causal, token VLM"]
    assert all(r.label == "" for r in before)
    assert main([str(tmp_path / "n.yaml"), "--dry-run"]) == 0
    bad = sweep_file(tmp_path, body.replace("LABELS", "label: [one]"), "bad.yaml")
    with pytest.raises(ValueError, match="one length"):
        load_sweep_config(bad)[0].check()
    # the report names the settings by the labels; a sweep without labels keeps its keys
    from bench.sweep import write_sweep_record
    write_sweep_record(named, path, after, {})
    rec = json.loads((tmp_path / "results" / "sweeps" / "z.json").read_text())
    assert rec["swept"] == named.swept() and {r["label"] for r in rec["runs"]} == {r.label for r in after}
    frame = pd.DataFrame([{"condition": r.condition, "label": r.label, "model.attention": r.point["model.attention"]}
                          for r in after])
    f, key = _setting_key(frame, named.swept())
    assert key == "setting" and list(f["setting"]) == [r.label for r in after]
    assert run_frame(tmp_path / "results").empty  # no run has run: the records know only the sweep


def test_one_invalid_grid_point_submits_nothing_and_names_it(tmp_path, capsys):
    f = sweep_file(tmp_path, """
        name: bad
        base: base/tiny.yaml
        results: RESULTS
        grid:
          train.zero_stage: [0, 2, 7]
    """)
    assert main([str(f), "--executor", "inline"]) == 2
    err = capsys.readouterr().err
    assert "grid point [train.zero_stage=7]" in err and "nothing was submitted" in err
    assert not (tmp_path / "results" / "runs").exists()
    sweep, path = load_sweep_config(f)
    with pytest.raises(SweepError, match="1 invalid run"):
        expand(sweep, path)


def test_parity_check_flags_unswept_differences(tmp_path):
    sweep, path = load_sweep_config(tiny_sweep(tmp_path))
    runs = expand(sweep, path)
    assert check_parity(runs, ["model.loss.name"]) == []
    import dataclasses

    bad = dataclasses.replace(runs[1].cfg, data=dataclasses.replace(
        runs[1].cfg.data, shapes=dataclasses.replace(runs[1].cfg.data.shapes, world_seed=9)))
    runs[1].cfg = bad
    problems = check_parity(runs, ["model.loss.name"])
    assert any("'data' differs" in p for p in problems) and any("different data" in p for p in problems)


def test_dry_run_prints_the_table_and_submits_nothing(tmp_path, capsys):
    f = tiny_sweep(tmp_path)
    assert main([str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs, 0 done, 0 queued or running (not submitted again), 2 new" in out
    assert "model.loss.name=cosine" in out and "dry run" in out
    assert not (tmp_path / "results" / "runs").exists()


def test_sweep_path_resolves_under_experiments(capsys):
    assert main(["ablations/loss.yaml", "--dry-run"]) == 0
    assert "18 runs" in capsys.readouterr().out


@pytest.mark.slow
def test_local_sweep_completes_then_relaunch_submits_nothing(tmp_path, capsys):
    f = tiny_sweep(tmp_path)
    assert main([str(f), "--executor", "local"]) == 0
    out = capsys.readouterr().out
    assert "executor: local" in out and "2/2 runs done" in out
    record = read_json(tmp_path / "results" / "sweeps" / "tinyloss.json")
    assert len(record["runs"]) == 2
    for r in record["runs"]:
        d = tmp_path / "results" / "runs" / r["run_id"]
        assert read_json(d / RUN_RECORD)["status"] == "done" and read_jsonl(d / EVALS)
    assert main([str(f), "--executor", "local"]) == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert main([str(f), "--status"]) == 0
    assert capsys.readouterr().out.count("| done |") == 2


# ---------------------------------------------------------------- Slurm (CI starts a real cluster)

REQUIRE_SLURM = os.environ.get("VLJEPA_REQUIRE_SLURM") == "1"


def _slurm_up() -> bool:
    if not shutil.which("sbatch"):
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.fixture
def slurm():
    if not _slurm_up():
        if REQUIRE_SLURM:
            pytest.fail("VLJEPA_REQUIRE_SLURM=1 but no Slurm cluster answers (bash scripts/slurm_cluster.sh start)")
        pytest.skip("no Slurm cluster (bash scripts/slurm_cluster.sh start; VLJEPA_REQUIRE_SLURM=1 to demand it)")


def _env() -> dict[str, str]:
    """This environment without the distributed variables an in-process run of an earlier test exported."""
    return {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}


def _sweep_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.sweep", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _evals(results: Path) -> dict[str, list]:
    out = {}
    for d in (results / "runs").iterdir():
        out[read_json(d / RUN_RECORD)["config"]["model"]["loss"]["name"]] = [
            (r["samples_seen"], r["task"], r["metric"], r["value"]) for r in read_jsonl(d / EVALS)]
    return out


@pytest.mark.slurm
def test_slurm_sweep_end_to_end(tmp_path, slurm):
    f = tiny_sweep(tmp_path, losses=("infonce", "l2", "sigreg"))
    out = _sweep_cli(str(f), "--executor", "slurm", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted 3 Slurm job(s)" in out.stdout and "3/3 runs done" in out.stdout
    again = _sweep_cli(str(f))
    assert again.returncode == 0 and "nothing to submit" in again.stdout and "executor" not in again.stdout
    status = _sweep_cli(str(f), "--status")
    assert status.stdout.count("| done |") == 3


@pytest.mark.slurm
def test_slurm_two_task_run(tmp_path, slurm):
    f = tiny_sweep(tmp_path, losses=("infonce",))
    out = _sweep_cli(str(f), "--executor", "slurm", "--wait", "launch.processes=2", "launch.cpus_per_task=1",
                     "train.micro_batch=16", "launch.mem_gb=4")
    assert out.returncode == 0, out.stdout + out.stderr
    rec = read_json(next((tmp_path / "results" / "runs").iterdir()) / RUN_RECORD)
    assert rec["status"] == "done" and rec["world_size"] == 2 and rec["samples_seen"] == 128


def _squeue(job: str) -> tuple[str, str]:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout.split()
    return (out[0], out[1]) if len(out) >= 2 else ("", "")


@pytest.mark.slurm
def test_slurm_forced_requeue_resumes_with_identical_metrics(tmp_path, slurm):
    budget = 1920
    ref_dir, req_dir = tmp_path / "ref", tmp_path / "req"
    ref_dir.mkdir(), req_dir.mkdir()
    common = ["train.checkpoint_every=320", "eval.grid=[0, 960, 1920]"]
    ref = _sweep_cli(str(tiny_sweep(ref_dir, budget, losses=("sigreg",))), "--executor", "inline", *common)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    f = tiny_sweep(req_dir, budget, losses=("sigreg",))
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(f), "--executor", "slurm", *common],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    job = read_json(req_dir / "results" / "sweeps" / "tinyloss.json")["jobs"].popitem()[1]
    deadline = time.time() + 600
    _wait_for_a_checkpoint(req_dir / "results", job, deadline)
    subprocess.run(["scontrol", "requeue", job], check=True)
    _release_requeued(job, deadline)
    run_dir = next((req_dir / "results" / "runs").iterdir())
    while time.time() < deadline:
        if (run_dir / RUN_RECORD).is_file() and read_json(run_dir / RUN_RECORD)["status"] == "done":
            break
        time.sleep(1)
    rec = read_json(run_dir / RUN_RECORD)
    assert rec["status"] == "done" and rec.get("resumes", 0) >= 1, rec.get("status")
    assert _evals(req_dir / "results") == _evals(ref_dir / "results")


def _wait_for_a_checkpoint(results: Path, job: str, deadline: float) -> None:
    """Until the job's run has written its first checkpoint (the job still queued or running meanwhile)."""
    while not list(results.glob("runs/*/checkpoints/LATEST.json")):
        assert time.time() < deadline and _squeue(job)[0] in ("PENDING", "RUNNING", "CONFIGURING"), \
            "the job ended before its first checkpoint: " + "".join(
                p.read_text()[-2000:] for p in (results / "submitit").rglob("*_log.err"))
        time.sleep(0.5)


def _two_node_partition() -> bool:
    out = subprocess.run(["sinfo", "-h", "-p", "two", "-o", "%D"], capture_output=True, text=True).stdout.strip()
    return out == "2"


def _release_requeued(job: str, deadline: float) -> None:
    """A requeued job waits ~120 s (BeginTime) unless released: release it."""
    requeued_at = time.time()
    while time.time() < deadline:
        state, reason = _squeue(job)
        if state == "PENDING" and "BeginTime" in reason and time.time() - requeued_at > 1.5:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)


@pytest.mark.slurm
def test_slurm_two_node_run_matches_one_node_and_resumes_after_requeue(tmp_path, slurm):
    """One process on each of two nodes (scripts/slurm_cluster.sh: the second node is a slurmd in its own
    network namespace, with its own address), through python -m bench.sweep: exactly the budget, the same
    metrics as two processes on one node, and a requeue mid-run that resumes to the same metrics again."""
    if not _two_node_partition():
        pytest.fail("the test cluster has no two-node partition 'two' (scripts/slurm_cluster.sh start makes one "
                    "where network namespaces are allowed)")
    budget = 960
    common = ["launch.processes=2", "launch.cpus_per_task=1", "launch.mem_gb=4", "train.micro_batch=16",
              "train.checkpoint_every=320", "eval.grid=[0, 480, 960]"]
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir(), two_dir.mkdir()
    one = _sweep_cli(str(tiny_sweep(one_dir, budget, losses=("infonce",))), "--executor", "slurm", "--wait", *common)
    assert one.returncode == 0, one.stdout + one.stderr
    f = tiny_sweep(two_dir, budget, losses=("infonce",))
    launched = _sweep_cli(str(f), "--executor", "slurm", *common, "launch.nodes=2", "launch.partition=two")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    job = read_json(two_dir / "results" / "sweeps" / "tinyloss.json")["jobs"].popitem()[1]
    deadline = time.time() + 900
    _wait_for_a_checkpoint(two_dir / "results", job, deadline)
    nodes = subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["scontrol", "requeue", job], check=True)
    _release_requeued(job, deadline)
    run_dir = next((two_dir / "results" / "runs").iterdir())
    while time.time() < deadline:
        if (run_dir / RUN_RECORD).is_file() and read_json(run_dir / RUN_RECORD)["status"] in ("done", "failed"):
            break
        time.sleep(1)
    rec = read_json(run_dir / RUN_RECORD)
    assert rec["status"] == "done", rec.get("error")
    assert nodes == "vljepa-n[1-2]" and rec["world_size"] == 2 and rec["samples_seen"] == budget
    assert rec.get("resumes", 0) >= 1
    assert _evals(two_dir / "results") == _evals(one_dir / "results")
    metrics_two = [(r["samples_seen"], r["loss"]) for r in read_jsonl(run_dir / "metrics.jsonl")]
    metrics_one = [(r["samples_seen"], r["loss"])
                   for r in read_jsonl(next((one_dir / "results" / "runs").iterdir()) / "metrics.jsonl")]
    assert metrics_two == metrics_one


def test_a_cancelled_job_shows_as_cancelled_and_is_submitted_again(tmp_path, capsys):
    """A run whose Slurm job was cancelled (sacct says so; squeue no longer lists it) is 'cancelled', not new
    or running, even with a heartbeat still fresh; launching the sweep again resumes it."""
    from bench.liveness import Heartbeat
    from bench.results import RunDir, write_json
    from bench.sweep import expand, sweep_record_path

    f = tiny_sweep(tmp_path, losses=("infonce",))
    sweep, path = load_sweep_config(f)
    (run,) = expand(sweep, path)
    d = RunDir.of(run.cfg.output_dir, run.run_id)
    d.path.mkdir(parents=True)
    write_json(d.record, {"run_id": run.run_id, "status": "running"})
    Heartbeat(d.heartbeat).beat("training", 64)  # fresh: killed a moment ago
    write_json(sweep_record_path(sweep), {"name": sweep.name, "runs": [], "jobs": {run.run_id: "77_2"}})
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "squeue").write_text("#!/bin/sh\nexit 0\n")  # the queue no longer lists it
    (fake / "sacct").write_text("#!/bin/sh\necho '77_2|CANCELLED by 0'\n")
    for tool in ("squeue", "sacct"):
        (fake / tool).chmod(0o755)
    env_path = os.environ["PATH"]
    os.environ["PATH"] = f"{fake}:{env_path}"
    try:
        assert main([str(f), "--status"]) == 0
        status = capsys.readouterr().out
        assert main([str(f), "--dry-run"]) == 0
        launch = capsys.readouterr().out
    finally:
        os.environ["PATH"] = env_path
    assert "1 runs: 1 cancelled" in status and "slurm CANCELLED (job 77_2)" in status, status
    assert "0 queued or running (not submitted again), 0 new, 1 to resume" in launch, launch


@pytest.mark.slurm
def test_slurm_cancelled_run_is_reported_as_cancelled(tmp_path, slurm):
    """A real job cancelled while it runs: the cluster keeps no accounting, so the controller's memory of the
    job says CANCELLED."""
    f = tiny_sweep(tmp_path, budget=64000, losses=("infonce",))
    launched = _sweep_cli(str(f), "--executor", "slurm")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    job = read_json(tmp_path / "results" / "sweeps" / "tinyloss.json")["jobs"].popitem()[1]
    deadline = time.time() + 300
    while _squeue(job)[0] != "RUNNING":
        assert time.time() < deadline, f"job {job} never ran"
        time.sleep(0.5)
    subprocess.run(["scancel", job], check=True)
    while _squeue(job)[0]:
        assert time.time() < deadline
        time.sleep(0.5)
    status = _sweep_cli(str(f), "--status")
    assert "1 cancelled" in status.stdout and f"slurm CANCELLED (job {job})" in status.stdout, status.stdout


@pytest.mark.slurm
def test_slurm_states_list_each_array_element(slurm, tmp_path):
    """Pending array elements are reported one by one (squeue alone prints them as one range, 12_[1-2])."""
    from bench.sweepstatus import slurm_states

    out = subprocess.run(["sbatch", "--parsable", "--array=0-2%1", "--time=2", f"--output={tmp_path}/%A_%a.out",
                          "--wrap", "sleep 60"], capture_output=True, text=True, check=True).stdout
    job = out.strip().split(";")[0]
    try:
        deadline = time.time() + 30
        states = {}
        while time.time() < deadline:
            states = slurm_states([f"{job}_{i}" for i in range(3)])
            if {f"{job}_{i}" for i in range(3)} <= set(states):
                break
            time.sleep(1)
        assert {f"{job}_{i}" for i in range(3)} <= set(states), states
        assert any(s.startswith("PENDING") for s in states.values())
        assert not any("None" in s for s in states.values())
    finally:
        subprocess.run(["scancel", job], capture_output=True)


@pytest.mark.parametrize("sweep", sorted(str(p.relative_to(EXPERIMENTS)) for d in ("comparison", "ablations")
                                         for p in (EXPERIMENTS / d).glob("*.yaml")))
def test_every_shipped_tiny_sweep_validates(sweep, capsys):
    from bench.sweep import main

    assert main([sweep, "--dry-run"]) == 0, capsys.readouterr().err


def test_dry_run_shows_parity_and_rejects_an_unregistered_model(capsys):
    from bench.sweep import main

    assert main(["comparison/jepa_vs_vlm.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "parity: 3 comparison group(s) of 2 run(s), each equal in model.x_encoder" in out
    assert "varied: model.name, model.lm.layers" in out
    assert main(["ablations/loss.yaml", "model.name=vljepaa", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model.name='vljepaa' is not registered; did you mean 'vljepa'?" in err and "nothing was submitted" in err


def test_a_misspelt_override_is_reported_once_and_results_go_where_asked(tmp_path, capsys):
    from bench.sweep import main

    assert main(["ablations/loss.yaml", "train.lrr=1", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("unknown key 'train.lrr'") == 1 and err.startswith("error: command line:")
    assert main(["comparison/selective.yaml", "--results", str(tmp_path / "store"), "--dry-run"]) == 0
    from dataclasses import replace

    from bench.config import load_sweep_config
    from bench.sweep import expand

    sweep, path = load_sweep_config("comparison/selective.yaml")
    runs = expand(replace(sweep, results=str(tmp_path / "store")), path)
    assert all(r.cfg.output_dir == str((tmp_path / "store" / "runs").resolve()) for r in runs)


def test_slurm_cluster_stop_stops_only_the_daemons_it_started(tmp_path):
    """scripts/slurm_cluster.sh stop kills the PIDs of its own PID files (checked against the daemon's name),
    not every process called slurmd: another cluster's daemon, or a PID file naming a reused PID, survive."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("slurmd", "slurmctld"):
        shutil.copy("/bin/sleep", bin_dir / name)  # processes whose name is the daemon's
    (bin_dir / "scancel").write_text("#!/bin/sh\nexit 0\n")  # never the real one: CI's cluster keeps its jobs
    (bin_dir / "scancel").chmod(0o755)
    ours = {name: subprocess.Popen([str(bin_dir / name), "300"]) for name in ("slurmd", "slurmctld")}
    other = subprocess.Popen([str(bin_dir / "slurmd"), "300"])  # someone else's slurmd
    unrelated = subprocess.Popen(["sleep", "300"])
    state = tmp_path / "state"
    state.mkdir()
    (state / "slurmd-vljepa-n1.pid").write_text(f"{ours['slurmd'].pid}\n")
    (state / "slurmctld.pid").write_text(f"{ours['slurmctld'].pid}\n")
    try:
        time.sleep(0.2)
        out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "slurm_cluster.sh"), "stop"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "SLURM_STATE_DIR": str(state),
                                                         "PATH": f"{bin_dir}:/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        for p in ours.values():
            assert p.wait(timeout=10) is not None
        assert other.poll() is None and unrelated.poll() is None
        (state / "slurmd-vljepa-n1.pid").write_text(f"{unrelated.pid}\n")  # a stale file naming a reused PID
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "slurm_cluster.sh"), "stop"], timeout=60, check=True,
                       env={**os.environ, "SLURM_STATE_DIR": str(state)})
        assert unrelated.poll() is None
    finally:
        for p in (*ours.values(), other, unrelated):
            p.kill()


def test_live_runs_are_shown_where_they_are_and_not_submitted_again(tmp_path, capsys):
    """A run moving in some process (a fresh heartbeat) or waiting in Slurm is live: the sweep shows its
    position and does not submit it again; a run whose heartbeat stopped long ago shows as stalled."""
    import json

    from bench.liveness import Heartbeat
    from bench.results import RunDir, write_json
    from bench.sweep import expand, sweep_record_path

    f = tiny_sweep(tmp_path, losses=("infonce", "cosine", "l2"))
    sweep, path = load_sweep_config(f)
    runs = expand(sweep, path)
    moving, stopped, queued = (RunDir.of(r.cfg.output_dir, r.run_id) for r in runs)
    for d in (moving, stopped):
        d.path.mkdir(parents=True)
        write_json(d.record, {"run_id": d.path.name, "status": "running"})
    Heartbeat(moving.heartbeat).beat("training", 96)
    Heartbeat(stopped.heartbeat).beat("evaluating at 64 samples", 64)
    beat = json.loads(stopped.heartbeat.read_text())
    beat["moved"] -= 7200  # two hours without moving
    stopped.heartbeat.write_text(json.dumps(beat))
    write_json(sweep_record_path(sweep), {"name": sweep.name, "runs": [], "jobs": {queued.path.name: "77_2"}})
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "squeue").write_text("#!/bin/sh\necho '77_2 PENDING None'\n")  # Slurm holds the third run's job
    (fake / "squeue").chmod(0o755)
    env_path = os.environ["PATH"]
    os.environ["PATH"] = f"{fake}:{env_path}"
    try:
        assert main([str(f), "--dry-run"]) == 0
    finally:
        os.environ["PATH"] = env_path
    out = capsys.readouterr().out
    assert "3 runs, 0 done, 2 queued or running (not submitted again), 0 new, 1 to resume" in out, out
    assert "running: training, at 96 samples; resumes at 0" in out
    assert "stalled: no progress for 120 min (evaluating at 64 samples, at 64 samples)" in out
    assert "slurm PENDING (job 77_2); new" in out


def test_a_run_that_stops_moving_says_so_in_its_log_and_heartbeat(tmp_path):
    import json
    import time

    from bench.liveness import Heartbeat, Watchdog

    said = []
    hb = Heartbeat(tmp_path / "heartbeat.json")
    hb.beat("starting")
    with Watchdog(hb, stall_s=0.3, log=said.append, check_s=0.05):
        time.sleep(1.0)  # nothing moves
    assert len(said) == 1 and said[0].startswith("no progress for") and "since: starting" in said[0]
    assert json.loads((tmp_path / "heartbeat.json").read_text())["stalled"] is True


def test_commands_without_arguments_say_what_they_need(capsys):
    from bench.train import main as train_main

    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "name a sweep file" in capsys.readouterr().err
    assert train_main([]) == 2 and "error: name a config file" in capsys.readouterr().err


def test_pace_and_time_left_from_logged_rows():
    from bench.sweepstatus import RunStatus, pace, summary

    rows = [{"samples_seen": 64 * i, "time": 1000.0 + 2 * i} for i in range(1, 6)]
    assert pace(rows) == 32.0  # 64 samples every 2 s
    restarted = rows + [{"samples_seen": 64 * i, "time": 9000.0 + i} for i in range(3, 7)]
    assert pace(restarted) == 64.0  # measured after the restart's gap only
    assert pace(rows[:1]) is None and pace([{"samples_seen": 64}]) is None
    running = RunStatus("running: training", "running", True, 1000, 4200, 32.0)
    assert running.eta_s == 100.0
    line = summary([running, RunStatus("done", "done", False, 4200, 4200, None),
                    RunStatus("new", "new", False, 0, 4200, None)])
    # 7,400 samples left at 32 samples/s: 231 s
    assert line == "3 runs: 1 done, 1 running, 1 new; 5,200/12,600 samples (41%); about 4 min left at the pace of the 1 running"


@pytest.mark.slow
def test_status_of_a_running_local_sweep_shows_counts_and_time_left(tmp_path, capsys):
    f = tiny_sweep(tmp_path, budget=4800)
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(f), "--executor", "local"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen_running = None
    deadline = time.time() + 600
    try:
        while proc.poll() is None and time.time() < deadline:
            assert main([str(f), "--status"]) == 0
            out = capsys.readouterr().out
            if "1 running" in out and "left at the pace of the 1 running" in out:
                seen_running = out
                break
            time.sleep(1.0)
        out_sweep, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert seen_running is not None, "never saw a running run with its pace"
    row = next(line for line in seen_running.splitlines() if "running: training" in line)
    cells = [c.strip() for c in row.split("|")]
    seen, budget = (int(x.replace(",", "")) for x in cells[4].split("/"))
    assert 0 < seen < budget == 4800 and cells[5].endswith(("s", "min"))  # samples so far, time left
    assert "1 new" in seen_running  # the second run waits for the first (one at a time locally)
    assert proc.returncode == 0, out_sweep
    # the launching command said where the sweep was when each job ended
    assert "sweep tinyloss at " in out_sweep and "2 runs: 2 done; 9,600/9,600 samples (100%); nothing left" in out_sweep
    assert main([str(f), "--watch", "0.1"]) == 0  # nothing live: one look, then it returns
    assert "2 runs: 2 done" in capsys.readouterr().out
