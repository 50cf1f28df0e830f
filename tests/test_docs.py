"""Every command in docs/ runs: each page's ```sh blocks, in order, in a fresh folder that looks like the
repository's root (the venv, experiments/, the committed example records). Blocks marked ```sh cluster need
a GPU cluster, gated weights or datasets, and are only listed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import REPO_ROOT

DOCS = REPO_ROOT / "docs"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
PAGES = sorted(p.name for p in DOCS.glob("*.md"))


def shell_blocks(page: str, kind: str = "sh") -> list[str]:
    return [body for info, body in FENCE.findall((DOCS / page).read_text()) if info.strip() == kind]


def test_every_page_is_indexed_and_every_command_block_is_marked():
    index = (DOCS / "README.md").read_text()
    assert all(f"({p})" in index for p in PAGES if p != "README.md")
    for page in PAGES:
        for info, _ in FENCE.findall((DOCS / page).read_text()):
            # a shell block either runs here (sh) or says it needs a cluster (sh cluster)
            assert info.strip() not in ("bash", "shell", "console"), f"{page}: a ```{info} block: mark it sh or sh cluster"
    assert sum(len(shell_blocks(p)) for p in PAGES) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if shell_blocks(p)])
def test_the_commands_of_a_page_run(page, tmp_path):
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    (root / ".venv").symlink_to(Path(sys.prefix))
    (root / "experiments").symlink_to(REPO_ROOT / "experiments")
    (root / "results" / "example").symlink_to(REPO_ROOT / "results" / "example")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    script = "set -euo pipefail\n" + "\n".join(shell_blocks(page))  # one shell: exports carry on, as for a reader
    done = subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{page}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
