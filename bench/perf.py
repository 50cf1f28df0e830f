"""Where the time goes, as ratios against this machine: `python -m bench.perf [--presets tiny mid] [--steps N]`.

For each twin and preset: the training step broken into waiting for data, forward, backward, optimizer
and the rest (through the same DeepSpeed engine a run uses); the loader's throughput against the model's
consumption; FLOPs per sample (torch's flop counter) and achieved FLOP/s over this process's measured
matmul peak; the frozen X-encoder's share and what the feature cache saves; scoring 10 and 100
candidates and generation latency for both twins; peak memory. Writes results/perf/latest.json and
latest.md (a benchmark, never a test: nothing here is asserted).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from bench import dist as distenv
from bench.build import build_model, cache_dir
from bench.cache import CachedSamples, x_features, y_targets
from bench.config import REPO_ROOT, load_run_config
from bench.data.loader import SharedLoader
from bench.data.shapes import ShapesWorld, TrainSamples
from bench.engine import make_engine, plan_stages

PRESETS = {
    "tiny": [],
    "mid": ["model.lm.backbone.arch.hidden_size=256", "model.lm.backbone.arch.intermediate_size=1024",
            "model.lm.layers=:", "model.embed_dim=256"],
}


def matmul_peak(dtype=torch.float32, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def step_flops(model, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model.loss(batch)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def time_steps(cfg, model, samples, steps: int) -> dict[str, float]:
    """Seconds per optimizer step in each phase, through the DeepSpeed engine."""
    engine, _, _ = make_engine(model, cfg, plan_stages(cfg)[0], 1)
    t = cfg.train
    loader = iter(SharedLoader(samples, t.global_batch, t.micro_batch, t.global_batch * (steps + 2)))
    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0, "total": 0.0}
    engine.train()
    for i in range(steps + 2):
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        out = engine(batch)
        t2 = time.perf_counter()
        engine.backward(out["loss"])
        t3 = time.perf_counter()
        engine.step()
        t4 = time.perf_counter()
        if i >= 2:  # two warm-up steps
            for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                phases[k] += v / steps
    phases["other"] = phases["total"] - phases["data"] - phases["forward"] - phases["backward"] - phases["optimizer"]
    return phases


def loader_rate(samples, batch: int, n_batches: int) -> float:
    loader = iter(SharedLoader(samples, batch, batch, batch * n_batches))
    next(loader)
    t = time.perf_counter()
    for _ in range(n_batches - 1):
        next(loader)
    return batch * (n_batches - 1) / (time.perf_counter() - t)


def inference(model, world: ShapesWorld, ks=(10, 100), batch: int = 32) -> dict[str, float]:
    from bench.data.items import class_names
    from bench.data.loader import collate

    model.eval()
    b = collate([{"video": world.clip("val", i), "query": ""} for i in range(batch)])
    names = class_names() * 3
    out = {}
    for k in ks:
        cands = names[:k]
        model.score(b, cands)
        if hasattr(model, "_text_cache"):
            model._text_cache.clear()  # time the first scoring, encoding included
        t = time.perf_counter()
        model.score(b, cands)
        out[f"score_K{k}_ms_per_sample"] = (time.perf_counter() - t) / batch * 1e3
    if getattr(model, "has_embedding", False) and getattr(model, "decoder", None) is None:
        from models.decoder import YDecoder

        model.decoder = YDecoder(model.cfg.decoder, model.cfg.embed_dim, model.cfg.lm.tokenizer)
    t = time.perf_counter()
    model.generate(b, 16)
    out["generate_ms_per_sample"] = (time.perf_counter() - t) / batch * 1e3
    return out


def measure(preset: str, name: str, steps: int, peak: float, log) -> dict:
    cfg = load_run_config("base/tiny.yaml", [*PRESETS[preset], f"model.name={name}"])
    model = build_model(cfg)
    world = ShapesWorld(cfg.data.shapes)
    raw = TrainSamples(cfg.data, cfg.seed, world)
    feats = x_features(model.x_encoder, world, cache_dir(), log=log)
    if getattr(getattr(model, "y_encoder", None), "frozen", False):
        texts = raw.possible_targets()
        model.y_encoder.set_cache(texts, y_targets(model.y_encoder, texts, cache_dir(), log=log))
    cached = CachedSamples(raw, feats)
    G = cfg.train.global_batch
    rec = {"preset": preset, "model": name,
           "trainable_params": sum(c["trainable"] for c in model.parameter_counts().values())}
    batch = next(iter(SharedLoader(cached, G, G, G)))
    rec["flops_per_sample"] = step_flops(model, batch) / G
    rec["step_cached"] = time_steps(cfg, model, cached, steps)
    rec["step_raw_video"] = time_steps(cfg, model, raw, max(2, steps // 3))
    s = rec["step_cached"]
    rec["samples_per_s"] = G / s["total"]
    rec["share_outside_fwd_bwd_opt"] = (s["data"] + s["other"]) / s["total"]
    rec["mfu"] = rec["flops_per_sample"] * rec["samples_per_s"] / peak
    rec["loader_samples_per_s_cached"] = loader_rate(cached, G, 12)
    rec["loader_over_consumption"] = rec["loader_samples_per_s_cached"] / rec["samples_per_s"]
    rec["x_encoder_share_uncached"] = 1 - rec["step_cached"]["total"] / rec["step_raw_video"]["total"]
    rec["cache_speedup"] = rec["step_raw_video"]["total"] / rec["step_cached"]["total"]
    rec.update(inference(model, world))
    log(f"{preset}/{name}: {rec['samples_per_s']:.0f} samples/s, cache x{rec['cache_speedup']:.1f}")
    return rec


def table(recs: list[dict], peak: float) -> str:
    lines = [f"Matmul peak measured in-process: {peak / 1e9:.0f} GFLOP/s (fp32, 2048x2048).", "",
             "| preset | model | samples/s | step ms (data / fwd / bwd / opt / other) | outside fwd+bwd+opt | "
             "loader / consumption | FLOPs/sample | MFU | cache speed-up | score K=10 / K=100 ms | generate ms |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in recs:
        s = r["step_cached"]
        parts = " / ".join(f"{1e3 * s[k]:.0f}" for k in ("data", "forward", "backward", "optimizer", "other"))
        lines.append(f"| {r['preset']} | {r['model']} | {r['samples_per_s']:.0f} | {parts} | "
                     f"{100 * r['share_outside_fwd_bwd_opt']:.0f}% | {r['loader_over_consumption']:.1f}x | "
                     f"{r['flops_per_sample'] / 1e6:.1f}M | {100 * r['mfu']:.1f}% | {r['cache_speedup']:.1f}x | "
                     f"{r['score_K10_ms_per_sample']:.2f} / {r['score_K100_ms_per_sample']:.2f} | "
                     f"{r['generate_ms_per_sample']:.2f} |")
    by = {(r["preset"], r["model"]): r for r in recs}
    for preset in sorted({r["preset"] for r in recs}):
        j, v = by.get((preset, "vljepa")), by.get((preset, "vlm"))
        if j and v:
            lines.append(f"\n{preset}: VL-JEPA scores 100 candidates {v['score_K100_ms_per_sample'] / j['score_K100_ms_per_sample']:.1f}x "
                         f"faster than the VLM's perplexity scoring; trains {j['samples_per_s'] / v['samples_per_s']:.2f}x "
                         f"the VLM's samples/s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "mid"], choices=sorted(PRESETS))
    p.add_argument("--models", nargs="+", default=["vljepa", "vlm"])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "perf")
    args = p.parse_args(argv)
    distenv.setup(distenv.detect())
    peak = matmul_peak()
    recs = [measure(preset, m, args.steps, peak, log=print) for preset in args.presets for m in args.models]
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    report = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "matmul_peak_flops": peak, "peak_rss_gb": peak_rss_gb, "records": recs, "time": time.time()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=1))
    md = table(recs, peak) + f"\n\nPeak RSS of the whole benchmark process: {peak_rss_gb:.2f} GB.\n"
    (args.out / "latest.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
