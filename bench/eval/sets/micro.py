"""The paper_micro preset's data: a small export of the shapes world, written into the cache on first use.

experiments/base/paper_micro.yaml runs the paper preset's data path (a two-dataset mixture per stage read
from manifests, every task evaluated from dataset folders through eval.sets) on a fresh clone with no data.
It names its datasets `builtin:micro_<name>`; the first process to resolve one exports the world once
(bench/eval/sets/world_files.py, under a build lock: bench/build_once.py) into
`<cache>/datasets/paper-micro-<key>/`, which also holds a registry file naming the same folders
(`datasets.yaml`, for $VLJEPA_DATASETS), and every later resolve reads that folder.

    builtin:micro_val      every task's items of the val split (shapes_val/)
    builtin:micro_videos   query-free captions of TRAIN_CLIPS 16-frame clips as mp4 (train/)
    builtin:micro_images   the same clips' first frames as PNG images, the paper's image data (images/)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from bench.build_once import BuildOnce
from bench.cache import cache_dir, content_key
from bench.data.config import ShapesConfig
from bench.data.datasets import BUILTIN_DATASETS, DatasetError
from bench.data.shapes import ShapesWorld
from bench.data.video import write_image
from bench.eval.sets.world_files import export_split, export_train

PREFIX = "builtin:micro_"
VERSION = 1  # bump when the export's layout changes: a new cache entry, the old one left alone
WORLD = ShapesConfig(frames=16, size=32, max_objects=2, train_size=64, val_size=16, test_size=16, novel_size=16)
EVAL_ITEMS, STREAMS, TRAIN_CLIPS = 16, 2, 32
FOLDERS = {"val": "shapes_val", "videos": "train", "images": "images"}


def micro_root() -> Path:
    """The export's folder in the cache, keyed by what it holds (the world, the sizes, the layout)."""
    key = content_key(VERSION, vars(WORLD), EVAL_ITEMS, STREAMS, TRAIN_CLIPS)
    return cache_dir() / "datasets" / f"paper-micro-{key[:12]}"


def builtin_dataset(name: str) -> Path:
    """`builtin:micro_<name>` -> its dataset folder, exported first when the cache has none."""
    what = name[len(PREFIX):] if name.startswith(PREFIX) else ""
    if what not in FOLDERS:
        known = ", ".join(PREFIX + k for k in FOLDERS)
        raise DatasetError(f"unknown built-in dataset {name!r}; known: {known}")
    return ensure_micro() / FOLDERS[what]


def ensure_micro(log=None) -> Path:
    """The export's folder, built once however many processes ask at the same moment."""
    root = micro_root()
    registry = root / "datasets.yaml"
    with BuildOnce(root, done=registry.is_file, what="the paper_micro datasets", log=log) as build:
        if build:
            tmp = root.with_name(f"{root.name}.tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            export_micro(tmp)
            shutil.rmtree(root, ignore_errors=True)  # a half-written folder of a killed builder
            tmp.rename(root)  # atomic: a reader sees no folder or a complete one
    return root


def export_micro(out: Path) -> Path:
    """Write the three dataset folders and their registry into out; returns the registry file."""
    world = ShapesWorld(WORLD)
    out.mkdir(parents=True, exist_ok=True)
    export_split(world, "val", out, EVAL_ITEMS, STREAMS)
    manifest = export_train(world, out, TRAIN_CLIPS)
    images = out / FOLDERS["images"]
    rows = []
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        rel = row["video"].replace("videos/", "frames/").replace(".mp4", ".png")
        if not (images / rel).is_file():
            write_image(images / rel, world.clip("train", int(Path(rel).stem))[0])
        rows.append({"image": rel, "query": "", "target": row["target"]})
    (images / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (images / "dataset.yaml").write_text(yaml.safe_dump({"name": "micro_images", "train": {"manifest": "manifest.jsonl"}}))
    registry = out / "datasets.yaml"
    names = {f"micro_{k}": v for k, v in FOLDERS.items()}
    registry.write_text(yaml.safe_dump({"root": ".", "datasets": names}, sort_keys=False))
    return registry


BUILTIN_DATASETS[PREFIX] = builtin_dataset  # the data layer resolves these names without importing this module
