"""Eval media: segments of long videos (start/end) read as their own clips, and broken files in eval sets
skipped and counted (eval.on_error: skip), or stopping their task in one line (fail), or reported by
validation before any model is built."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

import bench.eval.sets.media as media
from bench.config import load_run_config
from bench.data.video import Segment, VideoError, read_clip, uniform_indices, write_image, write_video
from bench.eval.sets.disk import DatasetError, disk_set, limit
from bench.eval.sets.kinds import without
from bench.eval.sets.media import FileVisuals, probe_picks
from bench.eval.sets.resolve import EvalSetError, validate
from tests.conftest import tiny_overrides

FPS = 10


def _long_video(path: Path, n: int = 60, seed: int = 0) -> np.ndarray:
    """n distinct random frames (16x16), lossless, a key frame every 8: seeks land between key frames."""
    frames = np.random.default_rng(seed).integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    write_video(path, frames, fps=FPS, lossless=True, gop=8)
    return frames


def _dataset(folder: Path, tasks: dict, files: dict[str, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    for name, rows in files.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_segment_decodes_exactly_its_frames(tmp_path):
    frames = _long_video(tmp_path / "long.mp4")
    got = read_clip(tmp_path / "long.mp4", 5, None, 1.0, 3.0)  # [1 s, 3 s): frames 10..29
    assert (got == frames[10 + uniform_indices(20, 5)]).all()
    assert (read_clip(tmp_path / "long.mp4", 3, None, 5.0, 5.3) == frames[[50, 51, 52]]).all()
    assert (read_clip(tmp_path / "long.mp4", 4, None, 0.0, 6.0) == read_clip(tmp_path / "long.mp4", 4)).all()
    assert (read_clip(tmp_path / "long.mp4", 2, None, 2.34, 2.35) == frames[[23, 23]]).all()  # under a frame
    with pytest.raises(VideoError, match="starts after the video's end"):
        read_clip(tmp_path / "long.mp4", 2, None, 7.0, 8.0)


def test_segments_of_one_video_are_clips_of_their_own_and_merge_only_when_equal(tmp_path):
    frames = _long_video(tmp_path / "d" / "long.mp4")
    write_image(tmp_path / "d" / "still.png", frames[0])
    d = _dataset(tmp_path / "d", {"retrieval": {"annotations": "r.jsonl"}, "captioning": {"annotations": "r.jsonl"},
                                  "classification": {"annotations": "c.jsonl", "classnames": "names.txt"}}, {
        "r.jsonl": [{"video": "long.mp4", "start": 0, "end": 2.0, "caption": "a"},
                    {"video": "long.mp4", "start": 2.0, "end": 4.5, "caption": "b"},
                    {"video": "long.mp4", "start": 0, "end": 2.0, "caption": "c"},  # the first segment again
                    {"video": "long.mp4", "caption": "d"}],  # the whole video
        "c.jsonl": [{"video": "long.mp4", "start": 3.0, "end": 4.0, "label": 0}, {"video": "long.mp4", "label": 0}],
    })
    (d / "names.txt").write_text("thing\n")
    r = disk_set("retrieval", "r", d, 4, 16)
    assert list(r.text_video) == [0, 1, 0, 2] and len(r.visuals) == 3
    assert (r.visuals.clip(1) == frames[20 + uniform_indices(25, 4)]).all()
    assert (r.visuals.clip(2) == frames[uniform_indices(60, 4)]).all()
    assert "[2-4.5 s]" in r.visuals.name(1)
    c = disk_set("classification", "c", d, 4, 16)
    assert (c.visuals.clip(0) == frames[30 + uniform_indices(10, 4)]).all()
    long = [(d / "long.mp4",)]
    keys = {FileVisuals(long, 4, 16, [seg]).identity() for seg in (None, Segment(3.0, 4.0), Segment(3.0, 4.5))}
    assert len(keys) == 3 and FileVisuals(long, 4, 16).identity() in keys  # no segment: the key sets had before
    assert limit(c, 1).visuals.segment(0) == c.visuals.segment(0)

    def refused(line: dict, match: str) -> None:
        (d / "c.jsonl").write_text(json.dumps({"video": "long.mp4", "label": 0}) + "\n" + json.dumps(line) + "\n")
        with pytest.raises(DatasetError, match=match):
            disk_set("classification", "c", d, 4, 16)

    refused({"video": "long.mp4", "start": 5.0, "end": 6.15, "label": 0},
            r"c.jsonl:2: 'end' 6.15 is past the end of .*long.mp4 \(6.000 s: 60 frames at 10 fps\)")
    refused({"video": "long.mp4", "start": 3.0, "end": 3.0, "label": 0}, r"c.jsonl:2: 'start' 3 is not before 'end' 3")
    refused({"video": "long.mp4", "start": -1, "end": 3.0, "label": 0}, r"c.jsonl:2: 'start' -1 is negative")
    refused({"video": "long.mp4", "start": 1.0, "label": 0}, r"c.jsonl:2: 'start' 1.0 without 'end'")
    refused({"video": "long.mp4", "start": "1", "end": 2, "label": 0}, r"c.jsonl:2: 'start' '1' must be a number")
    refused({"image": "still.png", "start": 0, "end": 1, "label": 0}, r"c.jsonl:2: 'start' marks a segment of a video")
    (d / "c.jsonl").write_text(json.dumps({"video": "long.mp4", "start": 5.0, "end": 6.05, "label": 0}) + "\n")
    assert disk_set("classification", "c", d, 4, 16).visuals.segment(0).end == 6.05  # within one frame of the end


def test_loading_probes_only_the_videos_that_have_segments(tmp_path, monkeypatch):
    for i in range(3):
        _long_video(tmp_path / "d" / f"v{i}.mp4", n=20, seed=i)
    d = _dataset(tmp_path / "d", {"captioning": {"annotations": "c.jsonl"}}, {"c.jsonl": [
        {"video": "v0.mp4", "caption": "a"}, {"video": "v1.mp4", "caption": "b"},
        {"video": "v2.mp4", "start": 0, "end": 1, "caption": "c"}, {"video": "v2.mp4", "start": 1, "end": 2, "caption": "d"}]})
    probed = []
    real = media.probe
    monkeypatch.setattr(media, "probe", lambda p: probed.append(Path(p).name) or real(p))
    assert len(disk_set("captioning", "c", d, 4, 16).references) == 4
    assert probed == ["v2.mp4"]  # once, for its two segments; the whole videos are not opened


def test_leaving_clips_out_renumbers_the_items_that_remain(tmp_path):
    for i in range(4):
        _long_video(tmp_path / "d" / f"v{i}.mp4", n=8, seed=i)
    d = _dataset(tmp_path / "d", {"retrieval": {"annotations": "r.jsonl"}, "vqa": {"annotations": "q.jsonl"}}, {
        "r.jsonl": [{"video": f"v{i}.mp4", "captions": [f"t{i}a", f"t{i}b"]} for i in range(4)],
        "q.jsonl": [{"video": f"v{i % 4}.mp4", "question": f"q{i}", "candidates": ["yes", "no"], "answer": i % 2}
                    for i in range(6)]})
    r, texts = without(disk_set("retrieval", "r", d, 4, 16), {1})
    assert list(r.texts) == ["t0a", "t0b", "t2a", "t2b", "t3a", "t3b"] and list(r.text_video) == [0, 0, 1, 1, 2, 2]
    assert texts == [0, 1, 4, 5, 6, 7] and r.n_videos == 3 and len(r.visuals) == 3
    full = disk_set("retrieval", "r", d, 4, 16)
    assert (r.visuals.clip(1) == full.visuals.clip(2)).all()
    q, items = without(disk_set("vqa", "q", d, 4, 16), {0, 3})
    assert items == [1, 2, 5] and list(q.visual) == [0, 1, 0] and list(q.questions) == ["q1", "q2", "q5"]


# ---------------------------------------------------------------- broken files in eval sets

N = 8


def _broken_dataset(folder: Path, bad: int) -> Path:
    """A classification and a retrieval set of N 16x16 videos, clip `bad` random bytes named .mp4."""
    for i in range(N):
        if i == bad:
            (folder / "v").mkdir(parents=True, exist_ok=True)
            (folder / "v" / f"{i}.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
        else:
            write_video(folder / "v" / f"{i}.mp4", np.full((4, 16, 16, 3), 30 * i, np.uint8), fps=4)
    d = _dataset(folder, {"classification": {"annotations": "c.jsonl", "classnames": "names.txt"},
                          "retrieval": {"annotations": "r.jsonl"}}, {
        "c.jsonl": [{"video": f"v/{i}.mp4", "label": i % 2} for i in range(N)],
        "r.jsonl": [{"video": f"v/{i}.mp4", "captions": [f"a red circle {i}", f"a blue square {i}"]} for i in range(N)]})
    (d / "names.txt").write_text("red circle\nblue square\n")
    return d


def test_the_feature_cache_keeps_which_clips_could_not_be_decoded(tmp_path, monkeypatch):
    import bench.cache as cache
    from bench.data.loader import collate
    from bench.run.build import build_model

    d = _broken_dataset(tmp_path / "d", bad=0)
    (d / "v" / "1.mp4").write_bytes(b"truncated")  # the whole first batch broken: the shape comes from a later clip
    monkeypatch.setattr(cache, "BATCH", 2)
    visuals = disk_set("classification", "c", d, 8, 64).visuals
    x = build_model(load_run_config("base/tiny.yaml", tiny_overrides())).eval().x_encoder
    feats = cache.x_features(x, visuals, tmp_path / "cache")
    assert sorted(cache.unreadable_clips(x, visuals, tmp_path / "cache")) == [0, 1] and len(feats) == N
    assert not feats[:2].any() and all(feats[i].any() for i in range(2, N))
    direct = x(collate([{"video": visuals.clip(i)} for i in (2, 5)])["video"]).detach().numpy()
    assert np.allclose(feats[[2, 5]], direct, atol=1e-5)
    lookup = cache.FeatureLookup(x, tmp_path / "cache")
    assert lookup.unreadable(visuals)[1].startswith(f"{d / 'v' / '1.mp4'}: cannot read as a video")  # read back
    assert cache.unreadable_clips(x, limit(disk_set("classification", "c", d, 8, 64), 1).visuals, tmp_path) == {}


def _evaluate(rundir: Path, folder: Path, monkeypatch, name: str, **settings) -> tuple[list[dict], Path]:
    """bench.tools.evaluate on the folder's classification and retrieval sets and the world's vqa, with
    eval / data settings changed; (its records, its predictions folder)."""
    import bench.tools.evaluate as tool

    real = tool.load_model

    def load(path):
        cfg, *rest = real(path)
        data = replace(cfg.data, cache=settings.pop("cache")) if "cache" in settings else cfg.data
        return (replace(cfg, data=data, eval=replace(cfg.eval, **settings)), *rest)

    monkeypatch.setattr(tool, "load_model", load)
    assert tool.main([str(rundir), "--size", "0", "--name", name, "--tasks", "classification", "retrieval", "vqa",
                      "--sets", f"classification={folder}", f"retrieval={folder}"]) == 0
    out = rundir / "ondemand"
    records = [json.loads(line) for f in out.glob(f"*.{name}.jsonl") for line in f.read_text().splitlines()]
    return records, next(out.glob(f"*.{name}.predictions"))


def _rows(kept: Path, task: str) -> list[dict]:
    """A task's kept predictions (not its outcomes)."""
    (path,) = [p for p in kept.glob(f"{task}__*.jsonl") if not p.name.endswith(".outcomes.jsonl")]
    return [json.loads(line) for line in path.read_text().splitlines()]


