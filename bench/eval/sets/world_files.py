"""The shapes world written to disk in the formats of real datasets (docs/data.md): real mp4 and PNG files.

Used by `python -m bench.tools.export_world` (the command) and by the paper_micro preset's built-in datasets
(bench/eval/sets/micro.py), which export into the cache on first use: one writer of the layout for both.
Videos are H.264 in RGB at qp 0 (lossless): a run evaluated from these files gets the same metrics as from the
world. Retrieval reads its clips as segments (`start`/`end`) of one long video, every clip one after the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from bench.data.shapes import ShapesWorld
from bench.data.video import write_image, write_video
from bench.eval.sets.shapes import shapes_set

# every task a dataset folder serves, each written below (the task registry, bench.eval.tasks, imports the sets)
EXPORTED_TASKS = ("classification", "retrieval", "captioning", "vqa", "world", "hardneg", "streaming")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def export_split(world: ShapesWorld, split: str, out: Path, size: int = 0, streams: int = 8) -> Path:
    """One dataset folder with every task's items of a split; returns the folder."""
    folder = out / f"shapes_{split}"
    folder.mkdir(parents=True, exist_ok=True)
    sets = {task: shapes_set(task, f"shapes_{split}", world, split, size, streams) for task in EXPORTED_TASKS}
    n = len(sets["captioning"].references)
    fps = world.cfg.fps
    for i in range(n):
        write_video(folder / "videos" / f"{i:06d}.mp4", world.clip(split, i), fps)
    video = [f"videos/{i:06d}.mp4" for i in range(n)]

    c = sets["classification"]
    (folder / "classnames.txt").write_text("".join(name + "\n" for name in c.class_names))
    (folder / "templates.txt").write_text("".join(t + "\n" for t in c.templates))
    _jsonl(folder / "classification.jsonl", [{"video": video[i], "label": int(c.labels[i])} for i in range(n)])

    r = sets["retrieval"]
    _jsonl(folder / "retrieval.jsonl", _segments(world, split, folder, "videos/all.mp4", r.texts, r.text_video))
    _jsonl(folder / "captions.jsonl", [{"video": video[i], "captions": list(refs)}
                                       for i, refs in enumerate(sets["captioning"].references)])

    q = sets["vqa"]
    _jsonl(folder / "vqa.jsonl", [{"video": video[q.visual[j]], "question": q.questions[j],
                                   "candidates": list(q.candidates[j]), "answer": q.answers[j], "kind": q.kinds[j]}
                                  for j in range(len(q))])
    w = sets["world"]
    rows = []
    for j in range(len(w)):
        clip = world.clip(split, w.visual[j])
        first, last = f"states/{w.visual[j]:06d}_initial.png", f"states/{w.visual[j]:06d}_final.png"
        write_image(folder / first, clip[0])
        write_image(folder / last, clip[-1])
        rows.append({"initial": first, "final": last, "candidates": list(w.candidates[j]), "answer": w.answers[j]})
    _jsonl(folder / "world.jsonl", rows)

    h = sets["hardneg"]
    _jsonl(folder / "hardneg.jsonl", [{"anchor": a, "positive": p, "negatives": list(ns), "kind": k}
                                      for a, p, ns, k in zip(h.anchors, h.positives, h.negatives, h.kinds)])

    rows = []
    for i, s in enumerate(sets["streaming"].streams):
        write_video(folder / "streams" / f"{i:04d}.mp4", np.stack(list(s.frames())), s.fps)
        rows.append({"video": f"streams/{i:04d}.mp4",
                     "annotations": [{"time": t, "references": list(refs)} for t, refs in s.annotations]})
    _jsonl(folder / "streams.jsonl", rows)

    spec = {"name": f"shapes_{split}", "source": "python -m bench.tools.export_world (the shapes world)",
            "tasks": {"classification": {"annotations": "classification.jsonl", "classnames": "classnames.txt",
                                         "templates": "templates.txt"},
                      "retrieval": {"annotations": "retrieval.jsonl"},
                      "captioning": {"annotations": "captions.jsonl"},
                      "vqa": {"annotations": "vqa.jsonl"},
                      "world": {"annotations": "world.jsonl"},
                      "hardneg": {"annotations": "hardneg.jsonl"},
                      "streaming": {"annotations": "streams.jsonl", "sample_fps": fps}}}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _segments(world: ShapesWorld, split: str, folder: Path, long: str, texts, text_video) -> list[dict]:
    """Retrieval's lines as segments of one long video holding its clips one after the other: clip v is
    [v T / fps, (v + 1) T / fps) seconds of it, exactly its T frames."""
    n = max(text_video, default=-1) + 1
    clips = np.concatenate([world.clip(split, v) for v in range(n)])
    write_video(folder / long, clips, world.cfg.fps)
    t = len(clips) // max(n, 1) / world.cfg.fps
    return [{"video": long, "start": v * t, "end": (v + 1) * t, "caption": text} for text, v in zip(texts, text_video)]


def export_train(world: ShapesWorld, out: Path, n: int = 0) -> Path:
    """A training manifest of the first n train clips (0: all): one line per clip and reference caption,
    query-free (the pretraining stage); returns the manifest's path."""
    folder = out / "train"
    n = world.size("train") if n == 0 else min(n, world.size("train"))
    rows = []
    for i in range(n):
        rel = f"videos/{i:06d}.mp4"
        write_video(folder / rel, world.clip("train", i), world.cfg.fps)
        rows += [{"video": rel, "query": "", "target": ref} for ref in world.references("train", i)]
    _jsonl(folder / "manifest.jsonl", rows)
    (folder / "dataset.yaml").write_text(yaml.safe_dump({"name": "shapes_train", "train": {"manifest": "manifest.jsonl"}}))
    return folder / "manifest.jsonl"
