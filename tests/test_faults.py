"""Faults: a run killed in any phase or signalled for requeue resumes exactly; stale build locks, damaged
checkpoints and full disks are named and lose nothing."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.config import run_id
from bench.results import EVALS, METRICS, RUN_RECORD, read_json, read_jsonl
from bench.run.train import run
from tests.conftest import tiny_overrides
from tests.tinyrun import cfg_for, cli, final_records, run_in_process


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    common = ["train.budget.samples=640", "train.checkpoint_every=96", "eval.grid=[0, 320, 640]",
              "model.loss.name=sigreg"]  # SIGReg draws random directions: the RNG state must resume too
    ref = cli(tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    proc = cli(tmp_path / "killed", *common, wait=False)
    ckpt_dir = None
    deadline = time.time() + 300
    rng = random.Random(os.getpid())
    while time.time() < deadline:
        found = list((tmp_path / "killed").glob("*/checkpoints/LATEST.json"))
        if found:
            ckpt_dir = found[0].parent
            break
        time.sleep(0.2)
    assert ckpt_dir is not None, "no checkpoint appeared"
    time.sleep(rng.uniform(0.0, 2.0))  # somewhere after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = cli(tmp_path / "killed", *common)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    e_ref, l_ref, _ = final_records(tmp_path / "ref", common)
    e_res, l_res, d = final_records(tmp_path / "killed", common)
    assert e_ref == e_res  # every eval metric, bit for bit
    assert l_ref == l_res
    assert read_json(d / RUN_RECORD)["status"] == "done"


@pytest.mark.slow
def test_signal_checkpoints_and_exits_for_requeue(tmp_path):
    common = ["train.budget.samples=1280", "train.checkpoint_every=0", "eval.grid=[1280]"]
    proc = cli(tmp_path, *common, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and not list(tmp_path.glob(f"*/{METRICS}")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out
    _, _, d = final_records(tmp_path, common)
    rec = read_json(d / RUN_RECORD)
    assert rec["status"] == "preempted" and 0 < rec["samples_seen"] < 1280
    again = cli(tmp_path, *common)
    assert again.returncode == 0 and "resuming from checkpoint" in again.stdout
    assert read_json(d / RUN_RECORD)["status"] == "done"


def test_stale_build_lock_is_found_and_live_one_kept(tmp_path):
    """bench/buildlocks.py: a lock with no build running in its folder is stale once past the grace period;
    one whose folder a live process works in is not."""
    from bench.buildlocks import clear_stale_locks, stale_locks

    stale, live = tmp_path / "py3_cpu" / "op_a", tmp_path / "py3_cpu" / "op_b"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "lock").touch()
        os.utime(folder / "lock", (time.time() - 600, time.time() - 600))
    builder = subprocess.Popen(["sleep", "30"], cwd=live)  # stands for ninja, running in its build folder
    try:
        assert stale_locks(tmp_path) == [stale / "lock"]
        said = []
        assert clear_stale_locks(tmp_path, log=said.append) == [stale / "lock"]
        assert not (stale / "lock").exists() and (live / "lock").exists() and str(stale / "lock") in said[0]
    finally:
        builder.kill()
    (stale / "lock").touch()  # fresh: may belong to a process about to build
    assert stale / "lock" not in stale_locks(tmp_path)


@pytest.mark.slow
def test_a_run_starts_despite_a_killed_builders_lock(tmp_path):
    """A run killed while DeepSpeed builds its CPU op leaves torch's build lock; the next run removes it,
    says so, and finishes (before the fix it waited forever at 0% CPU)."""
    ext = tmp_path / "torch_extensions"
    dist_vars = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # this process's, not theirs
    env = {**{k: v for k, v in os.environ.items() if k not in dist_vars}, "TORCH_EXTENSIONS_DIR": str(ext)}
    warm = subprocess.run([sys.executable, "-c", "from bench import dist; dist.setup(dist.detect())"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert warm.returncode == 0, warm.stderr[-2000:]
    locks = [p.parent / "lock" for p in ext.rglob("build.ninja")]
    assert locks, f"DeepSpeed built no JIT op under {ext}"
    for lock in locks:  # what a kill -9 mid-build leaves
        lock.touch()
        os.utime(lock, (time.time() - 600, time.time() - 600))
    cfg = ["experiments/base/tiny.yaml", *tiny_overrides(f"output_dir={tmp_path / 'runs'}", "train.budget.samples=64",
                                                         "train.global_batch=32", "train.micro_batch=32",
                                                         "eval.grid=[]", "eval.tasks=[]")]
    out = subprocess.run([sys.executable, "-m", "bench.run.train", *cfg], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "removed a stale build lock" in out.stderr and not any(lock.exists() for lock in locks)


def _fake_checkpoint(root: Path, tag: str, samples: int) -> None:
    from bench.run.checkpoint import client_file, write_manifest

    folder = root / tag
    folder.mkdir(parents=True)
    (folder / "mp_rank_00_model_states.pt").write_bytes(os.urandom(4096))
    torch.save({"rng": torch.get_rng_state(), "meta": {"samples_seen": samples}}, folder / client_file(0))
    write_manifest(folder)


@pytest.mark.parametrize("damage", ["truncated model states", "deleted model states", "garbage client file",
                                    "cut-off LATEST.json"])
def test_a_damaged_checkpoint_is_named_and_passed_over(tmp_path, damage):
    from bench.results import write_json
    from bench.run.checkpoint import LATEST, Checkpoints

    _fake_checkpoint(tmp_path, "s0_000000000064", 64)
    _fake_checkpoint(tmp_path, "s0_000000000128", 128)
    write_json(tmp_path / LATEST, {"tag": "s0_000000000128", "meta": {"samples_seen": 128}})
    newest = tmp_path / "s0_000000000128"
    if damage == "truncated model states":
        (newest / "mp_rank_00_model_states.pt").write_bytes(os.urandom(1000))
    elif damage == "deleted model states":
        (newest / "mp_rank_00_model_states.pt").unlink()
    elif damage == "garbage client file":
        client = newest / "client_rank0.pt"
        client.write_bytes(os.urandom(client.stat().st_size))
    else:
        (tmp_path / LATEST).write_text('{"tag": "s0_0000')
    said = []
    latest = Checkpoints(tmp_path, 2, 0, said.append).latest()
    if damage == "cut-off LATEST.json":  # the newest checkpoint is intact: found without the pointer
        assert latest["tag"] == "s0_000000000128" and latest["meta"]["samples_seen"] == 128
        assert str(tmp_path / LATEST) in said[0]
    else:
        assert latest["tag"] == "s0_000000000064" and latest["meta"]["samples_seen"] == 64
        assert len(said) == 1 and str(newest) in said[0] and "damaged" in said[0]


@pytest.mark.slow
def test_resume_passes_over_a_damaged_checkpoint_exactly(tmp_path):
    """The newest checkpoint truncated and LATEST.json cut off after a kill: the run names the damaged
    folder, resumes from the intact one before it, and ends with the records of an uninterrupted run."""
    whole = cfg_for(tmp_path / "whole")
    run_in_process(whole)
    cfg = cfg_for(tmp_path / "damaged", "train.keep_checkpoints=2")  # the intact one before the newest stays
    run_in_process(cfg)
    d = tmp_path / "damaged" / run_id(cfg)
    record = read_json(d / RUN_RECORD)
    record["status"] = "running"  # as a kill leaves it
    (d / RUN_RECORD).write_text(json.dumps(record))
    ckpts = d / "checkpoints"
    newest = ckpts / "s0_000000000256"
    states = newest / "mp_rank_00_model_states.pt"
    states.write_bytes(states.read_bytes()[: states.stat().st_size // 2])
    (ckpts / "LATEST.json").write_text('{"tag": "s0_00')
    said = []
    assert run(cfg, log=said.append)["status"] == "done"
    assert any(str(newest) in m and "damaged" in m for m in said)
    assert any("resuming from checkpoint s0_000000000192" in m for m in said)

    def records(folder, name):
        rows = read_jsonl(folder / run_id(cfg) / name)
        return [{k: v for k, v in r.items() if k not in ("samples_per_s", "run_id", "train_s", "time")} for r in rows]  # timings

    assert records(tmp_path / "damaged", EVALS) == records(tmp_path / "whole", EVALS)
    assert records(tmp_path / "damaged", METRICS) == records(tmp_path / "whole", METRICS)


@pytest.mark.slow
def test_killed_in_every_phase_the_run_still_ends_as_an_uninterrupted_one(tmp_path):
    """Fault injection: kill -9 the run while it starts (building its caches, from an empty cache folder),
    trains, writes a checkpoint and evaluates (the phase read from its heartbeat, at a random instant
    inside it), resuming each time; the final records equal an uninterrupted run's."""
    common = ["train.budget.samples=1280", "train.checkpoint_every=64", "eval.grid=[0, 320, 640, 1280]"]
    ref = cli(tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    rng = random.Random(os.getpid())
    cache = {"VLJEPA_CACHE": str(tmp_path / "fresh_cache")}  # so start-up builds the caches, and is killed there
    killed = []
    for phase in ("starting", "building caches", "evaluating", "training", "checkpointing"):
        proc = cli(tmp_path / "killed", *common, env=cache, wait=False)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            beats = list((tmp_path / "killed").glob("*/heartbeat.json"))
            try:
                now = json.loads(beats[0].read_text())["phase"] if beats else None
            except (OSError, ValueError):
                now = None  # replaced while read
            if now and now.startswith(phase):
                time.sleep(rng.uniform(0.0, 0.05 if phase == "checkpointing" else 0.5))
                proc.send_signal(signal.SIGKILL)
                killed.append(phase)
                break
            time.sleep(0.005)
        proc.wait()
    assert len(killed) >= 4, f"killed only in {killed}"  # a short phase can be missed between two polls
    finished = cli(tmp_path / "killed", *common, env=cache)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    e_ref, l_ref, _ = final_records(tmp_path / "ref", common)
    e_res, l_res, d = final_records(tmp_path / "killed", common)
    assert e_ref == e_res and l_ref == l_res
    assert read_json(d / RUN_RECORD)["status"] == "done"


@pytest.mark.slow
def test_killed_at_random_instants_the_run_ends_as_an_uninterrupted_one(tmp_path):
    """A seeded property test: kill -9 the run at K random instants (start-up included), resuming each time;
    its evaluation records and every metrics row (but their wall-clock fields) equal an uninterrupted run's.
    log_every=3 with a checkpoint every 2 steps: resumes fall inside logging windows."""
    common = ["train.budget.samples=960", "train.checkpoint_every=64", "train.log_every=3", "eval.grid=[0, 480, 960]"]
    ref = cli(tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    seed = int(os.environ.get("VLJEPA_KILL_SEED", "20261203"))
    rng = random.Random(seed)
    for _ in range(4):
        proc = cli(tmp_path / "killed", *common, wait=False)
        time.sleep(rng.uniform(2.0, 25.0))
        if proc.poll() is not None:
            break  # finished before this instant
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = cli(tmp_path / "killed", *common)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    e_ref, m_ref, _ = final_records(tmp_path / "ref", common)
    e_res, m_res, d = final_records(tmp_path / "killed", common)
    assert e_ref == e_res, f"seed {seed}"
    assert m_ref == m_res, f"seed {seed}: metrics.jsonl differs from the uninterrupted run's"
    assert read_json(d / RUN_RECORD)["status"] == "done"


def test_a_run_killed_before_its_first_checkpoint_starts_over_without_duplicate_records(tmp_path):
    """Found by the fault-injection test: evaluated at 0 samples, then killed before any checkpoint, a run
    kept its old records and wrote them again on restart."""
    cfg = cfg_for(tmp_path, "train.budget.samples=64", "eval.grid=[0, 64]")
    run_in_process(cfg)
    d = tmp_path / run_id(cfg)
    whole = read_jsonl(d / EVALS)
    shutil.rmtree(d / "checkpoints")  # as if killed after evaluating at 0, before the first checkpoint
    record = read_json(d / RUN_RECORD)
    record["status"] = "running"
    (d / RUN_RECORD).write_text(json.dumps(record))
    run_in_process(cfg)
    again = read_jsonl(d / EVALS)
    key = [(r["samples_seen"], r["task"], r["metric"]) for r in again]
    assert len(key) == len(set(key)) == len(whole)


def test_a_full_disk_while_checkpointing_fails_naming_it_and_loses_nothing(tmp_path, monkeypatch):
    """The disk fills while the second checkpoint is written: the run fails saying where and how much space
    is left, the first checkpoint stays intact, and once there is space the run resumes from it and ends
    with the records of a run that never failed."""
    import errno

    import bench.run.checkpoint

    ref = cfg_for(tmp_path / "ref")
    run_in_process(ref)
    cfg = cfg_for(tmp_path / "full")
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if str(f).endswith("client_rank0.pt") and len([c for c in calls if str(c).endswith("client_rank0.pt")]) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(bench.run.checkpoint.torch, "save", save)
    with pytest.raises(OSError, match=r"checkpoint s0_000000000128 could not be written under .*checkpoints "
                                      r"\(No space left on device; .* GiB free there\); the newest intact checkpoint "
                                      r"is s0_000000000064"):
        run_in_process(cfg)
    monkeypatch.setattr(bench.run.checkpoint.torch, "save", real_save)
    d = tmp_path / "full" / run_id(cfg)
    record = read_json(d / RUN_RECORD)
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    run_in_process(cfg)
    assert read_json(d / RUN_RECORD)["status"] == "done"
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("train_s", "time", "samples_per_s")} for r in rows]  # noqa: E731
    assert strip(read_jsonl(d / EVALS)) == strip(read_jsonl(tmp_path / "ref" / run_id(ref) / EVALS))


