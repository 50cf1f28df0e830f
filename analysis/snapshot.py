"""Copy the records of finished sweeps (no checkpoints) into a small folder that can be committed, so the
report and its tests work without training first. Runs of the folder that no sweep lists any more are removed.

    python -m analysis.snapshot --results results --out results/example --sweeps loss
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench.results import RECORD_FILES, RUNS, SWEEPS


def snapshot(results: Path, out: Path, sweeps: list[str]) -> int:
    copied = 0
    for name in sweeps:
        rec = json.loads((results / SWEEPS / f"{name}.json").read_text())
        (out / SWEEPS).mkdir(parents=True, exist_ok=True)
        rec.pop("jobs", None)
        (out / SWEEPS / f"{name}.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        for r in rec["runs"]:
            src, dst = results / RUNS / r["run_id"], out / RUNS / r["run_id"]
            dst.mkdir(parents=True, exist_ok=True)
            for f in RECORD_FILES:
                if (src / f).is_file():
                    shutil.copy2(src / f, dst / f)
            copied += 1
    prune(out)
    return copied


def prune(out: Path) -> list[str]:
    """Remove the run folders of `out` that no sweep record of `out` lists (a re-run sweep's old runs)."""
    listed = {r["run_id"] for f in (out / SWEEPS).glob("*.json") for r in json.loads(f.read_text())["runs"]}
    runs = out / RUNS
    stale = [d for d in runs.iterdir() if d.is_dir() and d.name not in listed] if runs.is_dir() else []
    for d in stale:
        shutil.rmtree(d)
    return sorted(d.name for d in stale)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("results/example"))
    p.add_argument("--sweeps", nargs="+", required=True)
    args = p.parse_args(argv)
    print(f"{snapshot(args.results, args.out, args.sweeps)} runs copied to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
