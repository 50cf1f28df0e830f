"""Where the time goes, as ratios against this machine: `python -m bench.perf [--presets ...] [--steps N]`.

For each twin and preset: the training step broken into waiting for data, forward, backward, optimizer
and the rest (through the same DeepSpeed engine a run uses, with the run's gradient accumulation);
the loader's throughput against the model's consumption; FLOPs per sample (bench/run/flops.py, as every run
counts them: torch's flop counter over the first micro-batch's forward and backward, on a copy of the
model) and achieved FLOP/s over this process's measured matmul peak in the
run's precision (on a GPU: MFU); the frozen X-encoder's share and what the feature cache saves;
scoring 10 and 100 candidates and generation latency for both twins; peak memory. Writes
results/perf/latest.json and latest.md (a benchmark, never a test: nothing here is asserted).

Presets: tiny and mid (the CPU defaults) and paper (the default on a GPU): the paper's shapes -
V-JEPA 2 ViT-L on 16 frames at 256 px, 8 Llama-3.2-1B layers, EmbeddingGemma-300M, bf16, micro-batch
8 - with random weights and shapes-world clips at that size, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import gc
import platform
import re
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from bench import dist as distenv
from bench.cache import fit_feature_norm, training_samples
from bench.config import REPO_ROOT, RunConfig, load_run_config
from bench.data.items import class_names
from bench.data.loader import SharedLoader, collate
from bench.data.shapes import ShapesWorld, TrainSamples
from bench.data.text import CLASS_PROMPTS
from bench.results import write_atomic, write_json
from bench.run import speedups
from bench.run.build import build_model
from bench.run.engine import make_engine, plan_stages
from bench.run.flops import flops_per_sample
from bench.run.step import PHASES, Clock, optimizer_step, seed_process, to_device
from bench.sweep.config import load_sweep_config
from bench.sweep.plan import expand
from models.protocol import DecoderData, decoding_of

# the Y-encoder as random weights: a sentence-transformers folder (its Dense layers, its prompts) needs a folder on
# disk, so offline the Y-encoder mean-pools its backbone with no prompt, as paper_micro's does
Y_OFFLINE = ("model.y_encoder.pipeline=mean_pool", "model.y_encoder.prompt=")
PAPER_OFFLINE_MODEL = (  # random weights from each backbone's `arch`, token ids from the built-in tokenizer
    "model.x_encoder.backbone.pretrained=", "model.lm.backbone.pretrained=", "model.y_encoder.backbone.pretrained=",
    "model.lm.tokenizer=builtin:shapes", "model.y_encoder.tokenizer=builtin:shapes", *Y_OFFLINE,
)
PAPER_OFFLINE = [  # the model as above, trained on shapes-world clips at the paper's shapes: nothing downloaded
    *PAPER_OFFLINE_MODEL, "data.source=shapes", "data.shapes.frames=16", "data.shapes.size=256",
    "data.shapes.train_size=256", "data.num_workers=8",
]
# a sweep measured offline: bench.perf evaluates nothing, so no eval set is checked (a sweep's sets are dataset
# folders that a cluster holds; the training data is the shapes world's, as PAPER_OFFLINE sets it)
SWEEP_OFFLINE = ("eval.tasks=[]",)
PRESETS: dict[str, tuple[str, list[str]]] = {
    "tiny": ("base/tiny.yaml", []),
    "mid": ("base/tiny.yaml", ["model.lm.backbone.arch.hidden_size=256", "model.lm.backbone.arch.intermediate_size=1024",
                               "model.lm.layers=:", "model.embed_dim=256"]),
    "paper": ("base/paper.yaml", PAPER_OFFLINE),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matrix product on random data, in this process."""
    cuda = device.type == "cuda"
    n, reps = (8192, 20) if cuda else (2048, 5)
    clock = Clock(device)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    t = clock()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (clock() - t)


def read_through(array, rows: int = 1024) -> None:
    """Read a memory-mapped array once, so that its pages are in the page cache."""
    for start in range(0, len(array), rows):
        float(array[start:start + rows].sum())


