"""Model name -> builder. A new baseline is one new file under models/ that calls @register:
every module of this package is imported on the first lookup, so no other file changes.

    @register("my_baseline")
    def build(cfg: ModelConfig, seed: int = 0, meta: bool = False) -> nn.Module: ...

seed initialises the model's own weights (the run's seed); meta builds it on the meta device (no memory:
parameter counts and shapes).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import torch.nn as nn

import models
from models.config import ModelConfig

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}
_SCANNED = False


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model name {name!r} is registered twice ({_REGISTRY[name].__module__} and {fn.__module__})")
        _REGISTRY[name] = fn
        return fn
    return deco


def _scan() -> None:
    global _SCANNED
    if _SCANNED:
        return
    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"models.{info.name}")
    _SCANNED = True


def names() -> list[str]:
    _scan()
    return sorted(_REGISTRY)


def get(name: str) -> Builder:
    _scan()
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"model.name={name!r} is not registered{hint} (registered: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def build(cfg: ModelConfig, **kwargs) -> nn.Module:
    return get(cfg.name)(cfg, **kwargs)
