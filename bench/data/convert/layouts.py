"""The classification layout every classification converter writes (docs/data.md): val.jsonl, class names,
prompt templates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.data.convert.common import Context, ConvertError, Option

TEMPLATES = Option("templates", "yes", "write templates.txt (the benchmark's prompt templates); 'no' leaves it "
                   "out, so each class name is its own prompt", choices=("yes", "no"))


def write_classification(ctx: Context, rows: Iterable[dict], names: Sequence[str],
                         templates: Sequence[str]) -> dict[str, dict]:
    """val.jsonl, classnames.txt and (unless --templates no) templates.txt; dataset.yaml's `tasks`.
    Class names must be distinct and one line each: two classes with one name could never be told apart."""
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if not n or "\n" in n or n != n.strip():
            raise ConvertError(f"{ctx.src}: class {i} has the name {n!r}: a class name must be one non-empty line")
        if n in seen:
            raise ConvertError(f"{ctx.src}: classes {seen[n]} and {i} are both named {n!r}")
        seen[n] = i
    section = {"annotations": ctx.write_jsonl("val.jsonl", rows), "classnames": ctx.write_lines("classnames.txt", names)}
    if ctx.options.get("templates", "yes") == "yes":
        section["templates"] = ctx.write_lines("templates.txt", templates)
    return {"classification": section}
