"""Converters from benchmark releases, as their official releases ship them, to the dataset folders of
docs/data.md.

    python -m bench.data.convert --help                     # every converter, a line each
    python -m bench.data.convert msrvtt --src RELEASE_DIR --out DATASET_DIR [--media-root VIDEOS]

A converter reads the annotation files of one release (the schema is cited in its module and in
docs/data.md) and writes a dataset folder: a dataset.yaml, JSON Lines annotations (or list files), and a
convert.json saying what was read (files and their sha256), what was written and what was dropped.
Media files are never copied: dataset.yaml's `media_root` points at them. Items whose media file is
missing are dropped and counted (`--missing keep` keeps them, for media that will arrive later).

Adding a converter is one module in this package that calls `register` (see common.py).
"""

from __future__ import annotations

import importlib
import pkgutil

from bench.data.convert.common import CONVERTERS, Context, Converter, ConvertError, Option, register


def load_all() -> dict[str, Converter]:
    """Every converter: each module of this package registers its own when imported."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("common", "__main__"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return CONVERTERS


__all__ = ["load_all", "CONVERTERS", "ConvertError", "Context", "Converter", "Option", "register"]
