"""The rules the layout stands on, kept by the code itself: the linter, the import contracts
(pyproject.toml [tool.importlinter]), and no project import hidden inside a function without a reason."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "models", "analysis")


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed in this environment: bash scripts/setup.sh test installs it")
    return path


def test_ruff_passes():
    out = subprocess.run([_tool("ruff"), "check", "--output-format", "concise", "."], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_import_contracts_hold():
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_import_contracts_catch_a_cycle(tmp_path):
    """The acyclic contract is not vacuous: a hidden (function-local) import back from items to shapes,
    the cycle this project once had, breaks it."""
    copy = tmp_path / "tree"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv*", ".ci-venv", "results", ".git", "__pycache__"))
    items = copy / "bench" / "data" / "items.py"
    items.write_text(items.read_text() + "\n\ndef _world():\n    from bench.data.shapes import ShapesWorld\n\n"
                     "    return ShapesWorld\n")
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=copy, capture_output=True, text=True,
                         env={"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)})
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout[-2000:]


def _comment_above(lines: list[str], index: int) -> str:
    """The block of comment lines right above lines[index]."""
    block = []
    while index > 0 and lines[index - 1].strip().startswith("#"):
        index -= 1
        block.append(lines[index])
    return "\n".join(block)


def test_project_imports_inside_functions_say_why():
    """A project import inside a function hides a dependency (or a cycle): each needs a `# lazy:` comment
    right above it saying why (import cost, for example)."""
    bare = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.module and inner.module.split(".")[0] in PACKAGES \
                            or isinstance(inner, ast.Import) and any(a.name.split(".")[0] in PACKAGES for a in inner.names):
                        if not _comment_above(lines, inner.lineno - 1).count("lazy:"):
                            bare.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert not bare, f"project imports inside functions without a '# lazy:' reason: {bare}"


def test_no_function_is_over_60_lines():
    """A function a reader can hold: none over 60 lines outside the tests (split the logic, keep prose in templates)."""
    long = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, f"functions over 60 lines: {long}"
