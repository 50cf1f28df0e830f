"""The converter registry and what every converter shares: finding a release's files, checking media,
writing a dataset folder atomically with its provenance (convert.json)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.data.datasets import DATASET_FILE


class ConvertError(ValueError):
    """A release that cannot be converted; the message names the file (and line) and what was expected."""


@dataclass(frozen=True)
class Option:
    """A converter's own command-line option, `--NAME VALUE` (NAME with dashes; read as ctx.options[name
    with underscores])."""

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    type: Callable[[str], Any] = str


@dataclass(frozen=True)
class Converter:
    name: str
    summary: str  # one line: the release and the tasks it serves
    convert: Callable[[Context], dict[str, dict]]  # writes its files, returns dataset.yaml's `tasks`
    options: tuple[Option, ...] = ()
    source: str = ""  # where the release and its schema come from (docs/data.md repeats it)


CONVERTERS: dict[str, Converter] = {}


def register(name: str, summary: str, *, options: Iterable[Option] = (), source: str = ""):
    """Decorator: `@register("msrvtt", "MSR-VTT 1k-A test: retrieval and captioning")` on a function of a
    Context that writes the annotation files (ctx.write_jsonl, ...) and returns the `tasks` mapping."""

    def deco(fn: Callable[[Context], dict[str, dict]]):
        if name in CONVERTERS:
            raise ValueError(f"converter {name!r} registered twice")
        CONVERTERS[name] = Converter(name, summary, fn, tuple(options), source)
        return fn

    return deco


@dataclass
class Context:
    """One conversion: where the release is (src), where its media are (media_root), the folder being
    written (work, renamed to out when the converter finishes), and the converter's options."""

    name: str
    src: Path
    out: Path
    media_root: Path
    options: dict[str, Any]
    missing: str = "drop"  # drop | keep: items whose media file does not exist
    work: Path = field(init=False)
    read: dict[str, str] = field(default_factory=dict)  # release file -> sha256
    counts: dict[str, int] = field(default_factory=dict)  # file written -> its lines
    notes: dict[str, int] = field(default_factory=dict)  # other items left out, by why (e.g. segments past a video)
    dropped: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.work = self.out.with_name(f".{self.out.name}.converting-{os.getpid()}")

    # -- reading the release -------------------------------------------------------------------------
    def source(self, *names: str) -> Path:
        """The first of the given release files (relative to src; a glob allowed) that exists."""
        for n in names:
            hits = sorted(self.src.glob(n)) if any(c in n for c in "*?[") else [self.src / n]
            for p in hits:
                if p.is_file():
                    self.read[str(p.relative_to(self.src))] = _sha256(p)
                    return p
        raise ConvertError(f"{self.src}: none of {', '.join(names)} found (the {self.name} release's annotation "
                           f"files; see docs/data.md)")

    def has(self, *names: str) -> bool:
        return any(any(self.src.glob(n)) if any(c in n for c in "*?[") else (self.src / n).is_file() for n in names)

    def json(self, *names: str) -> Any:
        p = self.source(*names)
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConvertError(f"{p}: not valid JSON: {e}") from None

    def jsonl(self, *names: str) -> list[dict]:
        p = self.source(*names)
        rows = []
        for n, line in enumerate(p.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ConvertError(f"{p}:{n}: not valid JSON: {e}") from None
        return rows

    def csv(self, *names: str, delimiter: str = ",", fieldnames: list[str] | None = None) -> list[dict[str, str]]:
        p = self.source(*names)
        with p.open(newline="") as f:
            return list(csv.DictReader(f, delimiter=delimiter, fieldnames=fieldnames))

    # -- media ---------------------------------------------------------------------------------------
    def media(self, rel: str, where: str = "") -> str | None:
        """rel if media_root/rel exists (or --missing keep); None, counted and listed, when it does not."""
        if (self.media_root / rel).is_file() or self.missing == "keep":
            return rel
        self.dropped.append(f"{rel}{f' ({where})' if where else ''}")
        return None

    def first_media(self, stem: str, suffixes: Iterable[str] = (".mp4", ".webm", ".mkv", ".avi")) -> str | None:
        """The media file stem + one of suffixes that exists under media_root (releases mix containers);
        stem + the first suffix when none does (and --missing keep), else None."""
        suffixes = tuple(suffixes)
        for s in suffixes:
            if (self.media_root / (stem + s)).is_file():
                return stem + s
        return self.media(stem + suffixes[0])

    # -- writing -------------------------------------------------------------------------------------
    def write_jsonl(self, filename: str, rows: Iterable[dict]) -> str:
        rows = list(rows)
        if not rows:
            raise ConvertError(f"{self.src}: nothing to write to {filename}: every item was dropped "
                               f"({len(self.dropped)} missing media files under {self.media_root})")
        path = self.work / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self.counts[filename] = len(rows)
        return filename

    def write_lines(self, filename: str, lines: Iterable[str]) -> str:
        lines = list(lines)
        path = self.work / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(str(x) + "\n" for x in lines))
        self.counts[filename] = len(lines)
        return filename


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_converter(conv: Converter, ctx: Context, force: bool = False) -> dict:
    """Run one converter into a fresh folder beside ctx.out and move it into place when it is whole; the
    summary (also convert.json) is returned."""
    if ctx.out.exists() and not force:
        raise ConvertError(f"{ctx.out} exists; pass --force to replace it")
    shutil.rmtree(ctx.work, ignore_errors=True)
    ctx.work.mkdir(parents=True)
    try:
        tasks = conv.convert(ctx)
        media_root = os.path.relpath(ctx.media_root.resolve(), ctx.out.resolve())
        spec = {"media_root": media_root, "tasks": tasks}
        (ctx.work / DATASET_FILE).write_text(f"# written by python -m bench.data.convert {conv.name}\n"
                                             + yaml.safe_dump(spec, sort_keys=False))
        summary = {"converter": conv.name, "src": str(ctx.src.resolve()), "media_root": str(ctx.media_root.resolve()),
                   "options": ctx.options, "read": ctx.read, "written": ctx.counts,
                   **({"left_out": ctx.notes} if ctx.notes else {}),
                   "dropped_missing_media": len(ctx.dropped), "dropped_examples": ctx.dropped[:20]}
        (ctx.work / "convert.json").write_text(json.dumps(summary, indent=1) + "\n")
        if ctx.out.exists():
            shutil.rmtree(ctx.out)
        os.replace(ctx.work, ctx.out)
        return summary
    except BaseException:
        shutil.rmtree(ctx.work, ignore_errors=True)
        raise


# -- what the converters share: finding a release's videos, its JSON, its times ---------------------------

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")  # the containers releases and downloaders leave


def load_json(ctx: Context, *names: str) -> tuple[Path, Any]:
    """The first of the release files that exists, parsed; its path for the errors that name it."""
    path = ctx.source(*names)
    try:
        return path, json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConvertError(f"{path}: not valid JSON: {e}") from None


def find_media(ctx: Context, candidates: list[str], where: str = "") -> str | None:
    """The first candidate path (relative to the media root) that exists; else the first one when
    --missing keep, or None, the item listed as dropped (ctx.media)."""
    for rel in candidates:
        if (ctx.media_root / rel).is_file():
            return rel
    return ctx.media(candidates[0], where)


def with_suffixes(*names: str, suffixes: Sequence[str] = VIDEO_SUFFIXES) -> list[str]:
    """Every name (a path without its suffix) with every suffix, names first: the candidates find_media
    tries, for releases downloaded from YouTube in whatever container it gave."""
    return [n + x for n in names for x in suffixes]


def seconds(value: Any, where: str) -> float:
    """A time in seconds from a release (a number, or a string of one)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        raise ConvertError(f"{where}: expected a time in seconds, got {value!r}")
    return x
