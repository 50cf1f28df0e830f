"""A shared cache entry is built once however many jobs want it at once: the others wait for it, saying
whom they wait for and how far it is; a killed builder's lock is taken over."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest

from bench.build_once import BuildOnce
from bench.config import REPO_ROOT
from tests.tinyrun import clean_env, cli


def test_jobs_wanting_one_entry_at_once_build_it_once(tmp_path):
    entry, builds, said = tmp_path / "entry.npy", [], []

    def job(i: int) -> None:
        with BuildOnce(entry, entry.is_file, "the entry", log=said.append, poll_s=0.05) as build:
            if build:
                builds.append(i)
                build.progress("half way")
                time.sleep(0.5)
                entry.write_text("built")

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and entry.read_text() == "built"
    assert any(re.match(r"waiting for .+, PID \d+, building the entry: ", s) for s in said), said
    assert not list(tmp_path.glob(".*.build"))  # the lock is gone with its build


def test_a_killed_builders_lock_is_taken_over(tmp_path):
    entry = tmp_path / "entry.npy"
    lock = tmp_path / ".entry.npy.build"
    lock.write_text('{"host": "gone", "pid": 1, "renewed": 0}')  # renewed long ago: its builder was killed
    said = []
    with BuildOnce(entry, entry.is_file, "the entry", log=said.append, stale_s=5) as build:
        assert build
        entry.write_text("built")
    assert any("taking over the build of the entry: gone, PID 1" in s for s in said), said


@pytest.mark.slow
def test_runs_started_together_on_an_empty_cache_build_each_entry_once(tmp_path):
    """Two runs (two seeds: the same frozen encoders and clips) started at once on an empty cache."""
    cache = {"VLJEPA_CACHE": str(tmp_path / "cache")}
    common = ["train.budget.samples=128", "eval.grid=[128]"]
    procs = [cli(tmp_path / "runs", *common, f"seed={seed}", env=cache, wait=False) for seed in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    logs = "\n".join((d / "log.txt").read_text() for d in (tmp_path / "runs").iterdir() if d.is_dir())
    built = re.findall(r"building the cache of (.+?): [\d,]+ rows -> (\S+)", logs)
    paths = [p for _, p in built]
    assert built and len(paths) == len(set(paths)), built  # every entry built by one run only
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(paths)


def test_a_stale_build_lock_left_by_sigkill_is_found(tmp_path):
    """A builder killed outright leaves its lock; its renewals stop, so the next job takes it over."""
    entry = tmp_path / "entry.npy"
    script = ("import time\nfrom pathlib import Path\nfrom bench.build_once import BuildOnce\n"
              f"e = Path({str(entry)!r})\n"
              "with BuildOnce(e, e.is_file, 'the entry', stale_s=2) as b:\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=clean_env())
    deadline = time.time() + 30
    while not (tmp_path / ".entry.npy.build").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    with BuildOnce(entry, entry.is_file, "the entry", stale_s=2, poll_s=0.1) as build:
        assert build
