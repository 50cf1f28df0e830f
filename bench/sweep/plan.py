"""Launch a sweep of matched runs: expand, validate, check parity, skip what is done, submit.

    python -m bench.sweep ablations/loss.yaml [section.key=value ...]
        [--executor slurm|local|inline] [--dry-run] [--status] [--max-parallel N] [--wait]

The file is looked up in the working directory first, then under experiments/. Nothing is submitted
unless every run of the sweep is valid and every comparison group passes its parity check. Launching
a sweep again submits only the runs that are missing or incomplete (incomplete ones resume).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.config import EXPERIMENTS, ConfigError, RunConfig, load_run_config, parse_override
from bench.configlib import to_dict
from bench.data.loader import fingerprint
from bench.data.sources import stage_data, train_samples, training_data_problems
from bench.eval.sets.resolve import EvalSetError, validate
from bench.results import RUNS, SWEEPS, RunDir, read_json, write_json
from bench.run.engine import plan_stages
from bench.sweep.clean import CLEANABLE, clean_checkpoints, describe
from bench.sweep.config import ZIP_LABEL, SweepConfig, load_sweep_config
from bench.sweep.launch import EXECUTORS, default_executor, describe_outcome, submit
from bench.sweep.status import RunStatus, clock, statuses, summary, table
from bench.sweep.tune import eval_sets
from models import registry
from models.protocol import offers_step_targets

# what the runs of one comparison group (one seed) must share unless the sweep varies it
PARITY_KEYS = ("model.x_encoder", "model.lm.tokenizer", "model.lm.backbone", "model.lm.text_pretraining",
               "data", "train.budget", "train.global_batch",
               "train.stages", "eval")


class SweepError(ValueError):
    pass


@dataclass
class SweepRun:
    cfg: RunConfig
    seed: int
    point: dict[str, Any]
    condition: str
    label: str = ""  # the condition's readable name, where the sweep file gives one (zip 'label')
    arm: str = ""  # a tuned sweep's arm: the condition without the tuned key (what its verdicts compare)
    arm_label: str = ""  # the arm's readable name, where the sweep file gives one

    @property
    def run_id(self) -> str:
        return self.cfg.run_id


def labelled_points(sweep: SweepConfig) -> list[tuple[dict[str, Any], str]]:
    """(point, readable name) for each arm: each point of the cartesian product of the grid and of each zip group
    (whose lists vary together). The name joins each zip group's 'label' where it has one and key=value
    otherwise; it is empty where no group is labelled (the condition then names the point). A tuned sweep runs
    each arm at every value of its tuned key (tuned_points)."""
    axes: list[list[tuple[dict[str, Any], str]]] = [[({k: v}, f"{k}={v}") for v in values]
                                                    for k, values in sweep.grid.items()]
    labelled = False
    for group in sweep.zip:
        keys = [k for k in group if k != ZIP_LABEL]
        names = group.get(ZIP_LABEL)
        labelled |= names is not None
        points = [dict(zip(keys, vals)) for vals in zip(*(group[k] for k in keys))]
        axes.append([(p, names[i] if names else condition_label(p)) for i, p in enumerate(points)])
    combos = [({k: v for part, _ in combo for k, v in part.items()}, ", ".join(n for _, n in combo))
              for combo in itertools.product(*axes)] or [({}, "")]
    return [(point, name if labelled else "") for point, name in combos]


def tuned_points(sweep: SweepConfig) -> list[tuple[dict[str, Any], str, dict[str, Any], str]]:
    """(point, readable name, arm point, arm's readable name) for every point the sweep runs: each arm, and in a
    tuned sweep each arm at each value of the tuned key (its name then ends with key=value)."""
    out = []
    for arm, name in labelled_points(sweep):
        if sweep.tune is None:
            out.append((arm, name, arm, name))
            continue
        for value in sweep.tune.values:
            tuned = f"{sweep.tune.key}={value}"
            out.append(({**arm, sweep.tune.key: value}, f"{name}, {tuned}" if name else "", arm, name))
    return out


def grid_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every point the sweep runs: the cartesian product of the grid and of each zip group (whose lists vary
    together), and of the tuned key's values in a tuned sweep."""
    return [point for point, _, _, _ in tuned_points(sweep)]


def condition_label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "base"


def expand(sweep: SweepConfig, sweep_file: Path, overrides: list[str] = ()) -> list[SweepRun]:
    """Every run of the sweep, each validated; all invalid grid points are reported together."""

    cli = dict(parse_override(o) for o in overrides)
    cli_error = None
    if cli:
        try:
            load_run_config(sweep.base, {**sweep.set, **cli}, relative_to=sweep_file.parent, source="command line")
        except ConfigError as e:
            cli_error = e
    runs, errors = [], []
    for point, readable, arm, arm_readable in tuned_points(sweep):
        label = condition_label(point)
        for seed in sweep.seeds:
            settings = {**sweep.set, **{f"launch.{k}": v for k, v in sweep.launch.items()}, **point,
                        "seed": seed, **sweep.seed_settings(seed), "name": f"{sweep.name}/{label}/seed{seed}",
                        "output_dir": str((Path(sweep.results) / RUNS).resolve()), **cli}
            source = f"{sweep_file} grid point [{label}] seed {seed}"
            try:
                cfg = load_run_config(sweep.base, settings, relative_to=sweep_file.parent, source=source)
                if sweep.tune is not None:  # every task on the set the value is chosen on and the one reported
                    sets = eval_sets(sweep.tune, cfg.eval.tasks, cfg.eval.sets, source)
                    if sets != cfg.eval.sets:
                        cfg = load_run_config(sweep.base, {**settings, "eval.sets": sets},
                                              relative_to=sweep_file.parent, source=source)
            except ConfigError as e:
                errors.append(str(e))
                continue
            runs.append(SweepRun(cfg, seed, point, label, readable,
                                 *((condition_label(arm), arm_readable) if sweep.tune else ("", ""))))
    if errors and cli_error is not None:  # the command line's mistake: said once, not once per run
        raise cli_error
    if errors:
        raise SweepError(f"{len(errors)} invalid run(s) in {sweep_file}; nothing was submitted:\n  - "
                         + "\n  - ".join(errors))
    problems = [f"model: {p}" for p in check_models(runs)] + [f"eval sets: {p}" for p in check_eval_sets(runs)] + \
        [f"training data: {p}" for p in check_training_data(runs)]
    if problems:
        raise SweepError(f"{sweep_file}: {len(problems)} problem(s); nothing was submitted:\n  - " + "\n  - ".join(problems))
    return runs


def _grouped(problems: dict[str, list[str]], runs: list[SweepRun]) -> list[str]:
    """One line per problem, with the runs it concerns (all, or which)."""
    return [f"{msg} (runs: {', '.join(where) if len(where) < len(runs) else 'all'})" for msg, where in problems.items()]


def check_training_data(runs: list[SweepRun]) -> list[str]:
    """Problems with the runs' training data (bench.data.sources.training_data_problems), each once, with the
    runs it concerns."""
    problems: dict[str, list[str]] = {}
    checked: dict[str, str | None] = {}  # each dataset checked once for the whole sweep
    for r in runs:
        for problem in training_data_problems(r.cfg, checked):
            problems.setdefault(problem, []).append(f"[{r.condition}] seed {r.seed}")
    return _grouped(problems, runs)


def check_models(runs: list[SweepRun]) -> list[str]:
    """Every run's model.name is registered (models/registry.py), and offers what its train config asks of it."""

    problems: dict[str, list[str]] = {}
    for r in runs:
        try:
            builder = registry.get(r.cfg.model.name)
        except KeyError as e:
            problems.setdefault(f"key 'model.name': {e.args[0]}", []).append(f"[{r.condition}] seed {r.seed}")
            continue
        if r.cfg.train.encode_targets == "step" and offers_step_targets(builder) is False:
            problems.setdefault(f"key 'train.encode_targets': step, but model.name={r.cfg.model.name!r} does not "
                                "encode targets (no step_targets hook); expected micro_batch",
                                []).append(f"[{r.condition}] seed {r.seed}")
    return _grouped(problems, runs)


def check_eval_sets(runs: list[SweepRun]) -> list[str]:
    """Problems with the runs' eval sets (bench/eval/sets/resolve.py), each once with the runs it concerns."""

    problems: dict[str, list[str]] = {}
    for r in runs:
        try:
            validate(r.cfg)
        except EvalSetError as e:
            for msg in str(e).split("\n  - "):
                problems.setdefault(msg, []).append(f"[{r.condition}] seed {r.seed}")
    return _grouped(problems, runs)


def _value(cfg_dict: dict, dotted: str) -> Any:
    """The value at a dotted key of an identity dict; "default" where it leaves a default-valued key out."""
    node: Any = cfg_dict
    for part in dotted.split("."):
        if part not in node:
            return "default"
        node = node[part]
    return node


def held_keys(swept: list[str]) -> list[str]:
    """The parity keys a sweep does not vary (in part or whole): equal inside a comparison group."""
    return [k for k in PARITY_KEYS if not any(s == k or s.startswith(k + ".") or k.startswith(s + ".") for s in swept)]


def varies_data(swept: list[str]) -> bool:
    """Whether the sweep changes what data its runs read (the data section, or the stages)."""
    return any(k.split(".")[0] == "data" or k.startswith("train.stages") for k in swept)


def check_parity(runs: list[SweepRun], swept: list[str], fingerprints: bool = True) -> list[str]:
    """Inside each seed's group, what the sweep does not vary must be equal; returns the problems."""
    problems = []
    keys = held_keys(swept)
    by_seed: dict[int, list[SweepRun]] = {}
    for r in runs:
        by_seed.setdefault(r.seed, []).append(r)
    for seed, group in by_seed.items():
        dicts = [to_dict(r.cfg, identity_only=True) for r in group]
        for key in keys:
            values = {repr(_value(d, key)) for d in dicts}
            if len(values) > 1:
                problems.append(f"seed {seed}: '{key}' differs between runs of one comparison group, "
                                f"but the sweep does not vary it")
        if fingerprints and not varies_data(swept):  # a sweep over the data or the stages reads other data by design

            try:
                prints = {fingerprint(train_samples(stage_data(r.cfg.data, plan_stages(r.cfg)[0]), r.cfg.seed), 16)
                          for r in group}
            except (OSError, ValueError) as e:  # real data not readable from here (a laptop): say so
                print(f"note: data fingerprints not checked for seed {seed}: {e}", file=sys.stderr)
                continue
            if len(prints) > 1:
                problems.append(f"seed {seed}: the runs would read different data ({sorted(prints)})")
    return problems


def parity_summary(runs: list[SweepRun], swept: list[str]) -> str:
    """What the parity check held equal inside each seed's comparison group, in one line."""
    groups = len({r.seed for r in runs})
    prints = "" if varies_data(swept) else " and the first 16 samples (loader fingerprint)"
    return (f"parity: {groups} comparison group(s) of {len(runs) // max(groups, 1)} run(s), each equal in "
            f"{', '.join(held_keys(swept))}{prints}; varied: {', '.join(swept) or 'nothing'}")


def sweep_record_path(sweep: SweepConfig) -> Path:
    return Path(sweep.results).resolve() / SWEEPS / f"{sweep.name}.json"


def write_sweep_record(sweep: SweepConfig, sweep_file: Path, runs: list[SweepRun], jobs: dict[str, str],
                       overrides: list[str] = ()) -> None:
    path = sweep_record_path(sweep)
    old = read_json(path) if path.is_file() else {}
    try:  # the command that reproduces it, as a user would type it
        shown = str(sweep_file.relative_to(EXPERIMENTS))
    except ValueError:
        shown = str(sweep_file)
    write_json(path, {
        "name": sweep.name, "file": shown, "overrides": list(overrides),
        "swept": sweep.swept(),
        **({"tune": sweep.tune.record()} if sweep.tune else {}),
        "runs": [{"run_id": r.run_id, "seed": r.seed, "condition": r.condition, "point": r.point,
                  **({"label": r.label} if r.label else {}),
                  **({"arm": r.arm, **({"arm_label": r.arm_label} if r.arm_label else {})} if sweep.tune else {})}
                 for r in runs],
        "jobs": {**old.get("jobs", {}), **jobs}, "updated": time.time(),
    })


def sweep_statuses(sweep: SweepConfig, runs: list[SweepRun], detail: bool = False) -> list[RunStatus]:
    """Each run's status, with its Slurm job's where the sweep record has one (detail: a failed run's error
    and last log lines)."""
    record = read_json(sweep_record_path(sweep)) if sweep_record_path(sweep).is_file() else {}
    return statuses(runs, record.get("jobs", {}), detail)


def show_status(sweep: SweepConfig, runs: list[SweepRun], watch: float | None) -> int:
    """--status: the counts and the table, once; --watch S: again every S seconds (the screen cleared on a
    terminal) until no run is queued or moving. Returns 0 when every run is done, else 1 under --watch."""
    while True:
        states = sweep_statuses(sweep, runs, detail=True)
        text = f"sweep {sweep.name} at {clock()}: {summary(states, labels(runs))}\n{table(runs, states)}"
        if watch and sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        try:
            print(text, flush=True)
        except BrokenPipeError:  # the reader has read enough (`--status | head -5`): no error, no traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's own flush lands nowhere
            return 0
        if not watch:
            return 0
        if not any(s.live for s in states):
            return 0 if all(s.kind == "done" for s in states) else 1
        time.sleep(watch)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description="Launch a sweep of matched runs.")
    p.add_argument("file", nargs="?", help="a sweep file: a path, or one under experiments/ (ablations/loss.yaml)")
    p.add_argument("overrides", nargs="*", help="optional section.key=value for every run")
    p.add_argument("--executor", choices=EXECUTORS)
    p.add_argument("--dry-run", action="store_true", help="validate and print the table; submit nothing")
    p.add_argument("--status", action="store_true", help="the counts, each run's samples, time left and state; "
                                                         "submit nothing")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="--status again every SECONDS until no run is "
                                                                 "queued or moving")
    p.add_argument("--max-parallel", type=int, help="runs at once (local: default 1; slurm: the array throttle)")
    p.add_argument("--wait", action="store_true", help="slurm: wait until every job ends")
    p.add_argument("--clean", choices=CLEANABLE, help="checkpoints: remove the finished runs' checkpoints (their "
                                                      "records stay; a run not done keeps its own); submit nothing")
    p.add_argument("--results", help="the results store (runs/ and sweeps/ inside); default: the sweep file's "
                                     "'results', else results/")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_intermixed_args(argv)  # overrides may come before or after the options
    if not args.file:
        p.error("name a sweep file, e.g. python -m bench.sweep ablations/loss.yaml (overrides are optional)")
    try:
        sweep, sweep_file = load_sweep_config(args.file)
        if args.results:
            sweep = replace(sweep, results=args.results)
        runs = expand(sweep, sweep_file, args.overrides)
    except (ConfigError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    swept = sweep.swept()
    problems = check_parity(runs, swept)
    if problems:
        print("error: parity check failed; nothing was submitted:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 2
    if args.status or args.watch:
        return show_status(sweep, runs, args.watch)
    if args.clean:
        done = [s.kind == "done" for s in sweep_statuses(sweep, runs)]
        print(describe(*clean_checkpoints([RunDir.of(r.cfg.output_dir, r.run_id) for r in runs], done)))
        return 0
    print(parity_summary(runs, swept))
    states = sweep_statuses(sweep, runs)
    todo = [r for r, s in zip(runs, states) if s.kind != "done" and not s.live]
    new = sum(s.state == "new" for s in states)
    print(f"sweep {sweep.name} ({sweep_file}): {len(runs)} runs, {sum(s.kind == 'done' for s in states)} done, "
          f"{sum(s.live for s in states)} queued or running (not submitted again), {new} new, {len(todo) - new} to resume")
    print(table(runs, states))
    if args.dry_run:
        print("dry run: nothing submitted")
        return 0
    if not todo:
        print("every run is complete, queued or running: nothing to submit")
        write_sweep_record(sweep, sweep_file, runs, {}, args.overrides)
        return 0
    return launch(sweep, sweep_file, runs, todo, args)


def launch(sweep: SweepConfig, sweep_file: Path, runs: list[SweepRun], todo: list[SweepRun], args) -> int:
    """Submit the runs to do; with the local executor (or slurm --wait) wait for them and say what finished."""
    executor, why = (args.executor, "") if args.executor else default_executor()
    print(f"executor: {executor}" + (f" ({why})" if why else ""))
    folder = Path(sweep.results).resolve() / "submitit" / sweep.name
    write_sweep_record(sweep, sweep_file, runs, {}, args.overrides)

    def progress() -> None:  # while local jobs run: where the sweep is
        print(f"sweep {sweep.name} at {clock()}: {summary(sweep_statuses(sweep, runs), labels(runs))}", flush=True)

    jobs = submit([r.cfg for r in todo], executor, folder, args.max_parallel, progress=progress)
    if executor == "slurm":
        write_sweep_record(sweep, sweep_file, runs, {r.run_id: str(j.job_id) for r, j in zip(todo, jobs)},
                           args.overrides)
        print(f"submitted {len(jobs)} Slurm job(s): {', '.join(str(j.job_id) for j in jobs)}")
        if args.wait:
            for r, j in zip(todo, jobs):
                print(f"{r.cfg.name} ({r.run_id}): {describe_outcome(j)}")
    failed = [r for r, s in zip(runs, sweep_statuses(sweep, runs)) if s.kind != "done"]
    if executor != "slurm" or args.wait:
        not_done = f"; not done: {', '.join(r.run_id for r in failed)}" if failed else ""
        print(f"{len(runs) - len(failed)}/{len(runs)} runs done{not_done}")
        print(where_next(sweep))
        return 1 if failed else 0
    print(f"watch it: python -m bench.sweep {sweep_file} --watch 60")
    return 0


def where_next(sweep: SweepConfig) -> str:
    """Where a sweep's records are, and the command that reports them."""
    results = Path(sweep.results)
    return (f"records: {results / 'runs'}/<run_id>/ (run.json, metrics.jsonl, evals.jsonl) and "
            f"{sweep_record_path(sweep)}\nreport: python -m analysis.report --results {results} --out {results / 'report'}")


def labels(runs: list[SweepRun]) -> list[str]:
    return [f"{r.label or r.condition} seed {r.seed}" for r in runs]


if __name__ == "__main__":
    sys.exit(main())
