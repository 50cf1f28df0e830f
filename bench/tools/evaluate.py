"""Evaluate a run's checkpoint on demand, with the same task code training runs on its sample grid.

    python -m bench.eval results/runs/<run_id> [--tasks captioning streaming] [--split test] [--size 200]
    python -m bench.eval results/runs/<run_id> --size 4000 --name items4000   # kept beside the default's records
    python -m bench.eval results/runs/<run_id> --sets classification=kinetics400,ssv2 retrieval=msrvtt
    python -m bench.eval results/runs/<run_id>/checkpoints/<tag>
    python -m bench.eval exported/<name>        # a folder python -m bench.export wrote
    python -m bench.eval hf:<folder or hub id>  # an off-the-shelf CLIP/SigLIP or a generative VLM (idefics3, llava),
                                                # untrained (bench/tools/reference.py)

--sets replaces the run's eval sets of a task (registry names or dataset folders, bench/eval/sets). --size
above the shapes world's split (data.shapes.val_size, ...) enlarges the split: its items are a pure function
of their index, so the first items are the run's own. Writes the records to <run_dir>/ondemand/<tag>.jsonl
(<tag>.<name>.jsonl with --name), each task's as it finishes and each naming the commit that evaluated it,
the per-item outputs (captions, choices, hits) to <run_dir>/ondemand/<tag>[.<name>].predictions/ (an
export's: under its folder), and prints a table.
Checkpoints of every ZeRO stage load (bench.run.checkpoint.model_state merges ZeRO-3's partitions).
A reference spec (hf:...) is evaluated with the same settings' handling, and its records go to a run folder of
their own in the results store (bench/tools/reference.py).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

import torch

from bench.cache import attach_target_cache
from bench.config import RunConfig
from bench.configlib import from_dict
from bench.data.sources import source_of, train_samples
from bench.eval.sets.resolve import EvalSetError, load_sets, validate
from bench.eval.tasks import TASKS, evaluate
from bench.eval.tasks.common import EvalContext
from bench.results import RUN_RECORD, RunDir, append_jsonl, prediction_writer
from bench.run.build import build_model
from bench.run.checkpoint import MODEL_STATES, checkpoint_meta, is_checkpoint, load_weights, model_state, read_latest
from bench.run.engine import plan_stages
from bench.run.provenance import git_commit
from bench.tools import reference
from bench.tools.export import ExportError, is_export, load_export, read_export, x_encoder_mismatch


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
    load_weights(model, model_state(ckpt), str(ckpt))
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="a run folder, one of its checkpoints, an export folder, or a reference model's spec "
                                "(hf:PATH_OR_ID: a transformers CLIP, SigLIP or SigLIP2, or a generative VLM (idefics3, llava))")
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS))
    p.add_argument("--sets", nargs="+", default=[], metavar="TASK=NAME[,NAME]", help="eval sets of a task")
    p.add_argument("--split", choices=["val", "test", "novel"])
    p.add_argument("--size", type=int, help="items per task and set (0: all), for every task (the run's eval.task_size included)")
    p.add_argument("--name", help="keep these records apart from the checkpoint's other on-demand evaluations "
                                  "(letters, digits, - and _)")
    p.add_argument("--frames", type=int, help="a reference spec only: frames read per clip, their image embeddings "
                                              f"averaged (default {reference.DEFAULT_FRAMES})")
    p.add_argument("--output-dir", help="a reference spec only: the results store's runs folder its records go under "
                                        "(default: results/runs)")
    return p


def load_model(path: Path) -> tuple[RunConfig, torch.nn.Module, RunDir, str, str, dict]:
    """(config, model, the folder records go under, checkpoint tag, run_id, {samples_seen, stage}) of a run
    folder, a checkpoint or an export."""
    if is_export(path):  # an export folder: records under it, named by its checkpoint
        info = read_export(path)
        cfg, model = load_export(path)
        return cfg, model, RunDir(path), info["checkpoint"], info["run_id"], {"samples_seen": info["samples_seen"],
                                                                              "stage": info["stage"]}
    run, ckpt = locate(path)
    cfg, model = load_checkpointed_model(run, ckpt)
    return cfg, model, run, ckpt.name, run.read_record()["run_id"], checkpoint_meta(ckpt)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        p.error(f"--name {args.name!r}: expected letters, digits, - and _ only (it names a file)")
    if reference.is_reference(args.path):
        if args.name is not None:
            p.error("--name keeps a checkpoint's evaluations apart; a reference spec's records are kept apart by "
                    "their settings already (one run folder each)")
        return reference_main(args)
    if args.frames is not None or args.output_dir is not None:
        p.error("--frames and --output-dir are for a reference spec (hf:...); a run's checkpoint is evaluated at the "
                "run's own clip shape, its records under the run")
    try:
        cfg, model, run, tag, rid, meta = load_model(Path(args.path))
    except (ExportError, FileNotFoundError, ValueError) as err:  # what a user can act on: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg = with_settings(cfg, args)
    if not validated(cfg, str(run.path)):
        return 2
    out, kept = run.ondemand(tag, args.name)
    recs = evaluate_checkpoint(cfg, model, meta, rid, out, kept)
    print(f"{rid} at {meta['samples_seen']:,} samples")
    print_table(recs)
    print(f"records: {out}")
    return 0


def reference_main(args: argparse.Namespace) -> int:
    """bench.eval on a reference spec: the model loaded from its weights, the settings as for a run, the records
    in a run folder of the results store (bench/tools/reference.py)."""
    try:
        frames = reference.DEFAULT_FRAMES if args.frames is None else args.frames
        model = reference.load_reference(args.path, frames)
        cfg = reference.carrier_config(model, args.output_dir)
    except ValueError as err:  # a spec that does not load (ReferenceModelError) or a bad setting: one line
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg, skipped = reference.applicable(with_settings(cfg, args), model)
    if not validated(cfg, args.path):
        return 2
    recs, run = reference.evaluate_reference(cfg, model, skipped)
    print(f"{args.path} (reference, weights {model.weight_hash()}) as {run.path.name}")
    print_table(recs)
    print(f"records: {run.evals}")
    return 0


def with_settings(cfg: RunConfig, args: argparse.Namespace) -> RunConfig:
    """cfg with the command line's tasks, sets, split and size (--sets replaces a task's sets; the tasks default to
    those --sets names, else the config's), its shapes split enlarged to hold every item asked for."""
    e = cfg.eval
    asked = parse_sets(args.sets)
    sets = {**e.sets, **asked}
    tasks = args.tasks or list(asked) or e.tasks
    sized = {} if args.size is None else {"size": args.size, "task_size": {}}  # --size: every task at that size
    return enlarge_split(replace(cfg, eval=replace(e, tasks=tasks, sets=sets, split=args.split or e.split, **sized)))


