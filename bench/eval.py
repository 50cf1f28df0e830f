"""Evaluate a run's checkpoint on demand, with the same task code training runs on its sample grid.

    python -m bench.eval results/runs/<run_id> [--tasks captioning streaming] [--split test] [--size 200]
    python -m bench.eval results/runs/<run_id> --sets classification=kinetics400,ssv2 retrieval=msrvtt
    python -m bench.eval results/runs/<run_id>/checkpoints/<tag>

--sets replaces the run's eval sets of a task (registry names or dataset folders, bench/evalsets). Writes
the records to <run_dir>/ondemand/<tag>.jsonl, each task's as it finishes, the per-item outputs (captions,
choices) to <run_dir>/ondemand/<tag>.predictions/, and prints a table.
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
from bench.data.sources import train_samples
from bench.engine import plan_stages
from bench.evalsets.registry import EvalSetError, load_sets, validate
from bench.results import RUN_RECORD, append_jsonl, prediction_writer, read_json
from bench.tasks import TASKS, evaluate
from bench.tasks.common import EvalContext

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


def parse_sets(items: list[str]) -> dict[str, list[str]]:
    out = {}
    for item in items:
        task, _, names = item.partition("=")
        if task not in TASKS or not names:
            raise SystemExit(f"error: --sets {item!r}: expected TASK=NAME[,NAME...] with TASK one of {', '.join(TASKS)}")
        out[task] = [n for n in names.split(",") if n]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path)
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS))
    p.add_argument("--sets", nargs="+", default=[], metavar="TASK=NAME[,NAME]", help="eval sets of a task")
    p.add_argument("--split", choices=["val", "test", "novel"])
    p.add_argument("--size", type=int, help="items per task and set (0: all)")
    args = p.parse_args(argv)

    run, ckpt = locate(args.path)
    cfg, model = load_checkpointed_model(run, ckpt)
    e = cfg.eval
    asked = parse_sets(args.sets)
    sets = {**e.sets, **asked}
    tasks = args.tasks or list(asked) or e.tasks
    cfg = replace(cfg, eval=replace(e, tasks=tasks, sets=sets, split=args.split or e.split,
                                    size=e.size if args.size is None else args.size))
    try:
        validate(cfg, str(run))
    except EvalSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = torch.load(ckpt / "client_rank0.pt", weights_only=True)["meta"]
    stage = plan_stages(cfg)[meta["stage"]]
    source = train_samples(replace(cfg.data, stage=stage.data_stage), cfg.seed)
    if cfg.data.cache and cfg.data.source == "shapes":  # the frozen Y-encoder's outputs, as training used them
        from bench.build import cache_dir
        from bench.cache import attach_target_cache

        attach_target_cache(model, source, cache_dir())
    out = run / "ondemand" / f"{ckpt.name}.jsonl"
    ctx = EvalContext.for_run(cfg, model, stage.data_stage, torch.device("cpu"), load_sets(cfg), source,
                              predictions=prediction_writer(run / "ondemand" / f"{ckpt.name}.predictions"))
    if out.is_file():
        out.unlink()
    rid = record_id(run)

    def write(task: str, recs: list[dict]) -> None:  # as each task finishes: a later failure loses nothing
        append_jsonl(out, [{**r, "run_id": rid, "samples_seen": meta["samples_seen"], "split": cfg.eval.split}
                           for r in recs])

    recs = evaluate(model, ctx, cfg.eval.tasks, on_task=write)
    print(f"{run.name} at {meta['samples_seen']:,} samples")
    print("| task | set | metric | value | chance |\n|---|---|---|---:|---:|")
    for r in recs:
        chance = "" if r["chance"] is None else f"{r['chance']:.1f}"
        rate = f" @{r['rate_hz']}Hz" if "rate_hz" in r else ""
        print(f"| {r['task']} | {r.get('dataset', '')} | {r['metric']}{rate} | {r['value']:.2f} | {chance} |")
    print(f"records: {out}")
    return 0


def record_id(run: Path) -> str:
    return read_json(run / RUN_RECORD)["run_id"]


if __name__ == "__main__":
    sys.exit(main())
