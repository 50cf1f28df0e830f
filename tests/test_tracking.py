"""Trackers: a tiny run's TensorBoard events, CSV rows and (offline) W&B history hold exactly its records."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from bench.config import ConfigError, load_run_config, run_id
from bench.results import EVALS, METRICS, RunDir, read_csv_rows, read_jsonl
from bench.run.trackers import eval_tag
from tests.tinyrun import cfg_for, run_in_process


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {samples_seen: value}, read back as TensorBoard reads it (purged steps dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice {steps}"
        out[tag] = {e.step: e.value for e in events}
    return out


def expected_scalars(d: RunDir) -> dict[str, dict[int, float]]:
    """What the run's own records say each tracker should hold."""
    want: dict[str, dict[int, float]] = {}
    for row in read_jsonl(d.path / METRICS):
        for key in ("loss", "lr", "grad_norm"):
            want.setdefault(f"train/{key}", {})[row["samples_seen"]] = row[key]
    for rec in read_jsonl(d.path / EVALS):
        want.setdefault(eval_tag(rec), {})[rec["samples_seen"]] = rec["value"]
    return want


def close(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])) for k in a)


def wandb_history(folder: Path) -> list[dict]:
    """The history rows of an offline W&B run file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    data = (next(folder.rglob("run-*.wandb"))).read_bytes()
    pos, block, rows, pending = 7, 32768, [], b""  # a 7-byte file header, then 32 KiB blocks
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.HasField("history"):
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def test_a_run_tracks_its_losses_and_evaluations(tmp_path):
    pytest.importorskip("wandb")  # the test extra installs it
    cfg = cfg_for(tmp_path, "tracking.trackers=[tensorboard, csv, wandb]", f"output_dir={tmp_path / 'runs'}")
    run_in_process(cfg)
    d = RunDir.of(tmp_path / "runs", run_id(cfg))
    want = expected_scalars(d)
    assert "classification/top1/shapes" in want and len(want["train/loss"]) >= 4

    got = tensorboard_scalars(d.tensorboard(cfg.name))
    assert d.tensorboard(cfg.name) == tmp_path / "tensorboard" / cfg.name / run_id(cfg)
    for tag, values in want.items():
        assert close(got[tag], values), tag

    rows = read_csv_rows(d.scalars)
    from_csv: dict[str, dict[int, float]] = {}
    for r in rows:
        from_csv.setdefault(r["tag"], {})[int(r["samples_seen"])] = float(r["value"])
    for tag, values in want.items():
        assert close(from_csv[tag], values), tag

    history = wandb_history(d.wandb)
    for tag, values in want.items():
        logged = {int(h["samples_seen"]): h[tag] for h in history if tag in h}
        assert close(logged, values), tag


def test_a_restarted_run_tracks_each_step_once(tmp_path):
    """Killed before its first checkpoint and started again, the run logs everything again: TensorBoard's
    purge step and the CSV's truncation keep one value per step, the second attempt's."""
    cfg = cfg_for(tmp_path, "tracking.trackers=[tensorboard, csv]", "train.budget.samples=128", "eval.grid=[0, 128]",
                  "train.checkpoint_every=0", f"output_dir={tmp_path / 'runs'}")
    run_in_process(cfg)
    d = RunDir.of(tmp_path / "runs", run_id(cfg))
    import shutil

    shutil.rmtree(d.checkpoints)
    record = json.loads(d.record.read_text())
    d.record.write_text(json.dumps({**record, "status": "running"}))
    run_in_process(cfg)
    want = expected_scalars(d)
    got = tensorboard_scalars(d.tensorboard(cfg.name))  # asserts no step twice
    assert len(list(d.tensorboard(cfg.name).glob("events.out.tfevents.*"))) == 2
    for tag, values in want.items():
        assert close(got[tag], values), tag
    tags_steps = [(r["tag"], r["samples_seen"]) for r in read_csv_rows(d.scalars)]
    assert len(tags_steps) == len(set(tags_steps))


def test_an_unknown_or_uninstalled_tracker_fails_at_validation(monkeypatch):
    with pytest.raises(ConfigError, match="tracking.trackers"):
        load_run_config("base/tiny.yaml", ["tracking.trackers=[tensorbord]"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"wandb.*not installed.*pip install"):
        load_run_config("base/tiny.yaml", ["tracking.trackers=[wandb]"])


def test_a_sweep_condition_too_long_for_a_folder_name_still_tracks(tmp_path):
    """A sweep over whole backbone configs names its runs by conditions of 300 characters and more: the
    TensorBoard folder shortens each part (with a hash), where the file system refused it before."""
    arch = "model.y_encoder.backbone.arch={'model_type': 'bert', 'hidden_size': 384, 'num_attention_heads': 12}, " * 3
    cfg = cfg_for(tmp_path, "tracking.trackers=[tensorboard]", "train.budget.samples=128", "eval.grid=[128]",
                  f"output_dir={tmp_path / 'runs'}", f"name=y_encoder/{arch}/seed0")
    run_in_process(cfg)
    d = RunDir.of(tmp_path / "runs", run_id(cfg))
    folder = d.tensorboard(cfg.name)
    assert all(len(p.encode()) <= 120 for p in folder.relative_to(tmp_path).parts)
    assert tensorboard_scalars(folder)["train/loss"]
    other = d.tensorboard(f"y_encoder/{arch}x/seed0")
    assert other != folder  # distinct conditions keep distinct folders


def test_a_failure_while_starting_up_marks_the_run_failed(tmp_path, monkeypatch):
    import bench.run.train

    class Broken:
        def __init__(self, *a, **k):
            raise OSError("the tracker's folder cannot be made")

    monkeypatch.setattr(bench.run.train, "Trackers", Broken)
    cfg = cfg_for(tmp_path, "train.budget.samples=128", "eval.grid=[128]", f"output_dir={tmp_path / 'runs'}")
    with pytest.raises(OSError):
        run_in_process(cfg)
    record = json.loads(RunDir.of(tmp_path / "runs", run_id(cfg)).record.read_text())
    assert record["status"] == "failed" and "cannot be made" in record["error"]