def time_steps(engine, cfg: RunConfig, samples, steps: int, device: torch.device, warmup: int = 2) -> dict:
    """Seconds per optimizer step in each phase (summed over its micro-batches) and the loss of every step:
    bench.run.step.optimizer_step, the step a run takes, timed with a synchronising clock."""
    t = cfg.train
    clock = Clock(device)
    loader = SharedLoader(samples, t.global_batch, t.micro_batch, t.global_batch * (steps + warmup),
                          num_workers=cfg.data.num_workers)
    batches = iter(loader)
    phases = dict.fromkeys((*PHASES, "total"), 0.0)
    losses = []
    engine.train()
    for step in range(steps + warmup):
        t0 = clock()
        result = optimizer_step(engine, batches, loader.accumulation, device, t.nonfinite, clock=clock,
                                encode_targets=t.encode_targets)
        total = clock() - t0
        losses.append(result.losses["loss"])
        if step >= warmup:
            for k, v in result.seconds.items():
                phases[k] += v / steps
            phases["total"] += total / steps
    phases["other"] = max(0.0, phases["total"] - sum(phases[k] for k in PHASES))  # not below rounding
    phases["losses"] = losses
    return phases


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def loader_rate(samples, batch: int, n_batches: int, num_workers: int) -> float:
    loader = iter(SharedLoader(samples, batch, batch, batch * n_batches, num_workers=num_workers))
    next(loader)
    t = time.perf_counter()
    for _ in range(n_batches - 1):
        next(loader)
    return batch * (n_batches - 1) / (time.perf_counter() - t)


def inference(model, world: ShapesWorld, captions: list[str], device: torch.device, ks=(10, 100), batch: int = 32,
              reps: int = 5) -> dict[str, float]:
    """Median milliseconds per sample to score K candidates (reps timings each) and to generate 16 tokens
    (through a Y-decoder trained for one step on `captions`, where the model decodes through one).

    Scoring is timed as an evaluation's every batch after its first meets it: a model that encodes the
    candidate texts has them memoised (VL-JEPA's Y-encoder runs once per evaluation, not per clip). The first
    batch, which also encodes them, is timed apart at the largest K (`score_first_K*`)."""
    clock = Clock(device)
    model.eval()
    b = to_device(collate([{"video": world.clip("val", i), "query": ""} for i in range(batch)]), device)
    names = [t.format(n) for t in CLASS_PROMPTS for n in class_names()]  # 144 distinct, as classification asks
    out = {}

    def timed(k: int, first: bool) -> float:
        times = []
        for _ in range(reps):
            if first:
                model.eval()  # a mode switch forgets memoised text encodings
            t = clock()
            model.score(b, names[:k])
            times.append(clock() - t)
        return statistics.median(times) / batch * 1e3

    model.score(b, names[:max(ks)])  # warm-up; memoises the texts' encodings where the model does
    for k in ks:
        out[f"score_K{k}_ms_per_sample"] = timed(k, first=False)
    out[f"score_first_K{max(ks)}_ms_per_sample"] = timed(max(ks), first=True)
    with decoding_of(model, DecoderData(lambda: captions), steps=1, seed=0):
        t = clock()
        model.generate(b, 16)
        out["generate_ms_per_sample"] = (clock() - t) / batch * 1e3
    return out


