"""Sweeps: expansion, validation before submission, parity, dedupe and resume, executors, status (Slurm: test_slurm.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bench.config import EXPERIMENTS, REPO_ROOT, load_run_config
from bench.results import EVALS, RUN_RECORD, read_json, read_jsonl, write_json
from bench.sweep.config import load_sweep_config
from bench.sweep.plan import SweepError, check_parity, expand, grid_points, main
from tests.conftest import sweep_file, tiny_sweep


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
    from bench.sweep.plan import write_sweep_record
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
    from bench.sweep.launch import usable_cpus

    f = tiny_sweep(tmp_path)
    assert main([str(f), "--executor", "local", "--max-parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert "executor: local" in out and "2/2 runs done" in out
    record = read_json(tmp_path / "results" / "sweeps" / "tinyloss.json")
    assert len(record["runs"]) == 2
    for r in record["runs"]:
        d = tmp_path / "results" / "runs" / r["run_id"]
        run = read_json(d / RUN_RECORD)
        assert run["status"] == "done" and read_jsonl(d / EVALS)
        assert run["threads"] == max(1, usable_cpus() // 2)  # the two runs at a time share the CPUs
    assert main([str(f), "--executor", "local"]) == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert main([str(f), "--status"]) == 0
    assert capsys.readouterr().out.count("| done |") == 2
    # --clean checkpoints: a finished run's checkpoints go, its records stay; a run not done keeps its own
    dirs = [tmp_path / "results" / "runs" / r["run_id"] for r in record["runs"]]
    assert all((d / "checkpoints").is_dir() for d in dirs)
    kept = read_json(dirs[1] / RUN_RECORD)
    write_json(dirs[1] / RUN_RECORD, {**kept, "status": "preempted"})
    assert main([str(f), "--clean", "checkpoints"]) == 0
    out = capsys.readouterr().out
    assert "removed the checkpoints of 1 finished run(s)" in out and dirs[1].name in out
    assert not (dirs[0] / "checkpoints").exists() and read_jsonl(dirs[0] / EVALS)
    assert (dirs[1] / "checkpoints").is_dir()


# ---------------------------------------------------------------- Slurm (CI starts a real cluster)

@pytest.mark.parametrize("sweep", sorted(str(p.relative_to(EXPERIMENTS)) for d in ("comparison", "ablations")
                                         for p in (EXPERIMENTS / d).glob("*.yaml")))
def test_every_shipped_tiny_sweep_validates(sweep, capsys):
    from bench.sweep.plan import main

    assert main([sweep, "--dry-run"]) == 0, capsys.readouterr().err


def test_dry_run_shows_parity_and_rejects_an_unregistered_model(capsys):
    from bench.sweep.plan import main

    assert main(["comparison/jepa_vs_vlm.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "parity: 3 comparison group(s) of 2 run(s), each equal in model.x_encoder" in out
    assert "varied: model.name, model.lm.layers" in out
    assert main(["ablations/loss.yaml", "model.name=vljepaa", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model.name='vljepaa' is not registered; did you mean 'vljepa'?" in err and "nothing was submitted" in err


def test_a_misspelt_override_is_reported_once_and_results_go_where_asked(tmp_path, capsys):
    from bench.sweep.plan import main

    assert main(["ablations/loss.yaml", "train.lrr=1", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("unknown key 'train.lrr'") == 1 and err.startswith("error: command line:")
    assert main(["comparison/selective.yaml", "--results", str(tmp_path / "store"), "--dry-run"]) == 0
    from dataclasses import replace

    from bench.sweep.config import load_sweep_config
    from bench.sweep.plan import expand

    sweep, path = load_sweep_config("comparison/selective.yaml")
    runs = expand(replace(sweep, results=str(tmp_path / "store")), path)
    assert all(r.cfg.output_dir == str((tmp_path / "store" / "runs").resolve()) for r in runs)


def test_live_runs_are_shown_where_they_are_and_not_submitted_again(tmp_path, capsys):
    """A run moving in some process (a fresh heartbeat) or waiting in Slurm is live: the sweep shows its
    position and does not submit it again; a run whose heartbeat stopped long ago shows as stalled."""

    from bench.results import RunDir, write_json
    from bench.run.liveness import Heartbeat
    from bench.sweep.plan import expand, sweep_record_path

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
    import time

    from bench.run.liveness import Heartbeat, Watchdog

    said = []
    hb = Heartbeat(tmp_path / "heartbeat.json")
    hb.beat("starting")
    with Watchdog(hb, stall_s=0.3, log=said.append, check_s=0.05):
        time.sleep(1.0)  # nothing moves
    assert len(said) == 1 and said[0].startswith("no progress for") and "since: starting" in said[0]
    assert json.loads((tmp_path / "heartbeat.json").read_text())["stalled"] is True


def test_commands_without_arguments_say_what_they_need(capsys):
    from bench.run.train import main as train_main

    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "name a sweep file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        train_main([])
    assert e.value.code == 2 and "error: name a config file" in capsys.readouterr().err


@pytest.mark.slow
def test_status_of_a_running_local_sweep_shows_counts_and_time_left(tmp_path, capsys):
    f = tiny_sweep(tmp_path, budget=4800)
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep.plan", str(f), "--executor", "local"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen_running = None
    deadline = time.time() + 600
    try:
        while proc.poll() is None and time.time() < deadline:
            assert main([str(f), "--status"]) == 0
            out = capsys.readouterr().out
            if "1 running" in out and " left" in out and "time left unknown" not in out:
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


def test_status_piped_into_a_reader_that_stops_early_exits_quietly():
    """`--status | head -5` under `set -o pipefail` (as docs/troubleshooting.md runs it): a reader that closes
    the pipe before the table is written is not an error. `true` reads nothing, so the write always fails."""
    script = f"set -o pipefail; {sys.executable} -m bench.sweep ablations/loss.yaml --status | true"
    done = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_a_launched_job_shows_as_running_at_once_and_takes_that_back_when_it_fails_to_start(tmp_path, monkeypatch):
    from bench.configlib import to_dict
    from bench.sweep.launch import TrainJob
    from bench.sweep.status import run_state

    cfg = load_run_config("base/tiny.yaml", [f"output_dir={tmp_path}"])
    job = TrainJob(to_dict(cfg))
    assert run_state(cfg, cfg.run_id) == "new"
    beat = job.announce()  # before the trainer's imports: --status sees the run from its first second
    assert run_state(cfg, cfg.run_id).startswith("running: launching, at 0 samples")
    assert job.announce() is None  # a live heartbeat is left to its writer
    beat.unlink()

    def refuse(cfg, **kw):
        raise ValueError("refused")

    monkeypatch.setattr("bench.run.train.run", refuse)
    with pytest.raises(ValueError, match="refused"):
        job()
    assert run_state(cfg, cfg.run_id) == "new"  # not 'running' until its heartbeat went stale
