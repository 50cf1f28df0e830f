"""Copy the records of finished sweeps (no checkpoints) into a small folder that can be committed, so the
report and its tests work without training first.

    python -m analysis.snapshot --results results --out results/example --sweeps loss
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

RECORD_FILES = ("run.json", "evals.jsonl", "metrics.jsonl")


def snapshot(results: Path, out: Path, sweeps: list[str]) -> int:
    copied = 0
    for name in sweeps:
        rec = json.loads((results / "sweeps" / f"{name}.json").read_text())
        (out / "sweeps").mkdir(parents=True, exist_ok=True)
        rec.pop("jobs", None)
        (out / "sweeps" / f"{name}.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        for r in rec["runs"]:
            src, dst = results / "runs" / r["run_id"], out / "runs" / r["run_id"]
            dst.mkdir(parents=True, exist_ok=True)
            for f in RECORD_FILES:
                if (src / f).is_file():
                    shutil.copy2(src / f, dst / f)
            copied += 1
    return copied


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
