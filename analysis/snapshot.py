"""Copy the records of finished sweeps (no checkpoints; of the per-item outputs only the captions and the hits
of each run's last evaluation) into a small folder that can be committed, so the report and its tests work
without training first. A run's on-demand evaluations (bench.tools.evaluate: records and hits) come with it. Runs of
the folder that no sweep lists any more are removed.

    python -m analysis.snapshot --results results --out results/example --sweeps loss

A sweep is refused, and nothing of it copied, when a run of it is not done, was run from a dirty tree
(uncommitted changes: its code cannot be named), or when its runs were run at different commits whose run code
differs (paired arms must differ only in what the sweep varies; commits that change only other files, such as a
sweep file that adds a value to its grid, ran the same code: RUN_CODE below); --allow-dirty takes
them anyway and writes their commits into the copied sweep record ("provenance"), where the report's reader sees
them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.results import ONDEMAND, OUTCOMES, PREDICTIONS, RECORD_FILES, RUNS, SWEEPS, RunDir

# what a run executes or reads as code and base configs (a sweep file enters a run only through its config, which
# the run_id names): runs at two commits that differ in none of these ran the same code
RUN_CODE = ("bench", "models", "pyproject.toml", "experiments/base", "experiments/datasets.yaml")
REPO = Path(__file__).resolve().parents[1]


class ProvenanceError(ValueError):
    pass


def run_code_changes(a: str, b: str, root: Path = REPO) -> list[str] | None:
    """The files of RUN_CODE that differ between commits a and b; None where git cannot tell (a commit this
    clone does not have, or no git)."""
    try:
        out = subprocess.run(["git", "diff", "--name-only", a, b, "--", *RUN_CODE], cwd=root, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.split()


def provenance(results: Path, rec: dict) -> tuple[list[str], list[str]]:
    """(the distinct commits of a sweep's runs, its problems: runs not done, dirty or unknown trees, several
    commits)."""
    commits, problems = {}, []
    for r in rec["runs"]:
        run = RunDir(results / RUNS / r["run_id"])
        record = run.read_record() if run.exists() else {}
        commit = record.get("git_commit", "unknown")
        commits.setdefault(commit, []).append(r["run_id"])
        if record.get("status") != "done":
            problems.append(f"run {r['run_id']} is {record.get('status', 'missing')}, not done")
        if commit == "unknown" or commit.endswith("-dirty"):
            problems.append(f"run {r['run_id']} was run from {'a dirty tree at ' if commit != 'unknown' else ''}"
                            f"{commit.removesuffix('-dirty')}: its code cannot be named")
    clean = sorted(c for c in commits if c != "unknown" and not c.endswith("-dirty"))
    changed = {c: run_code_changes(clean[0], c) for c in clean[1:]}
    if len(commits) > 1 and (len(clean) < len(commits) or any(files is None or files for files in changed.values())):
        differs = "; ".join(f"{clean[0]}..{c}: {'cannot tell here' if f is None else ', '.join(f[:3])}"
                            for c, f in changed.items() if f is None or f)
        problems.append("its runs were run at " + ", ".join(f"{c} ({len(ids)} runs)" for c, ids in sorted(commits.items()))
                        + (f", whose run code differs ({differs})" if differs else "")
                        + ": paired arms must differ only in what the sweep varies; run it again from one commit")
    return sorted(commits), problems


def snapshot(results: Path, out: Path, sweeps: list[str], allow_dirty: bool = False) -> int:
    records = {name: json.loads((results / SWEEPS / f"{name}.json").read_text()) for name in sweeps}
    found = {name: provenance(results, rec) for name, rec in records.items()}
    refused = [f"sweep {name}: {p}" for name, (_, problems) in found.items() for p in problems]
    if refused and not allow_dirty:
        raise ProvenanceError(f"{len(refused)} problem(s); nothing was copied (--allow-dirty takes them anyway, "
                              "and records the commits):\n  - " + "\n  - ".join(refused))
    copied = 0
    for name in sweeps:
        rec = records[name]
        (out / SWEEPS).mkdir(parents=True, exist_ok=True)
        rec.pop("jobs", None)
        commits, problems = found[name]
        rec["provenance"] = {"commits": commits, **({"problems": problems} if problems else {})}
        (out / SWEEPS / f"{name}.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        for r in rec["runs"]:
            src, dst = results / RUNS / r["run_id"], out / RUNS / r["run_id"]
            dst.mkdir(parents=True, exist_ok=True)
            for f in RECORD_FILES:
                if (src / f).is_file():
                    shutil.copy2(src / f, dst / f)
            _copy_last_outputs(src, dst)
            _copy_ondemand(src, dst)
            copied += 1
    prune(out)
    return copied


KEPT_OUTPUTS = ("captioning__*.jsonl", f"*.{OUTCOMES}.jsonl")  # small, and what the report reads


def _copy_last_outputs(src: Path, dst: Path) -> None:
    """Of each kind of KEPT_OUTPUTS, the files of a run's last evaluation that has any: its captions (what the
    report's per-attribute caption scores read, and what anyone can rescore CIDEr from) and its hits (what the
    split-half estimate of evaluation noise reads)."""
    shutil.rmtree(dst / PREDICTIONS, ignore_errors=True)
    for pattern in KEPT_OUTPUTS:
        folders = sorted({p.parent for p in (src / PREDICTIONS).glob(f"*/{pattern}")})
        if folders:
            last = folders[-1]
            (dst / PREDICTIONS / last.name).mkdir(parents=True, exist_ok=True)
            for f in sorted(last.glob(pattern)):
                shutil.copy2(f, dst / PREDICTIONS / last.name / f.name)


def _copy_ondemand(src: Path, dst: Path) -> None:
    """A run's on-demand evaluations: their records, and of their per-item outputs the kept kinds."""
    shutil.rmtree(dst / ONDEMAND, ignore_errors=True)
    for rec in sorted((src / ONDEMAND).glob("*.jsonl")):
        (dst / ONDEMAND).mkdir(parents=True, exist_ok=True)
        shutil.copy2(rec, dst / ONDEMAND / rec.name)
        outputs = rec.with_suffix(".predictions")
        for pattern in KEPT_OUTPUTS:
            for f in sorted(outputs.glob(pattern)):
                (dst / ONDEMAND / outputs.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst / ONDEMAND / outputs.name / f.name)


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
    p.add_argument("--allow-dirty", action="store_true", help="copy runs from dirty trees or several commits too")
    args = p.parse_args(argv)
    try:
        print(f"{snapshot(args.results, args.out, args.sweeps, args.allow_dirty)} runs copied to {args.out}")
    except ProvenanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
