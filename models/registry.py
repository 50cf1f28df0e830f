"""Model name -> builder. A new baseline is one new file under models/ that calls @register:
every module of this package is imported on the first lookup, so no other file changes.

    @register("my_baseline")
    def build(cfg: ModelConfig, seed: int = 0, meta: bool = False) -> nn.Module: ...

seed initialises the model's own weights (the run's seed); meta builds it on the meta device (no memory:
parameter counts and shapes).

A baseline may also live in the user's own installed package, outside this repository: it declares an entry
point in the group `vljepa_bench.models` (ENTRY_POINT_GROUP) whose value is a module (importing it runs its
@register calls) or a function of no arguments (called once; it registers). Entry points are loaded on the
first lookup or listing, after this package's modules, once per process. A plugin that fails to load is
reported in one line (entry point, distribution, error) and leaves the other models usable; a name registered
twice (here and by a plugin, or by two plugins) is an error naming both sources wherever it is looked up.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

import models
from models.config import ModelConfig

Builder = Callable[..., nn.Module]
ENTRY_POINT_GROUP = "vljepa_bench.models"


class DuplicateModelError(KeyError, ValueError):
    """One model name registered by two sources; `name` is the name, the message names both sources. A KeyError
    where a lookup raises it (a sweep's validation reports it as it reports an unknown name), a ValueError
    where register() raises it (a bad registration, as before plugins)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:  # the message itself, not KeyError's repr of it
        return str(self.args[0])


@dataclass
class _State:
    """Everything the registry knows, in one object (a test swaps it whole).

    builders/sources: each name's builder, and where it came from (for the duplicate-name error);
    failures: one line per plugin that did not load; conflicts: name -> the duplicate-name error, raised
    wherever that name is looked up (a plugin's duplicate aborts its import, so it cannot raise at the
    caller's line); loading: the entry point being loaded (the source of the registrations it makes)."""

    builders: dict[str, Builder] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    loading: str | None = None
    modules_scanned: bool = False
    plugins_loaded: bool = False


_STATE = _State()


def _source_of(fn: Builder) -> str:
    """Where a registration comes from, as the duplicate-name error names it."""
    module = getattr(fn, "__module__", "?")
    if _STATE.loading is not None:
        return f"{_STATE.loading} (module {module})"
    if module.startswith("models."):
        return f"{module} (this repository)"
    return f"module {module}"


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: `name` -> the builder. A second builder for a name raises DuplicateModelError naming both."""

    def deco(fn: Builder) -> Builder:
        source = _source_of(fn)
        prior = _STATE.builders.get(name)
        if prior is not None and prior is not fn:
            raise DuplicateModelError(name, f"model name {name!r} is registered twice: by {_STATE.sources[name]} "
                                            f"and by {source}; rename one, or uninstall one of the packages")
        _STATE.builders[name] = fn
        _STATE.sources[name] = source
        return fn

    return deco


def _scan_modules() -> None:
    """Import every module of this package (their @register calls run)."""
    if _STATE.modules_scanned:
        return
    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"models.{info.name}")
    _STATE.modules_scanned = True


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed plugins' entry points, in a fixed order (which of two duplicates is named first)."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(found, key=lambda ep: (_distribution(ep), ep.name))


def _distribution(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _describe(ep: importlib.metadata.EntryPoint) -> str:
    return f"entry point {ep.name!r} = {ep.value!r} of {_distribution(ep)}"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _load_plugin(ep: importlib.metadata.EntryPoint) -> None:
    """Load one entry point: a module registers on import; a function of no arguments is called (unless it is a
    builder that its module's import has just registered: an entry point may name the decorated builder)."""
    _STATE.loading = _describe(ep)
    try:
        loaded = ep.load()
        if callable(loaded) and not isinstance(loaded, types.ModuleType) \
                and not any(loaded is b for b in _STATE.builders.values()):
            loaded()
    finally:
        _STATE.loading = None


def _report(line: str) -> None:
    """Plugin problems go to stderr as they are found (one line each), and into the lookup errors."""
    print(f"vljepa_bench: {line}", file=sys.stderr)


def _load_plugins() -> None:
    """Load every plugin once; a failure or a duplicate name is recorded and reported, never raised here, so
    that one broken package does not take down the models that do not depend on it."""
    if _STATE.plugins_loaded:
        return
    _STATE.plugins_loaded = True  # before loading: a plugin that lists the names while it loads sees a partial list
    for ep in _entry_points():
        try:
            _load_plugin(ep)
        except DuplicateModelError as e:
            _STATE.conflicts[e.name] = str(e)
            _report(str(e))
        except Exception as e:  # any error of a plugin's own code: reported, the other models stay usable
            line = f"model plugin {_describe(ep)} failed to load ({_one_line(e)}); its models are not registered"
            _STATE.failures.append(line)
            _report(line)


def _scan() -> None:
    _scan_modules()
    _load_plugins()


def plugin_failures() -> list[str]:
    """One line per installed model plugin that failed to load (entry point, distribution, error)."""
    _scan()
    return list(_STATE.failures)


def names() -> list[str]:
    """The names a run may use: registered, and not registered twice."""
    _scan()
    return sorted(n for n in _STATE.builders if n not in _STATE.conflicts)


def get(name: str) -> Builder:
    """The builder of `name`; KeyError naming the registered names (and the plugins that failed to load),
    DuplicateModelError where two sources registered it."""
    _scan()
    if name in _STATE.conflicts:
        raise DuplicateModelError(name, _STATE.conflicts[name])
    if name not in _STATE.builders:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        failed = f"; model plugins that failed to load: {' | '.join(_STATE.failures)}" if _STATE.failures else ""
        raise KeyError(f"model.name={name!r} is not registered{hint} (registered: {', '.join(names())}){failed}")
    return _STATE.builders[name]


def build(cfg: ModelConfig, **kwargs) -> nn.Module:
    return get(cfg.name)(cfg, **kwargs)
