"""Eval sets from datasets on disk, in layouts close to what the datasets ship (docs/data.md).

A dataset is a folder with a `dataset.yaml` that names, for each task it serves, its annotation file
(and for classification its class names and prompt templates):

    tasks:
      classification: {annotations: val.jsonl, classnames: classnames.txt, templates: templates.txt}
      retrieval: {annotations: captions.jsonl}
      captioning: {annotations: captions.jsonl}
      vqa: {annotations: questions.jsonl}
      world: {annotations: world.jsonl}
      hardneg: {annotations: hardneg.jsonl}
      streaming: {annotations: streams.jsonl, sample_fps: 4}

Media paths in annotations are relative to the folder (or to `media_root`, top-level or per task).
Clips are read as the run's X-encoder expects them: T frames uniformly over a video (seeking, see
bench/data/video.py), or an image filling the clip; frames and size come from the run, not the set.
A video item may carry `start`/`end` (seconds): its clip is then T frames over that segment of the
video only (a long video read by seeking), and two items of one video with different segments are different
clips. Every error names the file, the line and what was expected; every media file is checked to exist
when the set is loaded, and every segment to lie within its video (probing only the videos that have
segments), before any model is built.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.data.datasets import DATASET_FILE, DatasetError, read_dataset_file
from bench.data.video import Segment, probe, read_all_frames
from bench.eval.sets.kinds import CaptioningSet, ChoiceSet, ClassificationSet, HardNegativeSet, RetrievalSet, Stream, StreamSet
from bench.eval.sets.media import FileVisuals, check_segments, parse_segment

__all__ = ["FileVisuals", "disk_set", "limit", "read_spec"]  # FileVisuals: where readers of other layouts find it

# an item's visual: its file(s) and, for a segment of a video, the segment; two items with equal ones share a clip
Item = tuple[tuple[Path, ...], Segment | None]


def read_spec(folder: Path) -> dict[str, Any]:
    """A dataset folder's dataset.yaml, with the `tasks` section evaluation reads."""
    spec = read_dataset_file(folder)
    if not isinstance(spec.get("tasks"), dict):
        raise DatasetError(f"{folder / DATASET_FILE}: expected a mapping with a 'tasks' mapping (task -> its files)")
    return spec


