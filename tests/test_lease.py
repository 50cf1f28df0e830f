"""One writer per run: a second process on a live run stops in one line and writes nothing; a stale lease
(its holder killed) is taken over; --force takes a live one, and the old holder then stops."""

from __future__ import annotations

import json
import signal
import time

import pytest

from bench.configlib import to_dict
from bench.results import METRICS, read_jsonl
from bench.run.lease import Lease, RunBusy
from tests.tinyrun import cfg_for, cli


def fast_lease(path, lease_s=0.6):
    return Lease(path, lease_s, renew_s=0.1, settle_s=0.05)


def test_a_held_lease_refuses_a_second_writer_naming_the_holder(tmp_path):
    a, b = fast_lease(tmp_path / "lease.json"), fast_lease(tmp_path / "lease.json")
    a.acquire()
    with pytest.raises(RunBusy, match=r"is being written by .+, PID \d+ \(lease renewed \d+ s ago\)"):
        b.acquire()
    time.sleep(1.0)  # longer than the lease: the holder's renewals keep it
    with pytest.raises(RunBusy):
        b.acquire()
    a.release()
    assert not (tmp_path / "lease.json").exists()
    b.acquire()
    b.release()


def test_the_lease_of_a_process_gone_from_this_machine_is_taken_at_once(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    b = fast_lease(tmp_path / "lease.json", lease_s=3600)
    (tmp_path / "lease.json").write_text(json.dumps({**b.me, "pid": int(gone.stdout), "token": "x", "renewed": time.time()}))
    b.acquire()  # fresh, but its process has exited: no wait for it to go stale
    b.release()
    elsewhere = fast_lease(tmp_path / "lease.json", lease_s=3600)
    (tmp_path / "lease.json").write_text(json.dumps({"host": "another-node", "pid": int(gone.stdout), "token": "x",
                                                     "renewed": time.time()}))
    with pytest.raises(RunBusy, match="another-node"):  # a process on another node cannot be asked: its lease stands
        elsewhere.acquire()


def test_a_stale_lease_is_taken_over_and_force_takes_a_live_one(tmp_path):
    a, b, c = (fast_lease(tmp_path / "lease.json") for _ in range(3))
    a.acquire()
    a._stop.set()  # the holder dies: no more renewals, nothing released
    a._thread.join()
    time.sleep(0.8)
    b.acquire()  # stale: taken over without force
    c.acquire(force=True)  # live: only with force
    deadline = time.time() + 5
    while b.lost is None and time.time() < deadline:
        time.sleep(0.05)
    with pytest.raises(RunBusy, match="was taken over by"):
        b.check()
    b.release()
    assert json.loads((tmp_path / "lease.json").read_text())["token"] == c.me["token"]  # b released nothing of c's
    c.release()


@pytest.mark.slow
def test_a_second_train_of_a_live_run_exits_in_one_line_and_writes_nothing(tmp_path):
    common = ["train.budget.samples=16384", "train.checkpoint_every=1024", "train.log_every=4", "eval.grid=[16384]"]
    first = cli(tmp_path, *common, wait=False)
    deadline = time.time() + 240
    beats = []
    while time.time() < deadline and first.poll() is None:
        beats = list(tmp_path.glob("*/heartbeat.json"))
        if beats and json.loads(beats[0].read_text() or "{}").get("phase") == "training":
            break
        time.sleep(0.2)
    assert beats, "the first run never started training"
    run_dir = beats[0].parent
    log_before = (run_dir / "log.txt").read_text()
    second = cli(tmp_path, *common)
    said = second.stdout + second.stderr
    errors = [line for line in said.splitlines() if line.startswith("error: ")]
    assert second.returncode == 2, said
    assert len(errors) == 1 and "is being written by" in errors[0] and "Traceback" not in said, said
    # the Slurm requeue case: the job's callable on the same run, while the old process still holds it
    from bench.sweep.launch import TrainJob

    with pytest.raises(RunBusy):
        TrainJob(to_dict(cfg_for(tmp_path, *common)))()
    assert (run_dir / "log.txt").read_text().startswith(log_before)  # only the first process's lines follow
    first.send_signal(signal.SIGKILL)
    first.wait()
    taken = cli(tmp_path, *common, "--force")  # its lease is still fresh: --force takes the run over
    assert taken.returncode == 0, taken.stdout + taken.stderr
    rows = read_jsonl(run_dir / METRICS)
    assert len({r["step"] for r in rows}) == len(rows) and rows[-1]["samples_seen"] == 16384  # no duplicated work
