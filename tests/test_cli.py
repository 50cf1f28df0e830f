"""The command lines: one argument style, errors a user can act on in one line (never a traceback), and the
`python -m bench.X` commands the README names still there after the move to stage subpackages."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from bench.config import REPO_ROOT
from bench.tools import evaluate, params


def test_eval_of_a_folder_that_is_no_run_ends_in_one_line(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "not_a_run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "neither a run directory" in err


def test_params_of_an_unknown_model_ends_in_one_line(capsys):
    assert params.main(["base/tiny.yaml", "model.name=vljepaa"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "did you mean 'vljepa'" in err


@pytest.mark.parametrize("command", ["bench.sweep", "bench.train", "bench.eval", "bench.export", "bench.perf"])
def test_the_main_commands_keep_their_module_names(command):
    """`python -m bench.X` of the README: a package's __main__ or a thin module naming where the code lives."""
    spec = importlib.util.find_spec(command + ".__main__") if command in ("bench.sweep", "bench.eval") \
        else importlib.util.find_spec(command)
    assert spec is not None and "main" in open(spec.origin).read()


@pytest.mark.slow
def test_python_m_bench_train_help_lists_the_config_keys():
    done = subprocess.run([sys.executable, "-m", "bench.train", "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "config keys" in done.stdout and "  train.global_batch = " in done.stdout