def test_a_full_disk_while_writing_records_keeps_the_earlier_ones_whole(tmp_path, monkeypatch):
    """The disk fills in the middle of appending an evaluation's records: the half-written lines are cut
    back, the run fails naming the file, and started again once there is space it ends with the records of
    a run that never failed."""
    import builtins
    import errno

    ref = cfg_for(tmp_path / "ref")
    run_in_process(ref)
    cfg = cfg_for(tmp_path / "full")
    d = tmp_path / "full" / run_id(cfg)
    real_open, appends = builtins.open, []

    class FillsUp:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, text):
            self.f.write(text[: len(text) // 2])  # half of it reaches the disk
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if str(file) == str(d / EVALS) and mode == "a":
            appends.append(file)
            if len(appends) == 2:
                return FillsUp(f)
        return f

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(OSError, match=r"No space left on device: \d+ record\(s\) could not be appended to .*evals.jsonl"):
        run_in_process(cfg)
    monkeypatch.setattr(builtins, "open", real_open)
    text = (d / EVALS).read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())  # no torn line
    assert read_json(d / RUN_RECORD)["status"] == "failed"
    run_in_process(cfg)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("train_s", "time", "samples_per_s")} for r in rows]  # noqa: E731
    assert strip(read_jsonl(d / EVALS)) == strip(read_jsonl(tmp_path / "ref" / run_id(ref) / EVALS))


