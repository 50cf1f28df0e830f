"""A baseline added as one file (models/dual_encoder.py) gets training and every task unchanged."""

from __future__ import annotations

from bench.build import build_model
from bench.config import load_run_config, run_id
from dataclasses import replace

import torch

from bench.data.shapes import TrainSamples
from bench.evalsets.registry import load_sets
from bench.results import EVALS, read_jsonl
from bench.tasks import evaluate
from bench.tasks.common import EvalContext
from bench.train import run
from models import registry
from models.protocol import Model
from tests.conftest import tiny_overrides


def test_a_registered_baseline_trains_and_runs_tasks(tmp_path):
    assert "dual_encoder" in registry.names()
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        "model.name=dual_encoder", f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=32",
        "train.budget.samples=128", "eval.grid=[0, 128]", "eval.size=16", "eval.batch=16",
        "eval.tasks=[classification, retrieval]"))
    record = run(cfg, log=lambda m: None)
    assert record["status"] == "done" and record["model"] == "dual_encoder"
    evals = read_jsonl(tmp_path / run_id(cfg) / EVALS)
    assert {(r["samples_seen"], r["task"]) for r in evals} >= {(0, "classification"), (128, "retrieval")}

    model = build_model(cfg)
    assert isinstance(model, Model)
    tasks = ["captioning", "hardneg", "world", "vqa"]
    cfg = replace(cfg, eval=replace(cfg.eval, tasks=tasks, size=12, batch=12, decoder_steps=5, decoder_clips=10))
    ctx = EvalContext.for_run(cfg, model, "pretrain", torch.device("cpu"), load_sets(cfg),
                              TrainSamples(cfg.data, cfg.seed))
    tasks = {r["task"] for r in evaluate(model, ctx, tasks)}
    assert tasks == {"captioning", "hardneg", "world", "vqa"}