def _not_probed() -> int:
    return min(set(range(N)) - set(probe_picks(N)))


def test_a_broken_file_is_skipped_and_counted_cached_or_not(tiny_rundir, tmp_path, monkeypatch, capsys):
    bad = _not_probed()  # validation passes (skip would pass it anyway); evaluation meets it
    d = _broken_dataset(tmp_path / "d", bad)
    for name, cache in (("cached", True), ("pixels", False)):
        recs, kept = _evaluate(tiny_rundir, d, monkeypatch, name, cache=cache)
        by_task = {t: [r for r in recs if r["task"] == t] for t in ("classification", "retrieval", "vqa")}
        assert all(by_task.values()) and not any(r["metric"] == "failed" for r in recs)
        for r in by_task["classification"] + by_task["retrieval"]:
            assert r["skipped"] == 1 and r["value"] is not None, r
        assert {r["n"] for r in by_task["classification"]} == {N - 1}
        assert {r["n"] for r in by_task["retrieval"]} == {2 * (N - 1), N - 1}  # t2v: texts, v2t: videos
        assert all("skipped" not in r for r in by_task["vqa"])  # the world's set: nothing left out
        if name == "cached":
            first = {(r["task"], r["metric"]): r["value"] for r in recs}
        else:  # pixels: the task meets the file, then runs again without it: the same metrics as from the cache
            assert {(r["task"], r["metric"]): r["value"] for r in recs} == pytest.approx(first, abs=1e-3)
        rows = _rows(kept, "classification")
        assert [r["clip"] for r in rows if "skipped" in r] == [bad] and str(d / "v" / f"{bad}.mp4") in rows[-1]["skipped"]
        assert sorted(r["item"] for r in rows if "item" in r) == [i for i in range(N) if i != bad]  # the set's numbering
        retrieval = _rows(kept, "retrieval")
        assert [r["clip"] for r in retrieval] == [bad]
        err = capsys.readouterr().err
        assert f"skipped clip {bad}: {d / 'v' / f'{bad}.mp4'}: cannot" in err and "Traceback" not in err


