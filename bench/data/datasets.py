"""Datasets on disk, for training and evaluation alike: the registry of their names, the one resolver of a
name, and the one reader of a dataset folder's `dataset.yaml` (its `train` section for training, its `tasks`
section for evaluation; layouts in docs/data.md).

The registry: the names experiments use for datasets -> their folders on this machine.

A YAML file, $VLJEPA_DATASETS, else experiments/datasets.yaml (the paper's datasets), so that a cluster
sets its paths once and experiments name datasets, never paths:

    root: /datasets              # relative folders below resolve here; $VLJEPA_DATA_ROOT overrides it
    datasets:
      kinetics400: kinetics400   # -> /datasets/kinetics400 (a folder with a dataset.yaml, docs/data.md)
      msrvtt: /data/msrvtt/1k-A

Eval sets (bench/eval/sets/resolve.py) and training data and mixtures (bench/data/manifest.py) resolve
names here, through `resolve_name`, and read dataset folders through `read_dataset_file`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "experiments" / "datasets.yaml"
REGISTRY_ENV, ROOT_ENV = "VLJEPA_DATASETS", "VLJEPA_DATA_ROOT"
DATASET_FILE = "dataset.yaml"
# name prefix -> fn(name) -> folder: datasets the suite writes itself on first use. Registered from above (the
# paper_micro export, bench/eval/sets/micro.py, needs the cache and the eval sets, which import this module)
BUILTIN_DATASETS: dict[str, Callable[[str], Path]] = {}


class RegistryError(ValueError):
    """The registry file is missing or malformed; the message names it."""


class DatasetError(ValueError):
    """A dataset folder, annotation line or media file is unusable; the message names which and why."""


def registry_file() -> Path:
    return Path(os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


def load_registry(path: Path | None = None) -> dict[str, Path]:
    """Dataset name -> folder, from the registry file (empty when there is none)."""
    path = path or registry_file()
    if not path.is_file():
        if os.environ.get(REGISTRY_ENV):
            raise RegistryError(f"${REGISTRY_ENV} names {path}, which does not exist")
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RegistryError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets", {}), dict):
        raise RegistryError(f"{path}: expected a mapping with 'root' (optional) and 'datasets' (name -> folder)")
    root = Path(os.environ.get(ROOT_ENV) or data.get("root") or ".")
    root = root if root.is_absolute() else path.parent / root
    out = {}
    for name, folder in (data.get("datasets") or {}).items():
        if isinstance(folder, dict):
            folder = folder.get("path")
        if not isinstance(folder, str):
            raise RegistryError(f"{path}: datasets.{name} must be a folder path, got {folder!r}")
        p = Path(os.path.expanduser(folder))
        out[str(name)] = p if p.is_absolute() else root / p
    return out


def resolve_name(name: str, registry: dict[str, Path]) -> Path | None:
    """A dataset name -> its folder or file: a registry name, or a path (anything with a '/', or starting
    with '.'), or a built-in dataset (`builtin:micro_*`, exported into the cache on first use: bench/eval/sets/micro.py);
    None when it is neither."""
    if name.startswith("builtin:"):
        for prefix, build in BUILTIN_DATASETS.items():
            if name.startswith(prefix):
                return build(name)
        raise DatasetError(f"unknown built-in dataset {name!r}; known prefixes: {', '.join(BUILTIN_DATASETS) or 'none'} "
                           "(registered by bench.eval.sets.micro, which the eval sets' resolver imports)")
    if name in registry:
        return registry[name]
    if "/" in name or name.startswith("."):
        return Path(name).expanduser()
    return None


def is_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (path / DATASET_FILE).is_file()


def read_dataset_file(folder: Path) -> dict:
    """A dataset folder's dataset.yaml, parsed: a mapping (its `train` and `tasks` sections are read by their
    users: bench/data/manifest.py and bench/eval/sets/disk.py)."""
    spec_file = folder / DATASET_FILE
    if not spec_file.is_file():
        raise DatasetError(f"{folder}: not a dataset folder (no {DATASET_FILE}; see docs/data.md)")
    try:
        spec = yaml.safe_load(spec_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{spec_file}: not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise DatasetError(f"{spec_file}: expected a mapping with 'train' and/or 'tasks' sections (docs/data.md)")
    return spec