def profile_step(engine, cfg: RunConfig, samples, device: torch.device, path: Path) -> None:
    """torch.profiler over one optimizer step: the operators and kernels that took the most time."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
        time_steps(engine, cfg, samples, 1, device, warmup=0)
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    write_atomic(path, prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=70))


def prepare(cfg: RunConfig, device: torch.device, log=None):
    """(model, world, raw samples, cached samples, engine, FLOPs per sample) as a run on the shapes world
    builds them: the process seeded alike, the model, its caches, FLOPs counted on a copy before the engine,
    one DeepSpeed engine (ZeRO hooks its parameters once)."""
    seed_process(cfg.seed, 0)
    model = build_model(cfg).to(device)
    world = ShapesWorld(cfg.data.shapes)
    raw = TrainSamples(cfg.data, cfg.seed, world)
    fit_feature_norm(model, raw, log=log)
    raw.possible_targets()  # fills the world's scene and caption caches, as a run's first epoch does
    cached = training_samples(model, raw, world, log=log)
    read_through(cached.features)  # a cold page cache would time the disk, once per machine, not the step
    t = cfg.train
    first = to_device(next(iter(SharedLoader(cached, t.global_batch, t.micro_batch, t.global_batch))), device)
    flops = flops_per_sample(model, first, device)
    speedups.apply(model, t.activation_checkpointing, t.compile)  # as a run applies them
    engine, _, _ = make_engine(model, cfg, plan_stages(cfg)[0], 1)
    return model, world, raw, cached, engine, flops


def offline_overrides() -> list[str]:
    return [*PAPER_OFFLINE, *SWEEP_OFFLINE]


def offline_note(sweep: bool) -> str:
    """What an offline measurement changes, printed before it starts."""
    said = ("note: --offline: random weights from each backbone's arch, the built-in tokenizer's ids, the Y-encoder "
            "mean-pooled with no prompt (a sentence-transformers folder needs its weights on disk), shapes-world clips")
    if sweep:
        return (f"{said}, and no evaluation (bench.perf evaluates nothing): the sweep's training data and eval sets "
                f"are neither read nor checked. Overrides: {' '.join(offline_overrides())}")
    return said.replace("--offline", "the paper preset, offline") + f". Overrides: {' '.join(PAPER_OFFLINE)}"


def preset_configs(preset: str, models: list[str], extra: list[str]) -> list[tuple[str, RunConfig]]:
    base, overrides = PRESETS[preset]
    return [(preset, load_run_config(base, [*overrides, *extra, f"model.name={m}"])) for m in models]


def sweep_configs(path: str, extra: list[str], offline: bool) -> list[tuple[str, RunConfig]]:
    """Every condition of a sweep (its first seed), configured exactly as the sweep configures its runs;
    offline: random weights and shapes-world clips at the same shapes (PAPER_OFFLINE: nothing downloaded), and no
    eval set checked (SWEEP_OFFLINE)."""
    sweep, file = load_sweep_config(path)
    runs = expand(sweep, file, [*(offline_overrides() if offline else []), *extra])
    first = runs[0].seed
    return [(sweep.name, r.cfg) for r in runs if r.seed == first]


def measure(preset: str, cfg: RunConfig, steps: int, device: torch.device,
            peaks: dict[str, float], log, profile_dir: Path | None = None) -> dict:
    name = cfg.model.name
    precision = cfg.train.precision
    if precision not in peaks:
        peaks[precision] = matmul_peak(device, DTYPES[precision])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    model, world, raw, cached, engine, flops = prepare(cfg, device, log)
    log(f"{preset}/{name}: built in {time.perf_counter() - t:.0f} s")
    G, workers = cfg.train.global_batch, cfg.data.num_workers
    rec = {"preset": preset, "model": name, "lm_layers": cfg.model.lm.layers, "precision": precision,
           "global_batch": G, "micro_batch": cfg.train.micro_batch,
           "trainable_params": sum(c["trainable"] for c in model.parameter_counts().values())}
    rec["step_cached"] = time_steps(engine, cfg, cached, steps, device)
    log(f"{preset}/{name}: cached-feature step {rec['step_cached']['total']:.3f} s")
    rec["step_raw_video"] = time_steps(engine, cfg, raw, max(2, steps // 3), device)
    log(f"{preset}/{name}: raw-video step {rec['step_raw_video']['total']:.3f} s")
    if profile_dir is not None:
        profile_step(engine, cfg, cached, device, profile_dir / f"profile_{re.sub(r'[^A-Za-z0-9_.-]+', '_', preset)}_{name}.txt")
    del engine
    free_memory()
    s = rec["step_cached"]
    rec["flops_per_sample"] = flops
    rec["samples_per_s"] = G / s["total"]
    rec["share_outside_fwd_bwd_opt"] = (s["data"] + s["other"]) / s["total"]
    rec["mfu"] = rec["flops_per_sample"] * rec["samples_per_s"] / peaks[precision]
    rec["loader_samples_per_s_cached"] = loader_rate(cached, G, 12, workers)
    rec["loader_over_consumption"] = rec["loader_samples_per_s_cached"] / rec["samples_per_s"]
    rec["x_encoder_share_uncached"] = 1 - rec["step_cached"]["total"] / rec["step_raw_video"]["total"]
    rec["cache_speedup"] = rec["step_raw_video"]["total"] / rec["step_cached"]["total"]
    rec.update(inference(model, world, raw.caption_texts(64), device))
    if device.type == "cuda":
        rec["cuda_max_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
    del model, cached
    free_memory()
    log(f"{preset}/{name}: {rec['samples_per_s']:.1f} samples/s, MFU {100 * rec['mfu']:.1f}%, "
        f"cache x{rec['cache_speedup']:.1f}")
    return rec


def si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def table(report: dict) -> str:
    recs = report["records"]
    peaks = ", ".join(f"{si(v)}FLOP/s {k}" for k, v in report["matmul_peak_flops"].items())
    lines = [f"Device: {report['device']}. Matmul peak measured in-process: {peaks}.", "",
             "| preset | model | samples/s | step ms (data / fwd / bwd / opt / other) | outside fwd+bwd+opt | "
             "loader / consumption | FLOPs/sample | MFU | cache speed-up | score K=10 / K=100 ms (first batch) | "
             "generate ms | "
             "GPU memory |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in recs:
        s = r["step_cached"]
        parts = " / ".join(f"{1e3 * s[k]:.0f}" for k in ("data", "forward", "backward", "optimizer", "other"))
        memory = f"{r['cuda_max_allocated_gb']:.1f} GB" if "cuda_max_allocated_gb" in r else "-"
        lines.append(f"| {r['preset']} | {r['model']} | {r['samples_per_s']:.0f} | {parts} | "
                     f"{100 * r['share_outside_fwd_bwd_opt']:.0f}% | {r['loader_over_consumption']:.1f}x | "
                     f"{si(r['flops_per_sample'])} | {100 * r['mfu']:.1f}% ({r['precision']}) | {r['cache_speedup']:.1f}x | "
                     f"{r['score_K10_ms_per_sample']:.2f} / {r['score_K100_ms_per_sample']:.2f} "
                     f"({r['score_first_K100_ms_per_sample']:.2f}) | "
                     f"{r['generate_ms_per_sample']:.2f} | {memory} |")
    by = {(r["preset"], r["model"]): r for r in recs}
    for preset in dict.fromkeys(r["preset"] for r in recs):
        j, v = by.get((preset, "vljepa")), by.get((preset, "vlm"))
        if j and v:
            extra = [(r["score_K100_ms_per_sample"] - r["score_K10_ms_per_sample"]) for r in (v, j)]
            marginal = f"{extra[0] / extra[1]:.0f}x" if extra[1] > 0 else "unmeasurable (no extra cost)"
            ratio = v['score_K100_ms_per_sample'] / j['score_K100_ms_per_sample']
            first = v['score_first_K100_ms_per_sample'] / j['score_first_K100_ms_per_sample']
            lines.append(f"\n{preset}: VL-JEPA scores 100 candidates {ratio:.1f}x "
                         f"faster than the VLM's perplexity scoring per sample, {marginal} on what the 90 candidates "
                         f"beyond the first 10 add (both encode the video and run the predictor or prefix once), "
                         f"{first:.1f}x on an evaluation's first batch (which Y-encodes the candidates); "
                         f"trains {j['samples_per_s'] / v['samples_per_s']:.2f}x the VLM's samples/s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS),
                   help="default: paper on a GPU, tiny and mid on a CPU")
    p.add_argument("--models", nargs="+", default=["vljepa", "vlm"])
    p.add_argument("--steps", type=int, default=12, help="timed optimizer steps (after 2 warm-up steps)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every preset")
    p.add_argument("--sweep", help="measure each condition of this sweep file (first seed) as the sweep configures "
                                   "it, instead of the presets (e.g. comparison/jepa_vs_vlm.yaml)")
    p.add_argument("--offline", action="store_true",
                   help="with --sweep: random weights and shapes-world clips at the sweep's shapes (nothing downloaded)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "perf")
    p.add_argument("--profile", action="store_true",
                   help="also write OUT/profile_<preset>_<model>.txt: the top operators of one optimizer step")
    args = p.parse_args(argv)
    device = distenv.setup(distenv.detect())
    presets = args.presets or (["paper"] if device.type == "cuda" else ["tiny", "mid"])
    peaks: dict[str, float] = {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    report = {"device": name, "threads": torch.get_num_threads(), "matmul_peak_flops": peaks, "overrides": args.set,
              "torch": torch.__version__, "records": [], "time": time.time()}
    if args.sweep and args.offline or not args.sweep and "paper" in presets:
        print(offline_note(sweep=bool(args.sweep)), flush=True)
    configs = sweep_configs(args.sweep, args.set, args.offline) if args.sweep else \
        [pc for preset in presets for pc in preset_configs(preset, args.models, args.set)]
    for label, cfg in configs:  # the report is rewritten after each record: a crash keeps what was measured
        report["records"].append(measure(label, cfg, args.steps, device, peaks, log=print,
                                          profile_dir=args.out if args.profile else None))
        report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        md = table(report) + f"\n\nPeak RSS of the whole benchmark process: {report['peak_rss_gb']:.2f} GB.\n"
        write_json(args.out / "latest.json", report)
        write_atomic(args.out / "latest.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
