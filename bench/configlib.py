"""Typed dataclass configs from plain dicts, with errors a user can act on.

Every part of the suite owns the dataclass of its own settings (models/config.py,
bench/data/config.py, ...). This module turns a nested dict (merged from YAML files and
command-line overrides) into those dataclasses, checking keys, types and ranges, and turns
them back into plain dicts. Field metadata understood here:

- ``ge`` / ``gt`` / ``le`` / ``lt``: numeric bounds.
- ``identity=False``: the field does not change what is computed (launch settings, logging),
  so it is left out of a run's identity hash.
- ``identity="unless_default"``: a field added after runs were recorded enters the identity hash
  only when set to something other than its default, so the run_ids of existing runs stay valid.
- ``help``: one line shown in error messages.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

Provenance = dict[str, str]  # dotted key -> where its value came from (a file, "command line")


class ConfigError(ValueError):
    """A config value or key is wrong. The message names where, what and what was expected."""


def _where(prov: Provenance, key: str) -> str:
    # the most specific provenance entry that covers this key ("a.b[2]" is covered by "a.b")
    parts = key.split("[")[0].split(".")
    for i in range(len(parts), 0, -1):
        k = ".".join(parts[:i])
        if k in prov:
            return prov[k]
    return prov.get("", "built-in defaults")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping (section)"
    return getattr(tp, "__name__", str(tp))


_MISMATCH = object()  # a scalar coercer's answer for a value of the wrong type


def _to_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _MISMATCH


def _to_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # 1e6 written in YAML arrives as a float
    return _MISMATCH


def _to_float(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # PyYAML reads "1e-3" as a string (YAML 1.1)
        try:
            return float(value)
        except ValueError:
            return _MISMATCH
    return _MISMATCH


def _to_str(value: Any) -> Any:
    return value if isinstance(value, str) else _MISMATCH


_SCALARS: dict[type, Any] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _coerce(value: Any, tp: Any, key: str, prov: Provenance) -> Any:
    """Check ``value`` against the annotation ``tp``; return the (possibly converted) value."""
    origin = get_origin(tp)
    bad = ConfigError(
        f"{_where(prov, key)}: key '{key}' has value {value!r} "
        f"({type(value).__name__}); expected {_type_name(tp)}"
    )
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(str(bad) + hint)
    if origin in (Union, types.UnionType):
        sections = [arm for arm in get_args(tp) if dataclasses.is_dataclass(arm)]
        if isinstance(value, dict) and len(sections) == 1:  # a section's own error says what is wrong inside it
            return _coerce(value, sections[0], key, prov)
        for arm in get_args(tp):
            try:
                return _coerce(value, arm, key, prov)
            except ConfigError:
                continue
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, prov, prefix=key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (inner,) = get_args(tp) or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]", prov) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        kt, vt = get_args(tp) or (str, Any)
        return {_coerce(k, kt, key, prov): _coerce(v, vt, f"{key}.{k}", prov) for k, v in value.items()}
    if tp in _SCALARS:
        out = _SCALARS[tp](value)
        if out is _MISMATCH:
            raise bad
        return out
    raise TypeError(f"unsupported config annotation {tp!r} at {key}")


def _check_bounds(value: Any, meta: typing.Mapping[str, Any], key: str, prov: Provenance) -> None:
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    rules = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
             "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}
    for name, (ok, sym) in rules.items():
        if name in meta and not ok(value, meta[name]):
            raise ConfigError(
                f"{_where(prov, key)}: key '{key}' has value {value!r}; expected a value {sym} {meta[name]}"
                + (f" ({meta['help']})" if "help" in meta else "")
            )


def from_dict(cls: type, data: dict[str, Any], prov: Provenance | None = None, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; fields missing from ``data`` keep their defaults."""
    prov = prov or {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in fields:
            close = difflib.get_close_matches(str(k), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{(prefix + '.' if prefix else '') + close[0]}'?" if close else ""
            raise ConfigError(
                f"{_where(prov, key)}: unknown key '{key}'{hint} "
                f"(known keys{' in ' + prefix if prefix else ''}: {', '.join(sorted(fields))})"
            )
        value = _coerce(v, hints[k], key, prov)
        _check_bounds(value, fields[k].metadata, key, prov)
        kwargs[k] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except ValueError as e:  # a section's own cross-field rule: name every source of its keys
            under = prefix + "." if prefix else ""
            sources = sorted({v for k, v in prov.items() if k and (k == prefix or k.startswith(under))})
            where = ", ".join(sources) or _where(prov, prefix)
            raise ConfigError(f"{where}: section '{prefix or '(top)'}': {e}") from None
    return obj


def to_dict(obj: Any, identity_only: bool = False) -> Any:
    """Plain-data view of a config; with ``identity_only`` drop fields marked identity=False."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            if identity_only and not f.metadata.get("identity", True):
                continue
            if identity_only and f.metadata.get("identity") == "unless_default" and getattr(obj, f.name) == _default(f):
                continue
            out[f.name] = to_dict(getattr(obj, f.name), identity_only)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, identity_only) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, identity_only) for k, v in obj.items()}
    return obj


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def deep_merge(base: dict, over: dict, prov: Provenance, source: str, prefix: str = "") -> dict:
    """Merge ``over`` into a copy of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v, prov, source, key)
        else:
            out[k] = v
            for p in [p for p in prov if p == key or p.startswith(key + ".")]:
                del prov[p]
            prov[key] = source
    return out


def nest_dotted(key: str, value: Any) -> dict:
    """Return ``{a: {b: value}}`` for key 'a.b' (a nested dict ready for deep_merge)."""
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    return out
