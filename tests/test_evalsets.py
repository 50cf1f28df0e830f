"""Eval sets from disk: the seek reader, the formats, the registry and validation, and the round trip
world -> files -> the same metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.config import load_run_config
from bench.data.video import read_clip, read_frames, resize_crop, uniform_indices, write_image, write_video
from bench.eval.sets.disk import DatasetError, disk_set, limit
from bench.eval.sets.kinds import ChoiceSet, ClassificationSet, RetrievalSet
from bench.eval.sets.resolve import EvalSetError, load_registry, load_sets, validate
from tests.conftest import tiny_overrides

TASKS = ["captioning", "classification", "hardneg", "retrieval", "streaming", "vqa", "world"]


def test_seek_reader_gives_exactly_the_frames_asked_for(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (120, 48, 64, 3), dtype=np.uint8)
    write_video(tmp_path / "a.mp4", frames, fps=30, lossless=True, gop=10)  # seeks land between key frames
    idx = [0, 119, 57, 58, 3, 3, 90]
    got = read_frames(tmp_path / "a.mp4", idx)
    assert all((got[j] == frames[i]).all() for j, i in enumerate(idx))
    clip = read_clip(tmp_path / "a.mp4", 16)
    assert (clip == frames[uniform_indices(120, 16)]).all()
    assert read_clip(tmp_path / "a.mp4", 4, size=32).shape == (4, 32, 32, 3)  # short side 48 -> 32, centre crop
    write_image(tmp_path / "b.png", frames[5])
    still = read_clip(tmp_path / "b.png", 6)
    assert still.shape == (6, 48, 64, 3) and (still == frames[5]).all()  # an image fills the clip
    same = frames[:2, :48, :48]
    assert resize_crop(same, 48) is same  # already the size: untouched


def _write_dataset(folder: Path, tasks: dict, files: dict[str, str | list]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    for name, content in files.items():
        text = content if isinstance(content, str) else "".join(json.dumps(r) + "\n" for r in content)
        (folder / name).write_text(text)
    return folder


def test_disk_formats_read_as_the_field_ships_them(tmp_path):
    clip = np.zeros((4, 16, 16, 3), np.uint8)
    for i in range(3):
        write_video(tmp_path / "d" / "v" / f"{i}.mp4", clip + 40 * i, fps=4)
    write_image(tmp_path / "d" / "img.png", clip[0])
    d = _write_dataset(tmp_path / "d", {
        "classification": {"annotations": "list.txt", "classnames": "names.txt", "templates": "t.txt"},
        "retrieval": {"annotations": "caps.jsonl"},
        "vqa": {"annotations": "q.jsonl"},
    }, {
        "names.txt": "abseiling\nair drumming\n", "t.txt": "a video of {}.\n{}\n",
        "list.txt": "v/0.mp4 1\nv/1.mp4 0\nv/2.mp4 1\n",  # VideoMAE-style "path label" lines
        "caps.jsonl": [{"video": "v/0.mp4", "caption": "a"}, {"video": "v/1.mp4", "captions": ["b", "c"]},
                       {"video": "v/0.mp4", "caption": "d"}],  # one caption per line, or several
        "q.jsonl": [{"image": "img.png", "question": "is it dark?", "candidates": ["yes", "no"], "answer": "yes"},
                    {"image": "img.png", "question": "is it red?", "candidates": ["yes", "no"], "answer": 1,
                     "kind": "adversarial"}],
    })
    c = disk_set("classification", "k", d, frames=4, size=16)
    assert isinstance(c, ClassificationSet) and list(c.labels) == [1, 0, 1] and c.templates == ["a video of {}.", "{}"]
    assert (c.visuals.clip(2) == clip + 80).all()
    r = disk_set("retrieval", "r", d, 4, 16)
    assert isinstance(r, RetrievalSet) and list(r.texts) == ["a", "b", "c", "d"] and list(r.text_video) == [0, 1, 1, 0]
    assert r.n_videos == 2 and len(r.visuals) == 2
    q = disk_set("vqa", "q", d, 4, 16)
    assert isinstance(q, ChoiceSet) and list(q.visual) == [0, 0] and len(q.visuals) == 1  # one image, two questions
    assert list(q.answers) == [0, 1] and list(q.kinds) == ["vqa", "adversarial"]
    assert len(limit(c, 2).visuals) == 2 and list(limit(r, 1).texts) == ["a", "d"]
    assert c.visuals.identity() != limit(c, 2).visuals.identity()  # a cut set is cached as its own

    (d / "list.txt").write_text("v/0.mp4 1\nv/9.mp4 0\n")
    with pytest.raises(DatasetError, match=r"list.txt:2: video file .*v/9.mp4 does not exist"):
        disk_set("classification", "k", d, 4, 16)
    (d / "list.txt").write_text("v/0.mp4 7\n")
    with pytest.raises(DatasetError, match=r"list.txt:1: 'label' 7 is neither a class name nor an index 0..1"):
        disk_set("classification", "k", d, 4, 16)
    with pytest.raises(DatasetError, match="has no 'world' section"):
        disk_set("world", "w", d, 4, 16)


def test_registry_names_and_validation_errors(tmp_path, monkeypatch):
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump({"root": "data", "datasets": {"k400": "k400", "abs": "/x/y"}}))
    monkeypatch.setenv("VLJEPA_DATASETS", str(tmp_path / "reg.yaml"))
    assert load_registry() == {"k400": tmp_path / "data" / "k400", "abs": Path("/x/y")}
    monkeypatch.setenv("VLJEPA_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert load_registry()["k400"] == tmp_path / "elsewhere" / "k400"

    cfg = load_run_config("base/tiny.yaml", tiny_overrides("eval.sets={classification: [k400, shapes], vqa: [nope]}",
                                                           "eval.tasks=[classification, vqa, retrieval]"))
    with pytest.raises(EvalSetError) as e:
        validate(cfg, "my.yaml")
    msg = str(e.value)
    assert f"my.yaml: key 'eval.sets.classification', set 'k400': dataset folder {tmp_path / 'elsewhere' / 'k400'} " \
           "does not exist" in msg
    assert "key 'eval.sets.vqa', set 'nope': eval set 'nope' is not in the dataset registry" in msg
    assert "retrieval" not in msg  # a task left out reads the shapes world

    manifest = load_run_config("base/tiny.yaml", tiny_overrides("data.source=manifest", "data.manifest.path=/m.jsonl"))
    with pytest.raises(EvalSetError, match=r"key 'eval.sets.classification': task 'classification' has no eval set"):
        validate(manifest)


def test_a_paper_sweep_with_a_missing_dataset_fails_at_dry_run(tmp_path, monkeypatch, capsys):
    from bench.sweep.plan import main

    monkeypatch.setenv("VLJEPA_DATA_ROOT", str(tmp_path / "nowhere"))
    assert main(["paper/jepa_vs_vlm.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "nothing was submitted" in err
    assert f"key 'eval.sets.captioning', set 'youcook2': dataset folder {tmp_path / 'nowhere' / 'youcook2'} does not exist" in err


def test_export_writes_every_format_and_a_registry(exported, monkeypatch):
    monkeypatch.setenv("VLJEPA_DATASETS", str(exported / "datasets.yaml"))
    sets = f"eval.sets={{{', '.join(f'{t}: [shapes_val]' for t in TASKS)}}}"
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(sets, f"eval.tasks={TASKS}", "eval.size=0", "eval.streams=2"))
    validate(cfg)
    disk = load_sets(cfg)
    world = load_sets(load_run_config("base/tiny.yaml", tiny_overrides(f"eval.tasks={TASKS}", "eval.size=0",
                                                                       "eval.streams=2")))
    for task in TASKS:
        a, b = world[task][0], disk[task][0]
        if hasattr(a, "visuals"):
            assert len(a.visuals) == len(b.visuals)
            assert (a.visuals.clip(3) == b.visuals.clip(3)).all()  # lossless mp4 / PNG: the same pixels
    assert list(world["vqa"][0].questions) == list(disk["vqa"][0].questions)
    assert [t for t, _ in world["streaming"][0].streams[1].annotations] == \
           [t for t, _ in disk["streaming"][0].streams[1].annotations]
    lines = (exported / "train" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 64 * 5 and json.loads(lines[0])["query"] == ""


@pytest.mark.slow
def test_a_run_evaluated_from_the_world_and_from_exported_files_gets_equal_metrics(exported, tmp_path, monkeypatch):
    from bench.run.train import run
    from bench.tools.evaluate import main as eval_main

    monkeypatch.setenv("VLJEPA_DATASETS", str(exported / "datasets.yaml"))
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=32", "train.budget.samples=64",
        "eval.grid=[]", "eval.tasks=[]", "eval.decoder_steps=20", "eval.decoder_clips=50", "eval.streams=2",
        "eval.stream_rates=[1.0, 0.5]", "eval.caption_metrics=[CIDEr]"))
    rec = run(cfg, log=lambda m: None)
    rundir = tmp_path / rec["run_id"]

    def evaluate(*sets: str) -> dict:
        assert eval_main([str(rundir), "--tasks", *TASKS, "--size", "0", *(["--sets", *sets] if sets else [])]) == 0
        out = next((rundir / "ondemand").glob("*.jsonl"))
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        return {(r["task"], r["metric"], r.get("rate_hz")): r["value"] for r in rows}

    from_world = evaluate()
    from_files = evaluate(*(f"{t}=shapes_val" for t in TASKS))
    assert {t for t, _, _ in from_world} == set(TASKS)
    assert from_world.keys() == from_files.keys()
    def same(a, b):
        return a == b or (a != a and b != b)  # NaN equals NaN here

    differ = {k: (v, from_files[k]) for k, v in from_world.items() if not same(v, from_files[k])}
    assert not differ  # equal, not close: the files are lossless and every clip is read as the world renders it


@pytest.mark.slow
def test_a_sweep_trains_on_exported_files_and_evaluates_every_task_from_them(exported, tmp_path, monkeypatch):
    from bench.results import read_jsonl
    from bench.sweep.plan import main

    monkeypatch.setenv("VLJEPA_DATASETS", str(exported / "datasets.yaml"))
    sweep = tmp_path / "files.yaml"
    pairs = (o.split("=", 1) for o in tiny_overrides() if not o.startswith("data."))
    model_settings = {k: yaml.safe_load(v) if v else "" for k, v in pairs}  # the tests' fast model
    sweep.write_text(yaml.safe_dump({
        "name": "files", "base": "base/tiny.yaml", "seeds": [0], "results": str(tmp_path / "results"),
        "set": {**model_settings,
                "data.source": "manifest", "data.manifest.path": str(exported / "train" / "manifest.jsonl"),
                "data.manifest.frames": 8, "data.manifest.size": 64,
                "train.global_batch": 32, "train.micro_batch": 32, "train.budget.samples": 64, "eval.grid": [64],
                "eval.tasks": TASKS, "eval.sets": {t: ["shapes_val"] for t in TASKS}, "eval.size": 16,
                "eval.decoder_steps": 10, "eval.decoder_clips": 50, "eval.stream_rates": [1.0, 0.5],
                "eval.caption_metrics": ["CIDEr"]}}))
    assert main([str(sweep), "--executor", "inline"]) == 0
    evals = [r for d in (tmp_path / "results" / "runs").iterdir() for r in read_jsonl(d / "evals.jsonl")]
    assert {r["task"] for r in evals} == set(TASKS)
    assert {r["dataset"] for r in evals} == {"shapes_val"}
    from analysis.report import build

    text = build(tmp_path / "results", tmp_path / "report").read_text()
    assert "## Per dataset, beside the paper" in text and "| files | vljepa | classification | shapes_val | top1 |" in text


def test_a_task_can_have_its_own_number_of_items_and_the_split_must_hold_them():
    cfg = load_run_config("base/tiny.yaml", tiny_overrides("eval.tasks=[classification, retrieval, vqa]",
                                                           "eval.size=60", "eval.task_size={retrieval: 20}"))
    sets = load_sets(cfg)
    assert len(sets["classification"][0].labels) == 60 and sets["retrieval"][0].n_videos == 20
    assert len(sets["vqa"][0].answers) == 60
    with pytest.raises(ValueError, match="task_size has an unknown task 'retreival'"):
        load_run_config("base/tiny.yaml", tiny_overrides("eval.task_size={retreival: 20}"))
    # more items than the world's split holds is an error naming the key to raise, not a smaller evaluation
    cfg = load_run_config("base/tiny.yaml", tiny_overrides("eval.tasks=[classification, retrieval]",
                                                           "eval.size=100", "eval.task_size={retrieval: 20}"))
    with pytest.raises(EvalSetError, match=r"eval.size=100 asks for more items than the shapes world's val split "
                                           r"holds \(data.shapes.val_size=64\); raise data.shapes.val_size to at least 100"):
        load_sets(cfg)
