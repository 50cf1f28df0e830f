"""The dataset registry: the names experiments use for datasets -> their folders on this machine.

A YAML file, $VLJEPA_DATASETS, else experiments/datasets.yaml (the paper's datasets), so that a cluster
sets its paths once and experiments name datasets, never paths:

    root: /datasets              # relative folders below resolve here; $VLJEPA_DATA_ROOT overrides it
    datasets:
      kinetics400: kinetics400   # -> /datasets/kinetics400 (a folder with a dataset.yaml, docs/data.md)
      msrvtt: /data/msrvtt/1k-A

Eval sets (bench/evalsets/registry.py) and training mixtures (bench/data/mixture.py) resolve names here.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_REGISTRY = REPO_ROOT / "experiments" / "datasets.yaml"
REGISTRY_ENV, ROOT_ENV = "VLJEPA_DATASETS", "VLJEPA_DATA_ROOT"


class RegistryError(ValueError):
    """The registry file is missing or malformed; the message names it."""


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