def _lines(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{n}: not a JSON object: {e}") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        out.append((n, obj))
    if not out:
        raise DatasetError(f"{path}: no annotations")
    return out


def _text_list(path: Path) -> list[str]:
    """One entry a line (a .txt), or a JSON list."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise DatasetError(f"{path}: expected a JSON list of strings")
        return data
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class _Reader:
    """Reads one task's section of a dataset folder; every error names the file and line."""

    def __init__(self, folder: Path, spec: dict, task: str, frames: int, size: int):
        self.folder, self.task, self.frames, self.size = folder, task, frames, size
        self.section = spec["tasks"][task] or {}
        if not isinstance(self.section, dict):
            raise DatasetError(f"{folder / DATASET_FILE}: tasks.{task} must be a mapping of its files")
        root = self.section.get("media_root", spec.get("media_root", "."))
        self.media = (folder / root).resolve()
        self.annotations = self.file("annotations")
        self._missing: list[str] = []
        self._segments: list[tuple[str, Path, Segment]] = []  # (line, video, segment): checked against the video

    def file(self, key: str, required: bool = True) -> Path | None:
        rel = self.section.get(key)
        if rel is None:
            if required:
                raise DatasetError(f"{self.folder / DATASET_FILE}: tasks.{self.task} has no '{key}' file")
            return None
        return (self.folder / rel).resolve()

    def where(self, n: int) -> str:
        return f"{self.annotations}:{n}"

    def media_path(self, rel: Any, n: int, key: str) -> Path:
        if not isinstance(rel, str) or not rel:
            raise DatasetError(f"{self.where(n)}: '{key}' must be a file path, got {rel!r}")
        p = (self.media / rel).resolve()
        if not p.is_file():
            self._missing.append(f"{self.where(n)}: {key} file {p} does not exist")
        return p

    def visual(self, obj: dict, n: int) -> Item:
        if "initial" in obj or "final" in obj:
            parse_segment(obj, self.where(n), "initial")  # a state pair has no time: start/end are an error
            return (self.media_path(obj.get("initial"), n, "initial"), self.media_path(obj.get("final"), n, "final")), None
        if ("video" in obj) == ("image" in obj):
            raise DatasetError(f"{self.where(n)}: needs exactly one of 'video' or 'image'")
        key = "video" if "video" in obj else "image"
        path, seg = self.media_path(obj[key], n, key), parse_segment(obj, self.where(n), key)
        if seg is not None:
            self._segments.append((self.where(n), path, seg))
        return (path,), seg

    def check_media(self) -> None:
        """Every file named exists (all missing ones counted in one error); then every segment lies within its
        video (which needs the file)."""
        if self._missing:
            more = f" (and {len(self._missing) - 3} more)" if len(self._missing) > 3 else ""
            raise DatasetError("; ".join(self._missing[:3]) + more)
        check_segments(self._segments)
        self._segments = []

    def strings(self, obj: dict, n: int, *keys: str) -> list[str]:
        """The first of keys present, as a list of strings (a single string becomes a list of one)."""
        for key in keys:
            if key in obj:
                v = obj[key]
                v = [v] if isinstance(v, str) else v
                if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                    raise DatasetError(f"{self.where(n)}: '{key}' must be a string or a non-empty list of strings")
                return v
        raise DatasetError(f"{self.where(n)}: needs one of {', '.join(repr(k) for k in keys)}")

    def answer(self, obj: dict, n: int, candidates: list[str]) -> int:
        a = obj.get("answer")
        if isinstance(a, str) and a in candidates:
            return candidates.index(a)
        if isinstance(a, int) and not isinstance(a, bool) and 0 <= a < len(candidates):
            return a
        raise DatasetError(f"{self.where(n)}: 'answer' {a!r} is neither a candidate nor an index 0..{len(candidates) - 1}")


def _visuals(reader: _Reader, items: list[Item]) -> FileVisuals:
    reader.check_media()
    return FileVisuals([entry for entry, _ in items], reader.frames, reader.size, [seg for _, seg in items])


def _classification(r: _Reader, name: str) -> ClassificationSet:
    names = _text_list(r.file("classnames"))
    templates_file = r.file("templates", required=False)
    templates = _text_list(templates_file) if templates_file else ["{}"]
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise DatasetError(f"{templates_file}: every template needs a '{{}}' for the class name, not {bad[0]!r}")
    entries, labels = [], []
    if r.annotations.suffix in (".txt", ".csv"):
        # "path label" lines (.txt, the VideoMAE / UMT list layout) or "path,label" (.csv); a label is an
        # index or a class name (with spaces: .csv only)
        for n, raw in enumerate(r.annotations.read_text().splitlines(), start=1):
            if not raw.strip():
                continue
            path, _, label = raw.partition(",") if r.annotations.suffix == ".csv" else raw.strip().rpartition(" ")
            path, label = path.strip(), label.strip()
            if not path or not label:
                raise DatasetError(f"{r.where(n)}: expected 'path{',' if r.annotations.suffix == '.csv' else ' '}label', "
                                   f"got {raw!r}")
            rows = {"video": path, "label": int(label) if label.lstrip("-").isdigit() else label}
            entries.append(r.visual(rows, n))
            labels.append(_label(r, rows["label"], names, n))
    else:
        for n, obj in _lines(r.annotations):
            entries.append(r.visual(obj, n))
            labels.append(_label(r, obj.get("label"), names, n))
    return ClassificationSet(name, _visuals(r, entries), labels, names, templates)


def _label(r: _Reader, label: Any, names: list[str], n: int) -> int:
    if isinstance(label, str) and label in names:
        return names.index(label)
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names):
        return label
    raise DatasetError(f"{r.where(n)}: 'label' {label!r} is neither a class name nor an index 0..{len(names) - 1}")


def _captions(r: _Reader) -> tuple[list[Item], list[list[str]]]:
    entries, refs = [], []
    for n, obj in _lines(r.annotations):
        entries.append(r.visual(obj, n))
        refs.append(r.strings(obj, n, "captions", "caption", "references"))
    return entries, refs


def _retrieval(r: _Reader, name: str) -> RetrievalSet:
    """Lines may give a video all its captions, or one caption each (lines of one video, and one segment of
    it, are merged)."""
    entries, refs = _captions(r)
    index: dict[Item, int] = {}
    texts, owner = [], []
    for entry, rs in zip(entries, refs):
        v = index.setdefault(entry, len(index))
        texts += rs
        owner += [v] * len(rs)
    return RetrievalSet(name, _visuals(r, list(index)), texts, owner)


def _captioning(r: _Reader, name: str) -> CaptioningSet:
    entries, refs = _captions(r)
    return CaptioningSet(name, _visuals(r, entries), refs)


def _choice(r: _Reader, name: str) -> ChoiceSet:
    entries: dict[Item, int] = {}
    visual, questions, candidates, answers, kinds = [], [], [], [], []
    for n, obj in _lines(r.annotations):
        entry = r.visual(obj, n)
        visual.append(entries.setdefault(entry, len(entries)))  # items sharing a video share its clip
        cands = r.strings(obj, n, "candidates")
        if len(cands) < 2:
            raise DatasetError(f"{r.where(n)}: 'candidates' needs at least two answers")
        q = obj.get("question", "")
        if not isinstance(q, str):
            raise DatasetError(f"{r.where(n)}: 'question' must be a string")
        questions.append(q)
        candidates.append(tuple(cands))
        answers.append(r.answer(obj, n, cands))
        kinds.append(str(obj.get("kind", r.task)))
    return ChoiceSet(name, _visuals(r, list(entries)), visual, questions, candidates, answers, kinds)


