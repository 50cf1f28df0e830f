"""What a run's results were computed with: the code's git commit (and whether the tree was dirty) and
the versions of the libraries that compute them. Written into every run record (bench/run/train.py)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

from bench.config import REPO_ROOT

CODE = ("bench", "models", "analysis", "experiments")  # what a run's results depend on


def git_commit(root: Path = REPO_ROOT) -> str:
    """HEAD, with "-dirty" when tracked files changed or untracked files sit in the code's folders."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", *CODE], cwd=root,
                                   capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty or untracked else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    import deepspeed
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "deepspeed": deepspeed.__version__}
