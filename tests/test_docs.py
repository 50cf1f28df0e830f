"""Every command in docs/ runs: each page's ```sh blocks, in order, in a fresh folder that looks like the
repository's root (the venv, experiments/, the committed example records). Blocks marked ```sh cluster need
a GPU cluster, gated weights or datasets, and blocks marked ```sh long take longer than the suite's budget
(a benchmark, a sweep); both are only listed. The model protocol is described once, in docs/baseline.md,
and checked here against models/protocol.py."""

from __future__ import annotations

import ast
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
SH_KINDS = ("sh", "sh cluster", "sh long")  # run; listed: needs a cluster; listed: longer than the suite's budget


def shell_blocks(page: str, kind: str = "sh") -> list[str]:
    return [body for info, body in FENCE.findall((DOCS / page).read_text()) if info.strip() == kind]


def test_every_page_is_indexed_and_every_command_block_is_marked():
    index = (DOCS / "README.md").read_text()
    assert all(f"({p})" in index for p in PAGES if p != "README.md")
    for page in PAGES:
        for info, _ in FENCE.findall((DOCS / page).read_text()):
            # a shell block runs here (sh), or says why it is only listed: it needs a cluster (sh cluster) or takes
            # longer than the suite's budget (sh long); output and examples are text
            kind = info.strip()
            assert kind not in ("bash", "shell", "console"), f"{page}: a ```{info} block: mark it {' or '.join(SH_KINDS)}"
            assert not kind.startswith("sh") or kind in SH_KINDS, f"{page}: a ```{info} block: mark it {' or '.join(SH_KINDS)}"
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


def protocol_members(source: Path = REPO_ROOT / "models" / "protocol.py") -> tuple[set[str], set[str]]:
    """The model protocol as models/protocol.py declares it: the public members of its typing.Protocol class
    (methods and attributes), and the optional hooks: those its docstring lists ("- name(...) -> ...") and
    those its functions reach on a model by name (getattr/hasattr(model or cls, "name"))."""
    tree = ast.parse(source.read_text())

    def is_protocol(base: ast.expr) -> bool:
        return (isinstance(base, ast.Name) and base.id == "Protocol") or (
            isinstance(base, ast.Attribute) and base.attr == "Protocol")

    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and any(is_protocol(b) for b in n.bases)]
    assert len(classes) == 1, f"{source}: expected one typing.Protocol class, found {[c.name for c in classes]}"
    required = set()
    for node in classes[0].body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            required.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            required.add(node.target.id)
    required = {n for n in required if not n.startswith("_")}
    optional = set(re.findall(r"^- (\w+)\(", ast.get_docstring(tree) or "", re.M))
    optional |= {call.args[1].value for call in ast.walk(tree)
                 if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                 and call.func.id in ("getattr", "hasattr") and len(call.args) >= 2
                 and isinstance(call.args[0], ast.Name) and call.args[0].id in ("model", "cls")
                 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str)}
    return required, optional - required


def documented_members(page: Path = DOCS / "baseline.md") -> tuple[set[str], set[str]]:
    """The members the protocol table of docs/baseline.md names (first column, each `name...` code span),
    the rows that start with "optional" apart."""
    text = page.read_text()
    section = text.split("## The protocol", 1)[1].split("\n## ", 1)[0]
    required, optional = set(), set()
    for row in re.findall(r"^\|(.*)$", section, re.M):
        cell = row.split("|", 1)[0].strip()
        if cell in ("member", "") or set(cell) <= set("-: "):
            continue  # the header and its rule
        names = set(re.findall(r"`([A-Za-z_]\w*)", cell))
        assert names, f"{page.name}: a protocol row names no member: {cell!r}"
        (optional if cell.startswith("optional") else required).update(names)
    return required, optional


def test_the_protocol_is_described_once_in_baseline_md_as_models_protocol_declares_it():
    declared_required, declared_optional = protocol_members()
    doc_required, doc_optional = documented_members()
    assert declared_required >= {"loss", "score", "generate", "embed", "x_encoder"}  # the parse found the class
    assert declared_optional, "models/protocol.py lists no optional hook: the docstring's list was not found"
    for what, declared, documented in (("member", declared_required, doc_required),
                                       ("optional hook", declared_optional, doc_optional)):
        missing, unknown = sorted(declared - documented), sorted(documented - declared)
        assert not missing, f"docs/baseline.md's protocol table lacks the {what}(s) {missing} of models/protocol.py"
        assert not unknown, f"docs/baseline.md's protocol table names {unknown}: no {what} of models/protocol.py"
    # described once: the README links docs/baseline.md instead of listing the members again
    readme = (REPO_ROOT / "README.md").read_text()
    listed = sorted(m for m in declared_required | declared_optional if re.search(rf"`{m}\b(?!\.)", readme))
    assert not listed, f"README.md names protocol members {listed}: describe them in docs/baseline.md only"
    assert "(docs/baseline.md)" in readme
