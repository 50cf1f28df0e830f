"""The two commands a step runs inside its own process (`python -m bench.tools.gpu_check probe|time-step`):
probing the device, and timing a twin's training step alone as bench.perf times it."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from bench import dist as distenv
from bench.results import write_json
from bench.run.provenance import versions
from bench.tools import perf


def probe(device_kind: str, precision: str, out: Path) -> int:
    """The device a check runs on: visible, its precision computes, its process group's backend reduces."""
    if device_kind == "cuda" and not torch.cuda.is_available():
        print(f"error: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU; check nvidia-smi and "
              "CUDA_VISIBLE_DEVICES, or run the same steps on the CPU with --cpu-smoke", file=sys.stderr)
        return 2
    device = distenv.setup(distenv.detect())
    cuda = device.type == "cuda"
    if cuda and precision == "bf16" and not torch.cuda.is_bf16_supported():
        print(f"error: {torch.cuda.get_device_name(device)} does not compute in bf16; the paper preset trains in bf16 "
              "(an A100, H100 or newer does)", file=sys.stderr)
        return 2
    x = torch.randn(512, 512, device=device, dtype={"bf16": torch.bfloat16, "fp32": torch.float32}[precision])
    ones = torch.ones(1, device=device)
    dist.all_reduce(ones)
    info = {"name": torch.cuda.get_device_name(device) if cuda else f"CPU, {os.cpu_count()} cores",
            "device": str(device), "backend": dist.get_backend(), "all_reduce": ones.item(),
            "matmul_finite": bool(torch.isfinite(x @ x).all()), "precision": precision, "cpus": os.cpu_count(),
            "cuda": torch.version.cuda, **versions()}
    if cuda:
        free, total = torch.cuda.mem_get_info(device)
        info.update(memory_gb=round(total / 1e9, 1), free_gb=round(free / 1e9, 1),
                    nccl=".".join(map(str, torch.cuda.nccl.version())))
    distenv.teardown()
    write_json(out, info)
    print(json.dumps(info, indent=1))
    return 0 if info["matmul_finite"] and info["all_reduce"] == 1.0 else 1


def time_step(sweep: str, steps: int, warmup: int, overrides: list[str], out: Path) -> int:
    """The twin's training step alone, as bench.perf times it (prepare: the model, its caches, the engine, the
    speed-ups; time_steps: optimizer_step with a synchronising clock): samples/s, MFU, phases, peak memory."""
    device = distenv.setup(distenv.detect())
    [(label, cfg)] = perf.sweep_configs(sweep, overrides, offline=False)
    peak = perf.matmul_peak(device, perf.DTYPES[cfg.train.precision])
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    _, _, _, cached, engine, flops = perf.prepare(cfg, device, log=print)
    built = time.perf_counter() - t0
    phases = perf.time_steps(engine, cfg, cached, steps, device, warmup=warmup)
    g = cfg.train.global_batch
    rec = {"label": label, "model": cfg.model.name, "overrides": overrides, "precision": cfg.train.precision,
           "global_batch": g, "micro_batch": cfg.train.micro_batch, "steps": steps, "warmup": warmup,
           "build_s": round(built, 1), "flops_per_sample": flops, "matmul_peak_flops": peak,
           "samples_per_s": g / phases["total"], "mfu": flops * g / phases["total"] / peak,
           "step_ms": {k: round(1e3 * v, 1) for k, v in phases.items() if isinstance(v, float)},
           "losses": phases["losses"], "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
           "device": torch.cuda.get_device_name(device) if cuda else "cpu"}
    if cuda:
        rec["cuda_max_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
    distenv.teardown()
    write_json(out, rec)
    print(f"{label} {' '.join(overrides[-1:])}: {rec['samples_per_s']:.1f} samples/s, MFU {100 * rec['mfu']:.1f}%")
    return 0


def step_command(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"python -m bench.tools.gpu_check {argv[0]}")
    p.add_argument("--json", type=Path, required=True, help="where the step writes what it measured")
    if argv[0] == "probe":
        p.add_argument("--device", choices=["cuda", "cpu"], required=True)
        p.add_argument("--precision", choices=["bf16", "fp32"], required=True)
        args = p.parse_args(argv[1:])
        return probe(args.device, args.precision, args.json)
    p.add_argument("--sweep", required=True, help="a sweep file of one point: the twin")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv[1:])
    return time_step(args.sweep, args.steps, args.warmup, args.set, args.json)
