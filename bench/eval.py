"""Evaluate a run's checkpoint on demand, with the same task code training runs on its sample grid.

    python -m bench.eval results/runs/<run_id> [--tasks captioning streaming] [--split test] [--size 200]
    python -m bench.eval results/runs/<run_id>/checkpoints/<tag>

Writes the records to <run_dir>/ondemand/<tag>.jsonl and prints a table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from bench.build import build_model
from bench.checkpoint import LATEST
from bench.config import RunConfig
from bench.configlib import from_dict
from bench.data.shapes import ShapesWorld
from bench.engine import plan_stages
from bench.results import RUN_RECORD, read_json, write_atomic
from bench.tasks import TASKS, evaluate

MODEL_STATES = "mp_rank_00_model_states.pt"


def locate(path: Path) -> tuple[Path, Path]:
    """(run directory, checkpoint directory) from either of them."""
    if (path / RUN_RECORD).is_file():
        pointer = path / "checkpoints" / LATEST
        if not pointer.is_file():
            raise FileNotFoundError(f"{path}: the run has no checkpoint yet ({pointer} is missing)")
        return path, path / "checkpoints" / read_json(pointer)["tag"]
    if (path / MODEL_STATES).is_file() and (path.parent.parent / RUN_RECORD).is_file():
        return path.parent.parent, path
    raise FileNotFoundError(f"{path} is neither a run directory (with {RUN_RECORD}) nor a checkpoint (with {MODEL_STATES})")


def load_checkpointed_model(run: Path, ckpt: Path) -> tuple[RunConfig, torch.nn.Module]:
    record = read_json(run / RUN_RECORD)
    cfg = from_dict(RunConfig, record["config"])
    model = build_model(cfg)
    state = torch.load(ckpt / MODEL_STATES, map_location="cpu", weights_only=True)["module"]
    if not state:
        raise ValueError(f"{ckpt}: the model states are partitioned (ZeRO-3); consolidate them with DeepSpeed's "
                         "zero_to_fp32.py first")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    expected = record.get("parity", {}).get("x_encoder_hash")
    if expected and model.parity()["x_encoder_hash"] != expected:
        raise ValueError(f"{run}: the X-encoder built from the config does not match the run's (hash "
                         f"{model.parity()['x_encoder_hash']} != {expected})")
    return cfg, model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path)
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS))
    p.add_argument("--split", choices=["val", "test", "novel"])
    p.add_argument("--size", type=int)
    args = p.parse_args(argv)
    from bench.train import eval_context

    run, ckpt = locate(args.path)
    cfg, model = load_checkpointed_model(run, ckpt)
    e = cfg.eval
    cfg = replace(cfg, eval=replace(e, tasks=args.tasks or e.tasks, split=args.split or e.split, size=args.size or e.size))
    meta = torch.load(ckpt / "client_rank0.pt", weights_only=True)["meta"]
    stage = plan_stages(cfg)[meta["stage"]]
    world = ShapesWorld(cfg.data.shapes)
    if cfg.data.cache and cfg.data.source == "shapes":  # the frozen Y-encoder's outputs, as training used them
        from bench.build import cache_dir
        from bench.cache import attach_target_cache
        from bench.data.shapes import TrainSamples

        attach_target_cache(model, TrainSamples(replace(cfg.data, stage=stage.data_stage), cfg.seed, world), cache_dir())
    ctx = eval_context(cfg, world, stage.data_stage, torch.device("cpu"))
    recs = evaluate(model, ctx, cfg.eval.tasks)
    rows = [{**r, "run_id": record_id(run), "samples_seen": meta["samples_seen"], "split": cfg.eval.split} for r in recs]
    import json

    out = run / "ondemand" / f"{ckpt.name}.jsonl"
    write_atomic(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    print(f"{run.name} at {meta['samples_seen']:,} samples, split {cfg.eval.split}")
    print("| task | metric | value | chance |\n|---|---|---:|---:|")
    for r in recs:
        chance = "" if r["chance"] is None else f"{r['chance']:.1f}"
        print(f"| {r['task']} | {r['metric']}{' @' + str(r['rate_hz']) + 'Hz' if 'rate_hz' in r else ''} | {r['value']:.2f} | {chance} |")
    print(f"records: {out}")
    return 0


def record_id(run: Path) -> str:
    return read_json(run / RUN_RECORD)["run_id"]


if __name__ == "__main__":
    sys.exit(main())
