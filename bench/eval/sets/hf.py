"""Eval sets from Hugging Face `datasets` tables on disk, parquet files or a `Dataset.save_to_disk` folder, their
columns mapped to a task's fields in the dataset.yaml task section (docs/benchmarks.md), e.g.

    vqa: {format: parquet, data: data/test-*.parquet, candidates: ["yes", "no"],
          columns: {image: image, question: question, answer: answer, kind: category}}

Why: the field ships many eval sets only as such tables (lmms-eval's POPE, GQA), images inline as bytes;
converting them to files and JSON Lines would copy every image. They are read with `datasets` from local
files only (nothing is downloaded; HF_DATASETS_OFFLINE=1 works) into exactly the set kinds the JSON Lines
layouts give (kinds.py), so every task runs unchanged. Bytes are read from the memory-mapped table when a
clip needs them and known to the feature cache by their sha256; parquet is mapped through a one-off Arrow
copy under $VLJEPA_CACHE/hf_datasets. Errors name the file, the row and the column.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cache import cache_dir
from bench.data.datasets import DATASET_FILE, DatasetError
from bench.data.video import Blob
from bench.eval.sets.kinds import CaptioningSet, ChoiceSet, ClassificationSet, HardNegativeSet, RetrievalSet
from bench.eval.sets.media import FileVisuals

FORMATS = ("hf", "parquet")
ROWS = 64  # rows converted to Python at a time (a video column holds megabytes a row)
CHOICE = ("question", "answer", "candidates", "kind")
FIELDS = {"classification": ("video", "image", "label"), "retrieval": ("video", "image", "caption"),  # what `columns` maps
          "captioning": ("video", "image", "caption"), "vqa": ("video", "image", *CHOICE), "world": ("initial", "final", *CHOICE),
          "hardneg": ("anchor", "positive", "negatives", "kind")}
KEYS = {"format", "data", "columns", "candidates", "classnames", "templates", "media_root", "path_format",
        "where", "images"}


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DatasetError("eval sets with 'format: hf|parquet' need the `datasets` library: "
                           "pip install datasets (bash scripts/setup.sh installs it)") from None
    datasets.disable_progress_bars()  # one bar per parquet file loaded would fill every eval log
    return datasets


def _cell(row: dict, column: str) -> Any:
    """A cell by column name; a dotted name reaches into struct columns (GQA's `types.structural`)."""
    value: Any = row
    for part in [column] if column in row else column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class Table:
    """One table (a parquet file, or a save_to_disk folder's split), memory-mapped; `path` is what errors name."""

    def __init__(self, path: Path, data):
        self.path, self.data, self.arrow, self.columns = path, data, data.with_format("arrow"), list(data.column_names)

    def has(self, column: str) -> bool:
        return column in self.columns or column.split(".")[0] in self.columns

    def rows(self, columns: list[str]) -> Iterator[tuple[int, dict]]:
        """(row index, the row's cells in `columns`), never decoding images or videos."""
        tops = sorted({c if c in self.columns else c.split(".")[0] for c in columns})
        batches = self.arrow.select_columns(tops).iter(batch_size=ROWS)
        return enumerate(row for batch in batches for row in batch.to_pylist())

    def cell(self, i: int, column: str) -> Any:
        top = column if column in self.columns else column.split(".")[0]
        return _cell({top: self.arrow[i].column(top)[0].as_py()}, column)


def open_tables(folder: Path, section: dict, key: str) -> list[Table]:
    """The tables `data` names: parquet files (a glob; each its own table: errors name file and row) or a folder."""
    ds, fmt, data = _datasets(), section.get("format"), section.get("data")
    if fmt not in FORMATS:
        raise DatasetError(f"{key}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "parquet":  # an absolute `data` stays as it is
        files = sorted(Path(p) for p in glob.glob(str(folder / data))) if isinstance(data, str) and data else []
        if not files:
            raise DatasetError(f"{key}.data: {data!r} names no parquet file (a path or glob from {folder})")
        return [Table(f, _parquet(f, key)) for f in files]
    path = (folder / (data or ".")).resolve()
    try:
        table = ds.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DatasetError(f"{key}.data: {path} is not a folder Dataset.save_to_disk wrote: {e}") from None
    if isinstance(table, ds.DatasetDict):  # its splits are folders of their own: name one
        raise DatasetError(f"{key}.data: {path} holds splits ({', '.join(table)}): name one, e.g. {path / next(iter(table))}")
    return [Table(path, table)]


def _parquet(path: Path, key: str):
    """One parquet file as a memory-mapped Dataset (through a one-off Arrow copy in the cache folder)."""
    ds = _datasets()
    try:
        return ds.Dataset.from_parquet(str(path), cache_dir=str(cache_dir() / "hf_datasets"))
    except (OSError, ValueError, ds.exceptions.DatasetGenerationError) as e:
        raise DatasetError(f"{key}.data: {path} cannot be read as parquet: {e}") from None


class TableBytes(Blob):
    """Image or video bytes in a table cell: readable like a path (bench/data/video.py), fetched from the mapped
    table when its clip is read (never held), named for errors by file, row and column, known by its sha256."""

    def __init__(self, table: Table, row: int, column: str, data: bytes, video: bool):
        self.table, self.row, self.column = table, row, column
        self.digest, self.nbytes = hashlib.sha256(data).hexdigest(), len(data)
        # the name ends in a suffix, so that read_clip tells an image from a video as it does for files
        suffix = ".mp4" if video else ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"
        self.name = f"{table.path}, row {row}, column {column!r}, bytes sha256:{self.digest[:12]}{suffix}"

    def open(self) -> io.BytesIO:
        cell = self.table.cell(self.row, self.column)
        return io.BytesIO(cell["bytes"] if isinstance(cell, dict) else cell)


class TableVisuals(FileVisuals):
    """FileVisuals whose entries may be TableBytes: files are known to the feature cache as FileVisuals knows
    them (a set of files only shares the cache of the same files in JSON Lines), bytes by their sha256."""

    def head(self, m: int) -> TableVisuals:
        return TableVisuals(self.entries[:m], self.frames, self.size)

    def identity(self) -> tuple:
        if not any(isinstance(p, TableBytes) for entry in self.entries for p in entry):
            return super().identity()
        h = hashlib.sha256()
        for p in (p for entry in self.entries for p in entry):
            key = f"sha256:{p.digest}\x00{p.nbytes}" if isinstance(p, TableBytes) else f"{p}\x00{p.stat().st_size}"
            h.update(f"{key}\x01".encode())
        return ("files", h.hexdigest(), self.frames, self.size)


def _need(tables: list[Table], names: list[str], why: str) -> str:
    """The first of names that every table has as a column; else an error naming a table without it."""
    found = next((n for n in names if all(t.has(n) for t in tables)), None)
    if found:
        return found
    t = next(t for t in tables if not all(t.has(n) for n in names))
    raise DatasetError(f"{t.path}: no column {' or '.join(repr(n) for n in names)} ({why}; the file's columns: "
                       f"{', '.join(t.columns)})")


def _show(value: Any) -> str:
    """A cell as an error shows it: bytes by their length, anything else by a short repr."""
    text = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Reader:
    """One task section in a table format: its tables, its column mapping (a field reads the column `columns`
    maps it to, else the column named as the field), its `where` filter, and the media its rows point at."""

    def __init__(self, folder: Path, spec: dict, task: str, frames: int, size: int):
        self.folder, self.task, self.frames, self.size = folder, task, frames, size
        self.key, self.section = f"{folder / DATASET_FILE}: tasks.{task}", spec["tasks"][task]
        self.columns = self.section.get("columns") or {}
        if not isinstance(self.columns, dict) or not all(isinstance(c, str) for c in self.columns.values()):
            raise DatasetError(f"{self.key}.columns: expected a mapping of field -> column name, got {self.columns!r}")
        unknown = sorted(set(self.section) - KEYS) + sorted(set(self.columns) - set(FIELDS[task]))
        if unknown:
            raise DatasetError(f"{self.key}: {unknown[0]!r} is not a key of a table section ({', '.join(sorted(KEYS))}) "
                               f"nor a {task} field of its columns ({', '.join(FIELDS[task])})")
        self.media_root = (folder / self.section.get("media_root", spec.get("media_root", "."))).resolve()
        self.path_format = self.section.get("path_format", "{}")
        if not isinstance(self.path_format, str) or "{}" not in self.path_format:
            raise DatasetError(f"{self.key}.path_format: expected a string with '{{}}' for the cell, got {self.path_format!r}")
        self.tables = open_tables(folder, self.section, self.key)
        where = self.section.get("where") or {}
        if not isinstance(where, dict):
            raise DatasetError(f"{self.key}.where: expected a mapping of column -> the values to keep, got {where!r}")
        self.filters = {_need(self.tables, [str(c)], f"named by {self.key}.where"): v if isinstance(v, list) else [v]
                        for c, v in where.items()}
        self.visual = self.visual_columns() if task != "hardneg" else []
        self._missing: list[str] = []
        self._bytes: dict[str, TableBytes] = {}
        self.lookup = _Lookup(self, self.section["images"]) if "images" in self.section else None

    def column(self, field: str, *fallbacks: str, required: bool = True, mapped: str | None = None,
               by: str = "columns") -> str | None:
        """The column a field reads: the one mapped to it, else the first of field and fallbacks every table has."""
        mapped = mapped or self.columns.get(field)
        names = [mapped] if mapped else [field, *fallbacks]
        if not (mapped or required) and not any(all(t.has(n) for t in self.tables) for n in names):
            return None
        return _need(self.tables, names, f"the {self.task} field {field!r}, " + (
            f"named by {self.key}.{by}{'.' + field if by == 'columns' else ''}" if mapped else f"map it in {self.key}.columns"))

    def visual_columns(self) -> list[tuple[str, bool]]:
        """(column, holds videos) of the visual fields: video or image, or world's initial and final images."""
        if self.task == "world":
            return [(self.column("initial"), False), (self.column("final"), False)]
        fields = [f for f in ("video", "image") if f in self.columns] or \
            [f for f in ("video", "image") if self.column(f, required=False)]
        if len(fields) != 1:
            raise DatasetError(f"{self.key}.columns: map exactly one of 'video' or 'image' (the tables have "
                               f"{'both' if fields else 'neither'})")
        return [(self.column(fields[0]), fields[0] == "video")]

    def rows(self, *columns: str | None) -> Iterator[tuple[str, Table, int, dict]]:
        """(where, table, row index, row) for every row the filter keeps, with the visual columns and `columns`."""
        wanted, kept = [c for c in (*columns, *self.filters, *(c for c, _ in self.visual)) if c], 0
        for table in self.tables:
            for i, row in table.rows(wanted):
                if all(_cell(row, c) in allowed for c, allowed in self.filters.items()):
                    kept += 1
                    yield f"{table.path}, row {i}", table, i, row
        if not kept:
            raise DatasetError(f"{self.key}: no rows{' that the where filter keeps' if self.filters else ''} in "
                               f"{', '.join(str(t.path) for t in self.tables)}")

    def entry(self, table: Table, i: int, where: str, row: dict) -> tuple:
        """A row's visual: its media, one or an (initial, final) pair."""
        return tuple(self.lookup.get(_cell(row, c), where, c, video) if self.lookup else
                     self.media(table, i, where, c, _cell(row, c), video) for c, video in self.visual)

    def media(self, table: Table, i: int, where: str, column: str, value: Any, video: bool) -> Path | TableBytes:
        """A media cell: bytes (one TableBytes per distinct content), or a file path (checked to exist)."""
        if isinstance(value, dict) and value.get("bytes") is None:
            value = value.get("path")  # an Image / Video feature cell that points at a file
        data = value.get("bytes") if isinstance(value, dict) else value
        if isinstance(data, (bytes, bytearray)):
            cell = TableBytes(table, i, column, bytes(data), video)
            return self._bytes.setdefault(cell.digest, cell)
        if not isinstance(value, str) or not value:
            raise DatasetError(f"{where}, column {column!r}: expected image or video bytes, a {{bytes, path}} cell or "
                               f"a file path, got {_show(value)}")
        p = (self.media_root / self.path_format.format(value)).resolve()
        if not p.is_file():
            self._missing.append(f"{where}, column {column!r}: file {p} does not exist")
        return p

    def visuals(self, entries: list[tuple]) -> TableVisuals:
        if self._missing:  # all at once, the first three named
            more = f" (and {len(self._missing) - 3} more)" if len(self._missing) > 3 else ""
            raise DatasetError("; ".join(self._missing[:3]) + more)
        return TableVisuals(entries, self.frames, self.size)

    def strings(self, row: dict, where: str, column: str) -> list[str]:
        v = _cell(row, column)
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise DatasetError(f"{where}, column {column!r}: expected a string or a non-empty list of strings, got {_show(v)}")
        return v

    def index(self, row: dict, where: str, column: str, options: list[str], what: str) -> int:
        """An answer or label: one of the options, or its index."""
        v = _cell(row, column)
        if isinstance(v, str) and v in options:
            return options.index(v)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(options):
            return v
        raise DatasetError(f"{where}, column {column!r}: {_show(v)} is neither {what} ({_show(options)}) nor an index "
                           f"0..{len(options) - 1}")

    def names(self, key: str) -> list[str]:
        """Class names or templates: a list in the section, or a file (one a line, or a JSON list)."""
        given = self.section[key]
        if isinstance(given, str) and given and (self.folder / given).is_file():
            text = (self.folder / given).read_text()
            try:
                given = json.loads(text) if given.endswith(".json") else [x.strip() for x in text.splitlines() if x.strip()]
            except json.JSONDecodeError as e:
                raise DatasetError(f"{self.key}.{key}: {self.folder / given} is not JSON: {e}") from None
        if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
            raise DatasetError(f"{self.key}.{key}: expected a non-empty list of strings, or a file of them (from "
                               f"{self.folder}), got {_show(given)}")
        return given

    def candidates(self) -> list[str] | str:
        """Fixed candidates (a list in the section), or the column of each row's (its name, or columns.candidates)."""
        fixed = self.section.get("candidates")
        if fixed is None or isinstance(fixed, str):
            return self.column("candidates", mapped=fixed, by="candidates" if fixed else "columns")
        if isinstance(fixed, list) and len(fixed) >= 2 and all(isinstance(c, str) for c in fixed):
            return fixed
        hint = ' (YAML reads a bare yes / no as a boolean: quote them, ["yes", "no"])' \
            if isinstance(fixed, list) and any(isinstance(c, bool) for c in fixed) else ""
        raise DatasetError(f"{self.key}.candidates: expected two or more strings, or a column name, got {fixed!r}{hint}")


class _Lookup:
    """`images: {data, key, column}`: media cells are keys into a second table (lmms-lab's GQA: a question names
    an imageId, the images table holds id and image), indexed once; a key's bytes are read when first named."""

    def __init__(self, reader: _Reader, spec: Any):
        where = f"{reader.key}.images"
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("data", "key", "column")):
            raise DatasetError(f"{where}: expected {{data, key, column}} (format: the task's unless given), got {spec!r}")
        self.reader, self.key, self.column = reader, spec["key"], spec["column"]
        self.tables = open_tables(reader.folder, {"format": reader.section.get("format"), **spec}, where)
        for c in (self.key, self.column):
            _need(self.tables, [c], f"named by {where}")
        self.rows = {_cell(row, self.key): (t, i) for t in self.tables for i, row in t.rows([self.key])}
        self.cells: dict[Any, Path | TableBytes] = {}

    def get(self, value: Any, where: str, column: str, video: bool) -> Path | TableBytes:
        if value not in self.cells:
            if value not in self.rows:
                raise DatasetError(f"{where}, column {column!r}: {_show(value)} is no key of the images table "
                                   f"({self.tables[0].path}, column {self.key!r})")
            t, i = self.rows[value]
            self.cells[value] = self.reader.media(t, i, f"{t.path}, row {i}", self.column, t.cell(i, self.column), video)
        return self.cells[value]


def _classification(r: _Reader, name: str) -> ClassificationSet:
    """Class names from `classnames` (a list or a file), else from the label column's ClassLabel feature."""
    label = r.column("label")
    names = r.names("classnames") if "classnames" in r.section else \
        list(getattr(r.tables[0].data.features.get(label), "names", None) or [])
    if not names:
        raise DatasetError(f"{r.key}: no 'classnames' (a list or a file), and column {label!r} of {r.tables[0].path} "
                           "is no ClassLabel naming its classes")
    templates = r.names("templates") if "templates" in r.section else ["{}"]
    if any("{}" not in t for t in templates):
        raise DatasetError(f"{r.key}.templates: every template needs a '{{}}' for the class name: {templates!r}")
    entries, labels = [], []
    for where, table, i, row in r.rows(label):
        entries.append(r.entry(table, i, where, row))
        labels.append(r.index(row, where, label, names, "a class name"))
    return ClassificationSet(name, r.visuals(entries), labels, names, templates)


def _captioned(r: _Reader) -> list[tuple[tuple, list[str]]]:
    caption = r.column("caption", "captions", "references")
    return [(r.entry(table, i, where, row), r.strings(row, where, caption)) for where, table, i, row in r.rows(caption)]


def _retrieval(r: _Reader, name: str) -> RetrievalSet:
    """Rows may give a video all its captions, or one caption each (the rows of one video are merged)."""
    index: dict[tuple, int] = {}
    texts, owner = [], []
    for entry, captions in _captioned(r):
        texts += captions
        owner += [index.setdefault(entry, len(index))] * len(captions)
    return RetrievalSet(name, r.visuals(list(index)), texts, owner)


def _captioning(r: _Reader, name: str) -> CaptioningSet:
    """Each video once, every caption of its rows a reference (a table of one caption a row: MSR-VTT's 20)."""
    refs: dict[tuple, list[str]] = {}
    for entry, captions in _captioned(r):
        refs.setdefault(entry, []).extend(captions)
    return CaptioningSet(name, r.visuals(list(refs)), list(refs.values()))


def _choice(r: _Reader, name: str) -> ChoiceSet:
    answer, cands = r.column("answer"), r.candidates()
    question, kind = r.column("question", required=False), r.column("kind", required=False)
    entries: dict[tuple, int] = {}
    which, questions, candidates, answers, kinds = [], [], [], [], []
    for where, table, i, row in r.rows(answer, question, kind, None if isinstance(cands, list) else cands):
        which.append(entries.setdefault(r.entry(table, i, where, row), len(entries)))  # questions share a clip
        options = cands if isinstance(cands, list) else r.strings(row, where, cands)
        q = "" if question is None else _cell(row, question)
        if len(options) < 2 or not isinstance(q, str):
            raise DatasetError(f"{where}, column {cands!r}: needs two or more candidates, got {options!r}" if len(options) < 2
                               else f"{where}, column {question!r}: the question must be a string, got {_show(q)}")
        questions.append(q)
        candidates.append(tuple(options))
        answers.append(r.index(row, where, answer, options, "a candidate"))
        kinds.append(r.task if kind is None else str(_cell(row, kind)))
    return ChoiceSet(name, r.visuals(list(entries)), which, questions, candidates, answers, kinds)


def _hardneg(r: _Reader, name: str) -> HardNegativeSet:
    anchor, positive = r.column("anchor", "caption"), r.column("positive")
    negative, kind = r.column("negatives", "negative"), r.column("kind", required=False)
    anchors, positives, negatives, kinds = [], [], [], []
    for where, _, _, row in r.rows(anchor, positive, negative, kind):
        anchors.append(r.strings(row, where, anchor)[0])
        positives.append(r.strings(row, where, positive)[0])
        negatives.append(tuple(r.strings(row, where, negative)))
        kinds.append("hardneg" if kind is None else str(_cell(row, kind)))
    return HardNegativeSet(name, anchors, positives, negatives, kinds)


BUILDERS = {"classification": _classification, "retrieval": _retrieval, "captioning": _captioning, "vqa": _choice,
            "world": _choice, "hardneg": _hardneg}


def table_set(task: str, name: str, folder: Path, spec: dict, frames: int, size: int):
    """The eval set of one task whose dataset.yaml section has `format: hf|parquet` (disk.disk_set routes it)."""
    if task not in BUILDERS:
        raise DatasetError(f"{folder / DATASET_FILE}: tasks.{task}: {task} sets are read from JSON Lines only "
                           f"(docs/data.md), not from format {spec['tasks'][task].get('format')!r}")
    return BUILDERS[task](_Reader(folder, spec, task, frames, size), name)
