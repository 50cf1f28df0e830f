"""Which executor a sweep takes when none is named: Slurm only where its controller answers, so a machine with
Slurm's commands and no running cluster runs the sweep locally instead of failing at its first submission."""

from __future__ import annotations

import os
import stat

import pytest

from bench.sweep.launch import default_executor


def _tools(folder, ping: str) -> str:
    for name, body in (("sbatch", "exit 1"), ("scontrol", ping)):
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(folder)


@pytest.mark.parametrize("ping, expected", [
    ('echo "Slurmctld(primary) at node0 is UP"', "slurm"),
    ('echo "Slurmctld(primary) at node0 is DOWN"; exit 1', "local"),
])
def test_slurm_only_where_its_controller_answers(tmp_path, monkeypatch, ping, expected):
    monkeypatch.setenv("PATH", _tools(tmp_path, ping) + os.pathsep + os.environ["PATH"])
    executor, why = default_executor()
    assert executor == expected and "sbatch found" in why


def test_no_sbatch_runs_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert default_executor() == ("local", "no sbatch on PATH")