@pytest.mark.parametrize("on_error", ["continue", "stop"])
def test_a_task_failing_inside_a_run_keeps_the_other_records_and_the_checkpoint(tmp_path, monkeypatch, on_error):
    """One task's evaluation fails (out of memory, an unreadable set) at every evaluation: by default the failure
    is recorded in evals.jsonl and run.json and the run goes on; with eval.on_task_error=stop the run fails,
    keeping the records of the task evaluated before it and its checkpoints."""
    from bench.eval import tasks

    def out_of_memory(model, ctx, s):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setitem(tasks.TASKS, "vqa", tasks.Task(out_of_memory, tasks.TASKS["vqa"].reads))
    cfg = cfg_for(tmp_path, f"eval.on_task_error={on_error}", "eval.grid=[128, 256]")
    d = tmp_path / run_id(cfg)
    if on_error == "stop":
        with pytest.raises(RuntimeError, match="out of memory"):
            run_in_process(cfg)
        record = read_json(d / RUN_RECORD)
        assert record["status"] == "failed" and "out of memory" in record["error"]
        assert {r["task"] for r in read_jsonl(d / EVALS)} == {"classification"}  # evaluated before the failure
        assert list((d / "checkpoints").glob("s0_*"))
        return
    record = run_in_process(cfg)
    assert record["status"] == "done"
    assert [(f["samples_seen"], f["task"]) for f in record["eval_failures"]] == [(128, "vqa"), (256, "vqa")]
    assert "RuntimeError: CUDA out of memory" in record["eval_failures"][0]["error"]
    evals = read_jsonl(d / EVALS)
    failed = [r for r in evals if r["metric"] == "failed"]
    assert [(r["samples_seen"], r["task"], r["value"]) for r in failed] == [(128, "vqa", None), (256, "vqa", None)]
    assert {r["samples_seen"] for r in evals if r["task"] == "classification" and r["metric"] == "top1"} == {128, 256}
