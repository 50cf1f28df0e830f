"""Sweeps through a real Slurm cluster (scripts/slurm_cluster.sh): arrays, requeue and exact resume, two
nodes, cancellation and job states, and the cluster script's own stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.config import REPO_ROOT
from bench.results import EVALS, RUN_RECORD, read_json, read_jsonl
from bench.sweep.config import load_sweep_config
from bench.sweep.plan import main
from tests.conftest import tiny_sweep

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
    return subprocess.run([sys.executable, "-m", "bench.sweep.plan", *args], cwd=REPO_ROOT, capture_output=True, text=True,
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
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep.plan", str(f), "--executor", "slurm", *common],
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
    from bench.results import RunDir, write_json
    from bench.run.liveness import Heartbeat
    from bench.sweep.plan import expand, sweep_record_path

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
    from bench.sweep.status import slurm_states

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