def validated(cfg: RunConfig, where: str) -> bool:
    """Whether every eval set resolves and reads; else the error, on stderr."""
    try:
        validate(cfg, where)
    except EvalSetError as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def print_table(recs: list[dict]) -> None:
    print("| task | set | metric | value | chance |\n|---|---|---|---:|---:|")
    for r in recs:
        chance = "" if r["chance"] is None else f"{r['chance']:.1f}"
        rate = f" @{r['rate_hz']}Hz" if "rate_hz" in r else ""
        # a failed task: its error; a task the model cannot do: why
        value = r.get("error") or r.get("reason", "") if r["value"] is None else f"{r['value']:.2f}"
        print(f"| {r['task']} | {r.get('dataset', '')} | {r['metric']}{rate} | {value} | {chance} |")


def evaluate_checkpoint(cfg: RunConfig, model, meta: dict, rid: str, out: Path, kept: Path) -> list[dict]:
    """Every task of cfg.eval on the model as of its checkpoint's stage, each task's records appended to `out`
    as it finishes (a later failure loses nothing), its per-item outputs under `kept`."""
    stage = plan_stages(cfg)[meta["stage"]]
    source = train_samples(replace(cfg.data, stage=stage.data_stage), cfg.seed)
    if cfg.data.cache and source_of(cfg.data).cacheable:  # the frozen Y-encoder's outputs, as training used them
        attach_target_cache(model, source)
    commit = git_commit()
    ctx = EvalContext.for_run(cfg, model, stage.data_stage, torch.device("cpu"), load_sets(cfg), source,
                              predictions=prediction_writer(kept))
    if out.is_file():
        out.unlink()

    def write(task: str, recs: list[dict]) -> None:
        append_jsonl(out, [{**r, "run_id": rid, "samples_seen": meta["samples_seen"], "split": cfg.eval.split,
                            "git_commit": commit} for r in recs])

    return evaluate(model, ctx, cfg.eval.tasks, on_task=write)


if __name__ == "__main__":
    sys.exit(main())
