"""The command: `python -m bench.tools.gpu_check [--dry-run] [--cpu-smoke] [--out DIR] [--work DIR] [--only NAME ...]`
(bench/tools/gpu_check/__init__.py says what it does), and the commands a step runs (probe, time-step)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from bench.config import REPO_ROOT
from bench.tools import gpu_check
from bench.tools.gpu_check.device_steps import step_command
from bench.tools.gpu_check.execute import run_plan
from bench.tools.gpu_check.scales import CPU_SMOKE, GPU, TWINS_SWEEP, Scale
from bench.tools.gpu_check.settings import Folders, twins
from bench.tools.gpu_check.steps import describe, plan, select


def write_sweeps(scale: Scale, folders: Folders) -> None:
    """One sweep file a twin, of one point: the preset, then what the twin's point of jepa_vs_vlm.yaml changes.
    bench.perf and the knob steps read them (--sweep), so both configure a twin alike."""
    for twin, changes in twins().items():
        body = {"name": f"gpu_check/{scale.name}/{twin}", "base": [str(REPO_ROOT / scale.preset)], "set": changes,
                "seeds": [0], "results": str(folders.work / "results")}
        path = folders.work / "sweeps" / f"{twin}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {twin} as {TWINS_SWEEP} configures it, on {scale.preset} (bench/tools/gpu_check/)\n"
                        + yaml.safe_dump(body, sort_keys=False))


def check_folders(folders: Folders) -> None:
    """Both folders new or empty: a summary is never overwritten, and a run left in WORK would resume, not train."""
    for what, path in (("--out", folders.out), ("--work", folders.work)):
        if path.exists() and any(path.iterdir()):
            raise SystemExit(f"error: {what} {path} already holds files; pass a new folder (a check never writes over "
                             "an earlier one, and runs left there would resume instead of training)")
        path.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["probe"], ["time-step"]):
        return step_command(argv)
    p = argparse.ArgumentParser(prog="python -m bench.tools.gpu_check", description=gpu_check.__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true",
                   help="the same steps on experiments/base/paper_micro.yaml on the CPU (fp32, gloo), in minutes")
    p.add_argument("--dry-run", action="store_true", help="print the plan (each step's command and budget) and stop")
    p.add_argument("--out", type=Path, help="summary.json, summary.md and bench.perf's reports "
                                            "(default results/perf/gpu_check/<time>/)")
    p.add_argument("--work", type=Path, help="the runs, the exported data and the logs (default "
                                             "results/perf/gpu_check/work-<time>/)")
    p.add_argument("--only", nargs="+", default=[], metavar="NAME",
                   help="run only the steps whose names match (fnmatch: 'perf:*', 'knob:vljepa:*'); the export step "
                        "is needed by the train steps")
    args = p.parse_args(argv)
    scale = CPU_SMOKE if args.cpu_smoke else GPU
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = REPO_ROOT / "results" / "perf" / "gpu_check"
    folders = Folders((args.out or root / stamp).resolve(), (args.work or root / f"work-{stamp}").resolve())
    planned = plan(scale, folders)
    steps = select(planned, args.only)
    print(describe(scale, steps, [s for s in planned if s.extra and s not in steps]), flush=True)
    if args.dry_run:
        return 0
    check_folders(folders)
    write_sweeps(scale, folders)
    outcomes = run_plan(scale, steps, folders, log=lambda m: print(m, flush=True))
    print(f"\n{folders.out / 'summary.md'}:\n" + (folders.out / "summary.md").read_text())
    return 0 if all(o.status == "passed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
