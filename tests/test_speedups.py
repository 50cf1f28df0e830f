"""Speed-ups change the cost of a step, not what it computes: activation checkpointing gives the same
gradients exactly; a compiled model the same losses to float precision, through a whole run."""

from __future__ import annotations

import pytest
import torch

from bench import speedups
from bench.config import run_id
from bench.results import METRICS, read_jsonl
from tests.test_models import batches, tiny
from tests.tinyrun import cfg_for, run_in_process


def _grads(name: str, checkpointing: bool) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(0)  # dropout draws from the global RNG: the same draws in both
    cfg, model = tiny(name)
    done = speedups.apply(model, activation_checkpointing=checkpointing, compile=False)
    assert bool(done) == checkpointing
    model.train()
    loss = model.loss(batches(cfg, 1, 16)[0])["loss"]
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["vljepa", "vlm"])
def test_activation_checkpointing_gives_the_same_gradients(name):
    loss, grads = _grads(name, False)
    loss_ckpt, grads_ckpt = _grads(name, True)
    assert loss == loss_ckpt and grads.keys() == grads_ckpt.keys()
    assert all(torch.allclose(grads[n], grads_ckpt[n], rtol=0, atol=1e-7) for n in grads)


def test_only_trained_backbones_are_touched():
    _, model = tiny("vljepa", "model.y_encoder.lr_multiplier=0")
    names = [n for n, _ in speedups.trained_backbones(model)]
    assert names == ["predictor"]  # the frozen X-encoder and the frozen Y-encoder are left alone


@pytest.mark.slow
def test_a_compiled_run_trains_to_the_same_losses(tmp_path):
    eager = cfg_for(tmp_path / "eager", "train.budget.samples=128", "eval.grid=[128]")
    fast = cfg_for(tmp_path / "compiled", "train.budget.samples=128", "eval.grid=[128]", "train.compile=true")
    assert run_id(fast) != run_id(eager)  # compiled numerics may differ in the last bits: another run
    run_in_process(eager)
    run_in_process(fast)
    a = [r["loss"] for r in read_jsonl(tmp_path / "eager" / run_id(eager) / METRICS)]
    b = [r["loss"] for r in read_jsonl(tmp_path / "compiled" / run_id(fast) / METRICS)]
    assert len(a) == len(b) == 2 and a == pytest.approx(b, rel=1e-4)  # a row every 2 of the 4 steps
    log = (tmp_path / "compiled" / run_id(fast) / "log.txt").read_text()
    assert "torch.compile: predictor" in log