def test_with_on_error_fail_the_task_stops_in_one_line_and_the_others_go_on(tiny_rundir, tmp_path, monkeypatch):
    d = _broken_dataset(tmp_path / "d", _not_probed())
    for name, cache in (("fail_cached", True), ("fail_pixels", False)):
        recs, _ = _evaluate(tiny_rundir, d, monkeypatch, name, on_error="fail", cache=cache)
        failed = {r["task"]: r["error"] for r in recs if r["metric"] == "failed"}
        assert set(failed) == {"classification", "retrieval"}
        for task, error in failed.items():
            assert "\n" not in error and f"task {task}, eval set '{d}': {d / 'v' / f'{_not_probed()}.mp4'}" in error
        assert any(r["task"] == "vqa" and r["metric"] == "accuracy" for r in recs)


def test_validation_decodes_a_sample_and_reports_the_broken_file(tmp_path, monkeypatch):
    d = _broken_dataset(tmp_path / "d", bad=0)  # the first clip: always probed
    sets = f"eval.sets={{classification: [{d}], retrieval: [{d}]}}"
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(sets, "eval.tasks=[classification, retrieval]", "eval.size=0"))
    notes = validate(cfg, "my.yaml", log=lambda m: None)
    assert len(notes) == 2 and all(f"{d / 'v' / '0.mp4'}: cannot read as a video" in n for n in notes)
    assert notes[0].startswith(f"my.yaml: key 'eval.sets.classification', set '{d}': 1 of 6 clips probed cannot be decoded")
    with pytest.raises(EvalSetError, match=r"key 'eval.sets.retrieval', .*1 of 6 clips probed cannot be decoded: "
                                           r".*v/0.mp4: cannot read as a video.*\(eval.on_error: fail\)"):
        validate(replace(cfg, eval=replace(cfg.eval, on_error="fail")))
    ok = _broken_dataset(tmp_path / "ok", bad=-1)
    assert validate(replace(cfg, eval=replace(cfg.eval, sets={"classification": [str(ok)], "retrieval": [str(ok)]}))) == []
    for i in range(N):  # nothing decodes: an error even with skip
        (d / "v" / f"{i}.mp4").write_bytes(b"not a video")
    with pytest.raises(EvalSetError, match=r"6 of 6 clips probed cannot be decoded.*\(none decodes\)"):
        validate(replace(cfg, eval=replace(cfg.eval, sets={"classification": [f"{d}/"]})))
