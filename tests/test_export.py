"""Portable checkpoints: export (any ZeRO stage) -> safetensors folder -> bench.tools.evaluate and Python give the run's
own metrics, with nothing outside the folder read."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bench.config import run_id
from bench.results import RunDir, read_jsonl
from bench.run.checkpoint import read_latest
from bench.tools.evaluate import main as eval_main
from bench.tools.export import main as export_main
from tests.tinyrun import cfg_for, run_in_process


@pytest.mark.parametrize("zero", [0, 2, 3])
def test_export_then_eval_gives_the_runs_own_metrics(tmp_path, zero, capsys):
    cfg = cfg_for(tmp_path / "runs", f"train.zero_stage={zero}", "train.budget.samples=128", "eval.grid=[128]")
    run_in_process(cfg)
    run = RunDir.of(tmp_path / "runs", run_id(cfg))
    recorded = {(r["task"], r["metric"]): r["value"] for r in read_jsonl(run.evals) if r["samples_seen"] == 128}
    out = tmp_path / "exported"
    assert export_main([str(run.path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizers"]
    assert {f.stat().st_mode & 0o777 for f in out.rglob("*") if f.is_file()} == {0o644}  # one mode, shared
    info = json.loads((out / "config.json").read_text())
    assert info["run_id"] == run.path.name and info["samples_seen"] == 128
    shutil.rmtree(tmp_path / "runs")  # the export stands alone: no run folder, no DeepSpeed checkpoint
    assert eval_main([str(out)]) == 0
    assert f"{run.path.name} at 128 samples" in capsys.readouterr().out
    again = {(r["task"], r["metric"]): r["value"] for r in read_jsonl(out / "ondemand" / f"{info['checkpoint']}.jsonl")}
    assert again == recorded  # every metric, exactly


def test_eval_reads_a_zero3_checkpoint_and_python_loads_an_export(tmp_path, capsys):
    from bench.tools.evaluate import load_checkpointed_model
    from bench.tools.export import load_export

    cfg = cfg_for(tmp_path / "runs", "train.zero_stage=3", "train.budget.samples=64", "eval.grid=[64]",
                  "eval.tasks=[classification]")
    run_in_process(cfg)
    run = RunDir.of(tmp_path / "runs", run_id(cfg))
    assert eval_main([str(run.path), "--tasks", "classification"]) == 0  # ZeRO-3 partitions merged, not refused
    tag = read_latest(run.checkpoints)["tag"]
    _, from_ckpt = load_checkpointed_model(run, run.checkpoints / tag)
    assert export_main([str(run.checkpoints / tag), "--out", str(tmp_path / "e")]) == 0
    loaded_cfg, model = load_export(tmp_path / "e")
    assert loaded_cfg.model.name == cfg.model.name and not model.training
    theirs = from_ckpt.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())


def test_export_names_what_is_missing(tmp_path, capsys):
    assert export_main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a run folder" in capsys.readouterr().err
