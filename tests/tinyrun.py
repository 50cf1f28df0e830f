"""Helpers for tests that train a tiny run: its config, the run in this process or through the command
line, and its final records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.config import REPO_ROOT, load_run_config, run_id
from bench.results import EVALS, METRICS, read_jsonl
from bench.run.train import run
from tests.conftest import tiny_overrides

TASKS = "eval.tasks=[classification, vqa]"


def cfg_for(tmp_path: Path, *extra: str):
    return load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=16", "train.budget.samples=256",
        "train.warmup_samples=64", "train.checkpoint_every=64", "train.log_every=2", "eval.size=32",
        "eval.batch=32", "eval.grid=[0, 128, 256]", TASKS, *extra))


def run_in_process(cfg):
    """In this process; the process group stays up for later runs (DeepSpeed keeps its groups)."""
    return run(cfg, log=lambda m: None)


DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def clean_env(**extra):
    """The environment for a child run: without the distributed variables an in-process run exported."""
    return {**{k: v for k, v in os.environ.items() if k not in DIST_VARS}, "OMP_NUM_THREADS": "1", **extra}


def cli(tmp_path: Path, *overrides: str, env=None, wait=True):
    args = [sys.executable, "-m", "bench.run.train", "base/tiny.yaml",
            *tiny_overrides(f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=16",
                            "train.warmup_samples=64", "train.log_every=1", "eval.size=32", "eval.batch=32",
                            TASKS, *overrides)]
    full_env = clean_env(**(env or {}))
    if not wait:
        return subprocess.Popen(args, cwd=REPO_ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(args, cwd=REPO_ROOT, env=full_env, capture_output=True, text=True)


WALL_CLOCK = ("time", "samples_per_s")  # the fields of a metrics row that a resume may change


def final_records(tmp_path, cfg_overrides):
    """(evals, metrics rows without their wall-clock fields, run folder) of the finished run a CLI run with these
    overrides wrote under tmp_path: a resumed run's must equal an uninterrupted one's, line for line."""
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=16", "train.warmup_samples=64",
        "train.log_every=1", "eval.size=32", "eval.batch=32", TASKS, *cfg_overrides))
    d = tmp_path / run_id(cfg)
    evals = [(r["samples_seen"], r["task"], r["metric"], r["value"]) for r in read_jsonl(d / EVALS)]
    losses = [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in read_jsonl(d / METRICS)]
    return evals, losses, d
