"""What every converter test shares: tiny media files, a release's files written as the release ships them,
and the check that a converted folder validates (every task's set reads) and evaluates (python -m bench.eval
prints every task's table) on a tiny trained run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from bench.data.convert.__main__ import main as convert_main
from bench.data.video import write_image, write_video
from bench.eval.sets.disk import disk_set, read_spec


def video(path: Path, frames: int = 6, size: int = 16, shade: int = 0, fps: float = 4) -> Path:
    """A small lossless video, every frame one grey level from `shade` (so clips are told apart)."""
    clip = np.full((frames, size, size, 3), shade % 256, np.uint8)
    clip[:, :, :, 0] = (np.arange(frames)[:, None, None] * 20 + shade) % 256
    write_video(path, clip, fps=fps)
    return path


def image(path: Path, size: int = 16, shade: int = 0) -> Path:
    write_image(path, np.full((size, size, 3), shade % 256, np.uint8))
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def convert(name: str, src: Path, out: Path, *extra: str) -> Path:
    assert convert_main([name, "--src", str(src), "--out", str(out), *extra]) == 0
    return out


def read_sets(folder: Path, frames: int = 2, size: int = 16) -> dict:
    """Every task's set of a converted folder, read as evaluation reads it (media checked to exist)."""
    spec = read_spec(folder)
    return {task: disk_set(task, folder.name, folder, frames, size) for task in spec["tasks"]}


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def evaluates(rundir: Path, folder: Path, capsys) -> str:
    """python -m bench.eval RUN --sets TASK=FOLDER ... for every task the folder serves: its printed table,
    checked to hold a row for every task."""
    from bench.tools.evaluate import main as eval_main

    tasks = list(yaml.safe_load((folder / "dataset.yaml").read_text())["tasks"])
    capsys.readouterr()
    assert eval_main([str(rundir), "--size", "0", "--sets", *(f"{t}={folder}" for t in tasks)]) == 0
    table = capsys.readouterr().out
    for t in tasks:
        assert any(row.startswith(f"| {t} | {folder}") for row in table.splitlines()), (t, table)
    assert "failed" not in table, table
    return table