def _hardneg(r: _Reader, name: str) -> HardNegativeSet:
    anchors, positives, negatives, kinds = [], [], [], []
    for n, obj in _lines(r.annotations):
        anchors.append(r.strings(obj, n, "anchor", "caption")[0])
        positives.append(r.strings(obj, n, "positive")[0])
        negatives.append(tuple(r.strings(obj, n, "negatives", "negative")))
        kinds.append(str(obj.get("kind", "hardneg")))
    return HardNegativeSet(name, anchors, positives, negatives, kinds)


def _streaming(r: _Reader, name: str) -> StreamSet:
    sample_fps = r.section.get("sample_fps")
    streams = []
    for n, obj in _lines(r.annotations):
        (path,), _ = r.visual({"video": obj.get("video")}, n)  # a stream is its whole video
        r.check_media()
        notes = obj.get("annotations")
        if not isinstance(notes, list) or not notes:
            raise DatasetError(f"{r.where(n)}: 'annotations' must be a non-empty list of "
                               "{time (or start and end) in seconds, references}")
        parsed = []
        for a in notes:
            if not isinstance(a, dict):
                raise DatasetError(f"{r.where(n)}: every annotation must be an object, got {a!r}")
            if "time" in a:
                t = float(a["time"])
            elif "start" in a and "end" in a:
                t = (float(a["start"]) + float(a["end"])) / 2
            else:
                raise DatasetError(f"{r.where(n)}: an annotation needs 'time' or 'start' and 'end' (seconds)")
            parsed.append((t, r.strings(a, n, "references", "caption", "text")))
        native = probe(path).fps
        every = max(1, round(native / float(sample_fps))) if sample_fps else 1
        frames: Callable = functools.partial(read_all_frames, path, r.size, every)
        streams.append(Stream(frames, native / every, parsed))
    return StreamSet(name, streams)


READERS: dict[str, Callable[[_Reader, str], Any]] = {
    "classification": _classification, "retrieval": _retrieval, "captioning": _captioning, "vqa": _choice,
    "world": _choice, "hardneg": _hardneg, "streaming": _streaming,
}


def disk_set(task: str, name: str, folder: Path, frames: int, size: int):
    """The eval set of one task from a dataset folder."""
    spec = read_spec(folder)
    if task not in spec["tasks"]:
        raise DatasetError(f"{folder / DATASET_FILE}: has no '{task}' section (it serves: "
                           f"{', '.join(spec['tasks']) or 'nothing'})")
    section = spec["tasks"][task]
    if isinstance(section, dict) and "format" in section:  # a Hugging Face table: parquet or save_to_disk
        # lazy: the table reader, and the `datasets` library (pyarrow) it loads, serve sets in that format only
        from bench.eval.sets.hf import table_set

        return table_set(task, name, folder, spec, frames, size)
    return READERS[task](_Reader(folder, spec, task, frames, size), name)


def limit(evalset, n: int):
    """The first n items of a set read from disk (0: all), with only the clips they need."""
    if n == 0:
        return evalset

    def head(visuals: FileVisuals, m: int) -> FileVisuals:
        return visuals.head(m)

    if isinstance(evalset, ClassificationSet):
        return ClassificationSet(evalset.name, head(evalset.visuals, n), evalset.labels[:n], evalset.class_names,
                                 evalset.templates)
    if isinstance(evalset, CaptioningSet):
        return CaptioningSet(evalset.name, head(evalset.visuals, n), evalset.references[:n])
    if isinstance(evalset, RetrievalSet):
        keep = [j for j, v in enumerate(evalset.text_video) if v < n]
        return RetrievalSet(evalset.name, head(evalset.visuals, n), [evalset.texts[j] for j in keep],
                            [evalset.text_video[j] for j in keep])
    if isinstance(evalset, ChoiceSet):
        used = max(evalset.visual[:n], default=-1) + 1  # visuals are numbered in order of first use
        return ChoiceSet(evalset.name, head(evalset.visuals, used), evalset.visual[:n], evalset.questions[:n],
                         evalset.candidates[:n], evalset.answers[:n], evalset.kinds[:n])
    if isinstance(evalset, HardNegativeSet):
        return HardNegativeSet(evalset.name, evalset.anchors[:n], evalset.positives[:n], evalset.negatives[:n],
                               evalset.kinds[:n])
    return evalset  # streams: every one
