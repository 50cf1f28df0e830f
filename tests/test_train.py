"""One run end to end: budgets, records, parity, stages, non-finite losses, two processes (faults: test_faults.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from bench.config import REPO_ROOT, run_id
from bench.results import EVALS, METRICS, RUN_RECORD, read_json, read_jsonl
from bench.run.train import NonFiniteLoss
from tests.conftest import tiny_overrides
from tests.tinyrun import TASKS, cfg_for, clean_env, run_in_process


def test_run_records_budget_metrics_and_evals(tmp_path):
    cfg = cfg_for(tmp_path)
    record = run_in_process(cfg)
    d = tmp_path / run_id(cfg)
    assert record["status"] == "done" and read_json(d / RUN_RECORD)["status"] == "done"
    metrics = read_jsonl(d / METRICS)
    assert metrics[-1]["samples_seen"] == 256  # exactly the budget
    assert all(k in metrics[-1] for k in ("loss", "lr", "grad_norm", "samples_per_s", "step"))
    evals = read_jsonl(d / EVALS)
    assert sorted({r["samples_seen"] for r in evals}) == [0, 128, 256]
    assert all(r["chance"] is not None for r in evals)
    assert {r["dataset"] for r in evals} == {"shapes"}
    # the compute axis: training FLOPs (as bench.tools.perf counts them: one micro-batch, per sample) and seconds
    flops = {r["samples_seen"]: r["train_flops"] for r in evals}
    assert flops[0] == 0 and flops[256] == 2 * flops[128] > 0 and record["train_flops"] == flops[256]
    assert 0 < evals[-1]["train_s"] == max(r["train_s"] for r in evals)
    kept = sorted(p.relative_to(d / "predictions").as_posix() for p in (d / "predictions").rglob("*.jsonl"))
    assert kept == [f"{n:012d}/{t}__shapes{kind}.jsonl" for n in (0, 128, 256) for t in ("classification", "vqa")
                    for kind in ("", ".outcomes")]  # each task's choices, and its metrics' per-item hits
    parity = record["parity"]
    assert parity["budget_samples"] == 256 and parity["x_encoder_hash"] and parity["loader_fingerprint"]
    assert record["git_commit"] and record["versions"]["deepspeed"]
    # a second call finds the run done and does nothing
    again = run_in_process(cfg)
    assert again["status"] == "done" and len(read_jsonl(d / METRICS)) == len(metrics)


def test_non_finite_loss_names_the_step(tmp_path):
    cfg = cfg_for(tmp_path, "train.lr=1e30", "model.loss.name=l2", "train.warmup_samples=0",
                  "model.y_encoder.lr_multiplier=0")
    with pytest.raises(NonFiniteLoss, match=r"optimizer step \d+"):
        run_in_process(cfg)
    assert read_json(tmp_path / run_id(cfg) / RUN_RECORD)["status"] == "failed"


def test_skipping_non_finite_losses_is_logged_and_bounded(tmp_path):
    """train.nonfinite=skip logs every skipped micro-batch with its step and fails the run once more than
    train.max_skipped_fraction of its micro-batches were skipped (it does not end "done" regardless)."""
    cfg = cfg_for(tmp_path, "train.lr=1e30", "model.loss.name=l2", "train.warmup_samples=0",
                  "model.y_encoder.lr_multiplier=0", "train.nonfinite=skip", "train.max_skipped_fraction=0.25")
    with pytest.raises(NonFiniteLoss, match="max_skipped_fraction=0.25"):
        run_in_process(cfg)
    d = tmp_path / run_id(cfg)
    assert read_json(d / RUN_RECORD)["status"] == "failed"
    assert re.search(r"step \d+: skipped \d+ micro-batch\(es\) with a non-finite loss", (d / "log.txt").read_text())


@pytest.mark.slow
def test_twins_record_identical_parity_blocks(tmp_path):
    parities = {}
    for name in ("vljepa", "vlm"):
        cfg = cfg_for(tmp_path, f"model.name={name}", "train.budget.samples=64", "eval.grid=[64]")
        parities[name] = run_in_process(cfg)["parity"]
    a, b = parities["vljepa"], parities["vlm"]
    assert a.pop("parameters") != b.pop("parameters")
    assert a == b


@pytest.mark.slow
def test_stage_two_starts_from_stage_one_weights(tmp_path):
    cfg = cfg_for(tmp_path, "train.budget.samples=128", "eval.grid=[]", "eval.tasks=[]", "train.keep_checkpoints=2",
                  "train.stages=[{name: pretrain, data_stage: pretrain, samples: 64}, "
                  "{name: sft, data_stage: sft, samples: 64, lr: 0.0005}]")
    run_in_process(cfg)
    d = tmp_path / run_id(cfg) / "checkpoints"
    from bench.run.build import build_model

    def weights(tag):
        state = torch.load(d / tag / "mp_rank_00_model_states.pt", weights_only=False)["module"]
        return state["pred_head.weight"]

    tags = sorted(p.name for p in d.iterdir() if p.is_dir())
    assert tags == ["s0_000000000064", "s1_000000000064"]
    fresh = build_model(cfg).pred_head.weight
    stage1, stage2 = weights(tags[0]), weights(tags[1])
    assert not torch.equal(stage1, fresh)
    # stage 2 moved on from stage 1's weights, not from a fresh init: it is nearer to stage 1
    assert (stage2 - stage1).norm() < (stage2 - fresh).norm()
    stages = [r["stage"] for r in read_jsonl(tmp_path / run_id(cfg) / METRICS)]
    assert stages[0] == "pretrain" and stages[-1] == "sft"


@pytest.mark.slow
def test_two_process_zero2_run_sees_exactly_the_budget(tmp_path):
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
            "-m", "bench.run.train", "base/tiny.yaml",
            *tiny_overrides(f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=8",
                            "train.zero_stage=2", "train.budget.samples=192", "train.log_every=1",
                            "eval.size=16", "eval.batch=16", "eval.grid=[192]", TASKS)]
    out = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, env=clean_env(),
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    d = next(tmp_path.iterdir())
    rec = read_json(d / RUN_RECORD)
    assert rec["status"] == "done" and rec["world_size"] == 2 and rec["samples_seen"] == 192
    metrics = read_jsonl(d / METRICS)
    assert [m["samples_seen"] for m in metrics] == list(range(32, 193, 32))
    assert metrics[-1]["loss"] < metrics[0]["loss"] + 1.0 and all(m["grad_norm"] > 0 for m in metrics)

