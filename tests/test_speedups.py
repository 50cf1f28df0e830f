"""Speed-ups change the cost of a step, not what it computes: activation checkpointing gives the same
gradients exactly; a compiled model the same losses to float precision, through a whole run."""

from __future__ import annotations

import pytest
import torch

from bench.config import run_id
from bench.results import METRICS, read_jsonl
from bench.run import speedups
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


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_optimizer_implementations_take_the_same_step(impl):
    from dataclasses import replace

    from bench.config import TrainConfig
    from bench.run.engine import adamw

    def step(optimizer_impl: str) -> dict[str, torch.Tensor]:
        cfg, model = tiny("vljepa")
        opt = adamw(model.param_groups(1e-3, 0.01), 1e-3, replace(TrainConfig(), optimizer_impl=optimizer_impl))
        expected = {"default": (None, None), "foreach": (True, None), "fused": (None, True)}[optimizer_impl]
        assert (opt.defaults["foreach"], opt.defaults["fused"]) == expected
        for batch in batches(cfg, 3, 16):
            opt.zero_grad()
            model.loss(batch)["loss"].backward()
            opt.step()
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    torch.manual_seed(0)
    a = step("default")
    torch.manual_seed(0)
    b = step(impl)
    assert a.keys() == b.keys() and all(torch.allclose(a[n], b[n], rtol=1e-5, atol=1e-6) for n in a)
    start = tiny("vljepa")[1].state_dict()  # built once, not once per parameter the check reads
    assert any(not torch.equal(a[n], start[n]) for n in a)  # the step moved weights


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["fused"])
def test_another_optimizer_implementation_trains_to_the_same_losses(tmp_path, impl):
    default = cfg_for(tmp_path / "default", "train.budget.samples=128", "eval.grid=[128]")
    other = cfg_for(tmp_path / impl, "train.budget.samples=128", "eval.grid=[128]", f"train.optimizer_impl={impl}")
    assert run_id(other) != run_id(default) and run_id(default) == run_id(cfg_for(tmp_path, "train.budget.samples=128",
                                                                                  "eval.grid=[128]"))
    run_in_process(default)
    run_in_process(other)
    a = [r["loss"] for r in read_jsonl(tmp_path / "default" / run_id(default) / METRICS)]
    b = [r["loss"] for r in read_jsonl(tmp_path / impl / run_id(other) / METRICS)]
    assert len(a) == len(b) == 2 and a == pytest.approx(b, rel=1e-5)
