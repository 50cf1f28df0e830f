"""train.encode_targets=step: an optimizer step's targets encoded in one call train exactly as targets
encoded micro-batch by micro-batch (models/step_targets.py), with fewer Y-encoder calls."""

from __future__ import annotations

import pytest
import torch

from bench import dist as distenv
from bench.config import load_run_config
from bench.tools import perf
from tests.conftest import tiny_overrides

# the tiny test Y-encoder without dropout: both ways then compute the same gradients, up to rounding
NO_DROPOUT_Y = ("model.y_encoder.backbone.arch={model_type: bert, hidden_size: 64, num_hidden_layers: 1, "
                "num_attention_heads: 2, intermediate_size: 128, max_position_embeddings: 64, "
                "hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}")


def _train(encode_targets: str, *extra: str):
    """Three optimizer steps of 4 micro-batches: (losses, weights before, weights after, Y-encoder backbone
    calls with their batch sizes)."""
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        NO_DROPOUT_Y, "train.global_batch=32", "train.micro_batch=8", "train.warmup_samples=32",
        "train.budget.samples=96", "eval.grid=[]", "eval.tasks=[]", "data.num_workers=0",
        f"train.encode_targets={encode_targets}", *extra))
    device = distenv.setup(distenv.detect())  # the process group a run makes (kept, as in-process runs keep it)
    model, _, _, cached, engine, _ = perf.prepare(cfg, device)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    calls = []
    model.y_encoder.backbone.register_forward_hook(
        lambda m, args, kwargs, out: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    losses = perf.time_steps(engine, cfg, cached, steps=3, device=device, warmup=0)["losses"]
    return losses, before, model.state_dict(), calls


@pytest.mark.parametrize("y_lr,zero", [(0.05, 0), (0.0, 0), (0.05, 2)],
                         ids=["trained_y_encoder", "frozen_y_encoder", "trained_y_encoder_zero2"])
def test_step_encoding_trains_as_micro_batch_encoding_does(y_lr, zero):
    """The same losses and the same weight updates in three steps, every trained part included (a trained
    Y-encoder's gradient reaches it through the cached target gradients), from 2 backbone calls a step
    (one without a graph, one with) where micro-batch encoding makes 4."""
    y = (f"model.y_encoder.lr_multiplier={y_lr}", f"train.zero_stage={zero}")
    losses_micro, before, after_micro, calls_micro = _train("micro_batch", *y)
    losses_step, _, after_step, calls_step = _train("step", *y)
    assert losses_step == pytest.approx(losses_micro, rel=1e-5)
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after_micro[k])}
    assert moved >= {"predictor", "vis_proj", "pred_head", "y_head"} and ("y_encoder" in moved) == (y_lr > 0)
    for k in before:  # each tensor's update, to rounding (Adam turns a gradient's rounding noise near 0 into
        # an update of up to the LR, so single elements may differ: the update as a whole may not)
        update_micro, update_step = after_micro[k] - before[k], after_step[k] - before[k]
        # (and a gradient that is 0 in exact arithmetic, as a key bias's, is pure rounding either way)
        assert (update_step - update_micro).norm() <= 1e-2 * update_micro.norm() + 1e-6, k
    if y_lr > 0:
        assert calls_micro == [8] * 12 and calls_step == [32, 32] * 3
    else:  # a frozen backbone's outputs for the training targets come from the feature cache either way
        assert calls_step == calls_micro


def test_step_encoding_refuses_what_it_cannot_do(capsys):
    """nonfinite=skip cannot skip one micro-batch of a Y-encoder backpropagated once per step, ZeRO-3 would
    keep the last step's Y-encoder gradient (it overwrites only at a step's first backward), and a model
    without a target encoder (the VLM) is refused by the sweep before anything is submitted."""
    from bench.sweep.plan import main

    with pytest.raises(ValueError, match="nonfinite=skip"):
        load_run_config("base/tiny.yaml", tiny_overrides("train.encode_targets=step", "train.nonfinite=skip"))
    with pytest.raises(ValueError, match="zero_stage=3"):
        load_run_config("base/tiny.yaml", tiny_overrides("train.encode_targets=step", "train.zero_stage=3"))
    assert main(["comparison/jepa_vs_vlm.yaml", "train.encode_targets=step", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "train.encode_targets" in err and "model.name='vlm'" in err


@pytest.mark.slow
def test_two_process_zero2_step_encoding_logs_the_losses_of_micro_batch_encoding(tmp_path):
    """Across 2 processes, where ZeRO-2 reduces and partitions the gradients, a step's targets encoded in
    one call on each process train as they do micro-batch by micro-batch: the same losses at every step."""
    import subprocess
    import sys

    from bench.config import REPO_ROOT
    from bench.results import METRICS, read_jsonl
    from tests.tinyrun import clean_env

    losses = {}
    for mode in ("micro_batch", "step"):
        out = tmp_path / mode
        args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29537",
                "-m", "bench.run.train", "base/tiny.yaml",
                *tiny_overrides(NO_DROPOUT_Y, f"output_dir={out}", "train.global_batch=32", "train.micro_batch=4",
                                "train.zero_stage=2", "train.budget.samples=128", "train.log_every=1",
                                "eval.grid=[]", "eval.tasks=[]", f"train.encode_targets={mode}")]
        done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, env=clean_env(), timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        losses[mode] = [m["loss"] for m in read_jsonl(next(out.iterdir()) / METRICS)]
    assert len(losses["step"]) == 4 and losses["step"] == pytest.approx(losses["micro_batch"], rel=1e-5)
