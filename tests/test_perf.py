"""The benchmark command: its attention FLOP counts, and one end-to-end run on the tiny preset."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bench.run.build import build_model
from bench.run.flops import attention_flop_formulas
from bench.tools import perf


def _flops(fn) -> int:
    with FlopCounterMode(display=False, custom_mapping=attention_flop_formulas()) as counter:
        fn()
    return counter.get_total_flops()


def test_grouped_query_attention_counts_the_work_of_full_heads():
    q = torch.randn(2, 4, 16, 8, device="meta")  # the GPU's flash kernel, shapes only
    kv = torch.randn(2, 2, 16, 8, device="meta")
    gqa = _flops(lambda: torch.ops.aten._scaled_dot_product_flash_attention(q, kv, kv))
    full = _flops(lambda: torch.ops.aten._scaled_dot_product_flash_attention(q, q, q))
    assert gqa == full == 2 * (2 * 2 * 4 * 16 * 16 * 8)  # two matrix products, 2 FLOPs a multiply-add


def test_cpu_attention_forward_and_backward_are_counted():
    q, k, v = (torch.randn(1, 2, 8, 4, requires_grad=True) for _ in range(3))
    n = _flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    assert n == 2 * 2 * 2 * 8 * 8 * 4 * (1 + 2.5)  # forward, and backward at 2.5x (torch's formula)


@pytest.mark.slow
def test_benchmark_runs_and_writes_its_report(tmp_path):
    assert perf.main(["--presets", "tiny", "--steps", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "latest.json").read_text())
    assert [r["model"] for r in report["records"]] == ["vljepa", "vlm"]
    for r in report["records"]:
        s = r["step_cached"]
        assert s["total"] > 0 and abs(s["data"] + s["forward"] + s["backward"] + s["optimizer"] + s["other"] - s["total"]) < 1e-9
        assert r["flops_per_sample"] > 0 and 0 < r["mfu"] < 1
        assert r["score_K100_ms_per_sample"] > 0 and r["score_first_K100_ms_per_sample"] > 0 and r["trainable_params"] > 0
    md = (tmp_path / "latest.md").read_text()
    assert "| tiny | vljepa |" in md and "scores 100 candidates" in md


@pytest.mark.parametrize("name,encode_targets", [("vljepa", "micro_batch"), ("vlm", "micro_batch"), ("vljepa", "step")])
def test_perf_times_the_step_a_run_takes(tmp_path, name, encode_targets):
    """bench.tools.perf and bench.run.train share bench.run.step.optimizer_step: the same seed gives the same loss at
    every step (with gradient accumulation, so the step's reduction over micro-batches is covered, and
    the step's targets encoded in one call as the run's config asks)."""
    from bench.config import load_run_config, run_id
    from bench.results import METRICS, read_jsonl
    from bench.run.train import run
    from tests.conftest import tiny_overrides

    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"model.name={name}", f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=16",
        "train.budget.samples=96", "train.warmup_samples=32", "train.log_every=1", "eval.grid=[]", "eval.tasks=[]",
        "data.num_workers=0", f"train.encode_targets={encode_targets}"))
    run(cfg, log=lambda m: None)
    from_run = [r["loss"] for r in read_jsonl(tmp_path / run_id(cfg) / METRICS)]
    _, _, _, cached, engine, _ = perf.prepare(cfg, torch.device("cpu"))
    timed = perf.time_steps(engine, cfg, cached, steps=3, device=torch.device("cpu"), warmup=0)
    assert len(from_run) == 3 and timed["losses"] == from_run


class _Measured(Exception):
    """Raised by the stand-in for measure: the command got past its configs."""


@pytest.mark.parametrize("argv", [["--presets", "paper"], ["--sweep", "paper/jepa_vs_vlm.yaml", "--offline"]])
def test_the_offline_paper_commands_load_their_configs_and_build(monkeypatch, capsys, tmp_path, argv):
    """The paper preset and the paper sweep, offline, as docs/performance.md and docs/cluster.md run them: the
    configs load (a sentence-transformers Y-encoder needs weights on disk, the sweep's eval sets a cluster's
    folders: the offline overrides set neither), each model builds on the meta device, and the output says what
    offline changed. Stops where measuring would start (paper scale does not fit a CPU test)."""
    configs = []

    def measure(label, cfg, *args, **kwargs):
        configs.append(cfg)
        if len(configs) == 2:
            raise _Measured
        return {}

    monkeypatch.setattr(perf.distenv, "setup", lambda env: torch.device("cpu"))  # no process group
    monkeypatch.setattr(perf, "measure", measure)
    monkeypatch.setattr(perf, "table", lambda report: "")
    with pytest.raises(_Measured):
        perf.main([*argv, "--out", str(tmp_path)])
    assert "note:" in capsys.readouterr().out
    assert [c.model.name for c in configs] == ["vljepa", "vlm"]
    trainable = []
    for cfg in configs:
        assert cfg.model.y_encoder.pipeline == "mean_pool" and not cfg.model.y_encoder.prompt
        assert not cfg.model.lm.backbone.pretrained and cfg.data.source == "shapes" and cfg.train.precision == "bf16"
        counts = build_model(cfg, meta=True).parameter_counts()
        trainable.append(sum(c["trainable"] for c in counts.values()))
    assert all(n > 4e8 for n in trainable)
    if "--sweep" in argv:  # the VLM with all 16 layers, embeddings trained: more trainable than VL-JEPA's 8 and Y-encoder
        assert configs[1].model.lm.layers == ":" and trainable[1] > trainable[0] and not configs[0].eval.tasks
