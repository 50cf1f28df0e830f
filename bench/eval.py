"""Evaluate a run's checkpoint on demand, with the same task code training runs on its sample grid.

    python -m bench.eval results/runs/<run_id> [--tasks captioning streaming] [--split test] [--size 200]
    python -m bench.eval results/runs/<run_id> --size 4000 --name items4000   # kept beside the default's records
    python -m bench.eval results/runs/<run_id> --sets classification=kinetics400,ssv2 retrieval=msrvtt
    python -m bench.eval results/runs/<run_id>/checkpoints/<tag>
    python -m bench.eval exported/<name>        # a folder python -m bench.export wrote

--sets replaces the run's eval sets of a task (registry names or dataset folders, bench/evalsets). --size
above the shapes world's split (data.shapes.val_size, ...) enlarges the split: its items are a pure function
of their index, so the first items are the run's own. Writes the records to <run_dir>/ondemand/<tag>.jsonl
(<tag>.<name>.jsonl with --name), each task's as it finishes and each naming the commit that evaluated it,
the per-item outputs (captions, choices, hits) to <run_dir>/ondemand/<tag>[.<name>].predictions/ (an
export's: under its folder), and prints a table.
Checkpoints of every ZeRO stage load (bench.checkpoint.model_state merges ZeRO-3's partitions).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

import torch

from bench.build import build_model
from bench.cache import attach_target_cache
from bench.checkpoint import MODEL_STATES, checkpoint_meta, is_checkpoint, model_state, read_latest
from bench.config import RunConfig
from bench.configlib import from_dict
from bench.data.sources import train_samples
from bench.engine import plan_stages
from bench.evalsets.registry import EvalSetError, load_sets, validate
from bench.export import ExportError, is_export, load_export, read_export, x_encoder_mismatch
from bench.provenance import git_commit
from bench.results import RUN_RECORD, RunDir, append_jsonl, prediction_writer
from bench.tasks import TASKS, evaluate
from bench.tasks.common import EvalContext


def locate(path: Path) -> tuple[RunDir, Path]:
    """(run folder, checkpoint folder) from either of them."""
    run = RunDir(path)
    if run.exists():
        latest = read_latest(run.checkpoints, log=lambda m: print(f"note: {m}", file=sys.stderr))
        if latest is None:
            raise FileNotFoundError(f"{path}: the run has no checkpoint yet (nothing under {run.checkpoints})")
        return run, run.checkpoints / latest["tag"]
    run = RunDir(path.parent.parent)
    if is_checkpoint(path) and run.exists():
        return run, path
    raise FileNotFoundError(f"{path} is neither a run directory (with {RUN_RECORD}), a checkpoint (with "
                            f"{MODEL_STATES}) nor an export (python -m bench.export)")


def load_checkpointed_model(run: RunDir, ckpt: Path) -> tuple[RunConfig, torch.nn.Module]:
    record = run.read_record()
    cfg = from_dict(RunConfig, record["config"])
    model = build_model(cfg)
    model.load_state_dict(model_state(ckpt))
    problem = x_encoder_mismatch(model, record.get("parity", {}))
    if problem:
        raise ValueError(f"{run.path}: built from the config and loaded from {ckpt.name}, {problem}")
    return cfg, model.eval()


def enlarge_split(cfg: RunConfig) -> RunConfig:
    """cfg with the shapes world's eval split holding every item the evaluation asks for (eval.size, or a
    task's eval.task_size; the split's own size is only what training evaluated on)."""
    attr = f"{cfg.eval.split}_size"
    shapes = cfg.data.shapes
    wanted = max([cfg.eval.items(t) for t in cfg.eval.tasks] or [cfg.eval.size])
    if wanted <= getattr(shapes, attr):
        return cfg
    return replace(cfg, data=replace(cfg.data, shapes=replace(shapes, **{attr: wanted})))


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
    p.add_argument("--size", type=int, help="items per task and set (0: all), for every task (the run's eval.task_size included)")
    p.add_argument("--name", help="keep these records apart from the checkpoint's other on-demand evaluations "
                                  "(letters, digits, - and _)")
    args = p.parse_args(argv)
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        p.error(f"--name {args.name!r}: expected letters, digits, - and _ only (it names a file)")

    if is_export(args.path):  # an export folder: records under it, named by its checkpoint
        try:
            info = read_export(args.path)
            cfg, model = load_export(args.path)
        except ExportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        run, tag, rid = RunDir(args.path), info["checkpoint"], info["run_id"]
        meta = {"samples_seen": info["samples_seen"], "stage": info["stage"]}
    else:
        run, ckpt = locate(args.path)
        cfg, model = load_checkpointed_model(run, ckpt)
        tag, rid, meta = ckpt.name, run.read_record()["run_id"], checkpoint_meta(ckpt)
    e = cfg.eval
    asked = parse_sets(args.sets)
    sets = {**e.sets, **asked}
    tasks = args.tasks or list(asked) or e.tasks
    sized = {} if args.size is None else {"size": args.size, "task_size": {}}  # --size: every task at that size
    cfg = replace(cfg, eval=replace(e, tasks=tasks, sets=sets, split=args.split or e.split, **sized))
    cfg = enlarge_split(cfg)
    try:
        validate(cfg, str(run.path))
    except EvalSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stage = plan_stages(cfg)[meta["stage"]]
    source = train_samples(replace(cfg.data, stage=stage.data_stage), cfg.seed)
    if cfg.data.cache and cfg.data.source == "shapes":  # the frozen Y-encoder's outputs, as training used them
        attach_target_cache(model, source)
    out, kept = run.ondemand(tag, args.name)
    commit = git_commit()
    ctx = EvalContext.for_run(cfg, model, stage.data_stage, torch.device("cpu"), load_sets(cfg), source,
                              predictions=prediction_writer(kept))
    if out.is_file():
        out.unlink()

    def write(task: str, recs: list[dict]) -> None:  # as each task finishes: a later failure loses nothing
        append_jsonl(out, [{**r, "run_id": rid, "samples_seen": meta["samples_seen"], "split": cfg.eval.split,
                            "git_commit": commit} for r in recs])

    recs = evaluate(model, ctx, cfg.eval.tasks, on_task=write)
    print(f"{rid} at {meta['samples_seen']:,} samples")
    print("| task | set | metric | value | chance |\n|---|---|---|---:|---:|")
    for r in recs:
        chance = "" if r["chance"] is None else f"{r['chance']:.1f}"
        rate = f" @{r['rate_hz']}Hz" if "rate_hz" in r else ""
        print(f"| {r['task']} | {r.get('dataset', '')} | {r['metric']}{rate} | {r['value']:.2f} | {chance} |")
    print(f"records: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
