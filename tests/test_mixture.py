"""Real training data: weighted mixtures read by position, tar shards, unreadable files, per-stage data,
the paper's recipe validated, and an exact resume of a two-stage run over a two-dataset mixture."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.data.config import ManifestConfig, MixtureEntry
from bench.data.manifest import BLOCK, ManifestError, ManifestSamples, block_layout
from bench.data.prepare import write_shards
from bench.results import RUN_RECORD, read_json


@pytest.fixture(scope="module")
def two_manifests(exported, tmp_path_factory):
    """The exported training manifest, and a second dataset: its first 40 clips with other targets."""
    first = exported / "train" / "manifest.jsonl"
    lines = [json.loads(x) for x in first.read_text().splitlines()]
    other = tmp_path_factory.mktemp("other")
    rows = [{**r, "video": str(first.parent / r["video"]), "target": "other " + r["target"]} for r in lines[:200]]
    (other / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return first, other / "manifest.jsonl"


def test_block_layout_is_exact_and_spread():
    owner, rank, counts = block_layout([25.0, 2.8, 1.8, 1.0], 1000)
    assert counts.sum() == 1000 and list(counts) == [817, 91, 59, 33]  # 816.99, 91.50, 58.82, 32.68: largest remainders
    for d, c in enumerate(counts):
        assert sorted(rank[owner == d]) == list(range(c))
        slots = np.flatnonzero(owner == d)
        assert np.diff(slots).max() <= 1000 / c + len(counts)  # evenly spread: no long runs without it


def test_a_mixture_is_a_pure_function_of_position_with_exact_shares(two_manifests):
    a, b = two_manifests
    cfg = ManifestConfig(frames=8, size=64)
    mix = (MixtureEntry(str(a), 3.0), MixtureEntry(str(b), 1.0))
    s1, s2 = ManifestSamples(cfg, 0, mix), ManifestSamples(cfg, 0, mix)
    where = [s1.locate(k) for k in range(2 * BLOCK)]
    assert Counter(d for d, _ in where) == {0: 3 * BLOCK // 2, 1: BLOCK // 2}  # exact at block boundaries
    n0 = len(s1.sources[0][2])
    first_epoch = [i for d, i in where if d == 0][:n0]
    assert sorted(first_epoch) == list(range(n0))  # each dataset is a permutation per epoch
    assert [s2.locate(k) for k in (19_999, 7, 12_345)] == [where[19_999], where[7], where[12_345]]  # any order
    assert s1[12_345]["target"] == s2[12_345]["target"] and (s1[3]["video"] == s2[3]["video"]).all()
    assert ManifestSamples(cfg, 1, mix).locate(5) != s1.locate(5) or ManifestSamples(cfg, 1, mix).locate(6) != s1.locate(6)
    summary = s1.mixture_summary()
    assert [m["share"] for m in summary] == [0.75, 0.25] and summary[0]["records"] == 320


def test_shards_give_the_samples_of_their_manifest(two_manifests, tmp_path):
    manifest, _ = two_manifests
    shards = write_shards(manifest, tmp_path / "shards", per_shard=64)
    assert len(shards) == 5
    from_files = ManifestSamples(ManifestConfig(path=str(manifest), frames=8, size=64), 0)
    from_shards = ManifestSamples(ManifestConfig(path=str(tmp_path / "shards"), frames=8, size=64), 0)
    for k in (0, 1, 63, 64, 300, 333):
        a, b = from_files[k], from_shards[k]
        assert (a["video"] == b["video"]).all() and (a["query"], a["target"]) == (b["query"], b["target"])


def test_prepared_shards_hold_the_clips_a_run_reads_and_only_at_that_shape(two_manifests, tmp_path):
    manifest, _ = two_manifests
    write_shards(manifest, tmp_path / "prepared", per_shard=100, frames=4, size=32, lossless=True)
    original = ManifestSamples(ManifestConfig(path=str(manifest), frames=4, size=32), 0)
    prepared = ManifestSamples(ManifestConfig(path=str(tmp_path / "prepared"), frames=4, size=32), 0)
    for k in (0, 5, 250):
        assert (original[k]["video"] == prepared[k]["video"]).all()
    with pytest.raises(ManifestError, match="prepared as clips of 4 frames at 32 px, but this stage reads 8 frames"):
        ManifestSamples(ManifestConfig(path=str(tmp_path / "prepared"), frames=8, size=32), 0)


def test_an_unreadable_file_is_replaced_and_counted_or_fails_naming_it(two_manifests, tmp_path):
    manifest, _ = two_manifests
    lines = manifest.read_text().splitlines()
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    rows = [json.loads(x) for x in lines[:20]]
    rows = [{**r, "video": str(manifest.parent / r["video"])} for r in rows]
    rows[3]["video"] = str(tmp_path / "broken.mp4")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    skip = ManifestSamples(ManifestConfig(path=str(tmp_path / "m.jsonl"), frames=8, size=64, on_error="skip"), 0)
    k = next(k for k in range(20) if skip.locate(k)[1] == 3)
    sample = skip[k]
    assert "broken.mp4" in sample["replaced"][0] and sample["target"] == rows[4]["target"]  # the next record
    fail = ManifestSamples(ManifestConfig(path=str(tmp_path / "m.jsonl"), frames=8, size=64), 0)
    with pytest.raises(ManifestError, match=r"m.jsonl:4: cannot decode .*broken.mp4"):
        fail[k]

    from bench.config import load_run_config
    from bench.run.train import run
    from tests.conftest import tiny_overrides

    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={tmp_path / 'runs'}", "data.source=manifest", f"data.manifest.path={tmp_path / 'm.jsonl'}",
        "data.manifest.frames=8", "data.manifest.size=64", "data.manifest.on_error=skip", "train.global_batch=20",
        "train.micro_batch=20", "train.budget.samples=40", "eval.tasks=[]", "eval.grid=[]"))
    record = run(cfg, log=lambda m: None)
    assert record["status"] == "done"
    errors = read_json(tmp_path / "runs" / record["run_id"] / RUN_RECORD)["data_errors"]
    assert errors["replaced_samples"] == 2 and "broken.mp4" in errors["examples"][0]  # two epochs of 20
    log = (tmp_path / "runs" / record["run_id"] / "log.txt").read_text()
    assert "replaced an unreadable sample" in log and "broken.mp4" in log


def test_the_paper_recipe_validates_when_its_datasets_are_there(exported, tmp_path, monkeypatch, capsys):
    from bench.data.datasets import DEFAULT_REGISTRY
    from bench.sweep.plan import main

    paper = yaml.safe_load(DEFAULT_REGISTRY.read_text())["datasets"]
    train_names = {"datacomp", "yfcc100m", "video_captions", "plm_vqa", "plm_captioning", "plm_classification",
                   "pretrain_sample"}
    registry = {n: str(exported / ("train" if n in train_names else "shapes_val")) for n in paper}
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump({"datasets": registry}))
    monkeypatch.setenv("VLJEPA_DATASETS", str(tmp_path / "reg.yaml"))
    assert main(["paper/recipe.yaml", "--dry-run"]) == 0, capsys.readouterr().err
    assert "dry run: nothing submitted" in capsys.readouterr().out


@pytest.mark.slow
def test_a_two_stage_mixture_run_killed_and_resumed_sees_exactly_the_same_samples(two_manifests, exported, tmp_path):
    from tests.tinyrun import cli, final_records

    a, b = two_manifests
    stages = (f"train.stages=[{{name: one, data_stage: pretrain, samples: 192, datasets: [{{name: '{a}', weight: 3}}, "
              f"{{name: '{b}', weight: 1}}]}}, {{name: two, data_stage: sft, samples: 192, frames: 8, "
              f"datasets: [{{name: '{b}', weight: 1}}, {{name: '{a}', weight: 1}}]}}]")
    common = ["data.source=manifest", f"data.manifest.path={a}", "data.manifest.frames=8", "data.manifest.size=64",
              "train.budget.samples=384", "train.checkpoint_every=64", "eval.grid=[192, 384]", stages,
              f"eval.sets={{classification: ['{exported / 'shapes_val'}'], vqa: ['{exported / 'shapes_val'}']}}"]
    env = {"VLJEPA_DATASETS": str(exported / "datasets.yaml")}
    ref = cli(tmp_path / "ref", *common, env=env)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    proc = cli(tmp_path / "killed", *common, env=env, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "killed").glob("*/checkpoints/LATEST.json")):
        time.sleep(0.2)
    latest = list((tmp_path / "killed").glob("*/checkpoints/LATEST.json"))
    assert latest, "no checkpoint appeared"
    while time.time() < deadline and "s1_" not in latest[0].read_text():
        time.sleep(0.1)  # kill it in the second stage, after the mixture changed
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = cli(tmp_path / "killed", *common, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    e_ref, l_ref, d_ref = final_records(tmp_path / "ref", common)
    e_res, l_res, d = final_records(tmp_path / "killed", common)
    assert e_ref and e_ref == e_res and l_ref == l_res  # every metric and every logged loss, bit for bit
    record = read_json(d / RUN_RECORD)
    assert record["status"] == "done" and record.get("resumes", 0) >= 1
    assert [m["share"] for m in record["parity"]["data_mixture"]["one"]] == [0.75, 0.25]
    assert os.path.basename(record["parity"]["data_mixture"]["two"][0]["name"]) == "manifest.jsonl"


def test_a_sweep_accepts_prepared_shards_read_at_their_shape(two_manifests, exported, tmp_path, monkeypatch):
    from bench.sweep.plan import main

    manifest, _ = two_manifests
    write_shards(manifest, tmp_path / "prepared", per_shard=200, frames=8, size=64)
    monkeypatch.setenv("VLJEPA_DATASETS", str(exported / "datasets.yaml"))
    sweep = tmp_path / "prepared.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "prepared", "base": "base/tiny.yaml", "seeds": [0], "results": str(tmp_path / "results"),
        "set": {"data.source": "manifest", "data.mixture": [{"name": str(tmp_path / "prepared"), "weight": 1.0}],
                "data.manifest.frames": 8, "data.manifest.size": 64,
                "eval.sets": {t: ["shapes_val"] for t in ("classification", "retrieval", "vqa")}}}))
    assert main([str(sweep), "--dry-run"]) == 0


def test_many_unreadable_files_are_all_counted_and_the_rest_said_once(two_manifests, tmp_path):
    from bench.config import load_run_config
    from bench.run.train import run
    from tests.conftest import tiny_overrides

    manifest, _ = two_manifests
    rows = [{**json.loads(x), "video": str(manifest.parent / json.loads(x)["video"])}
            for x in manifest.read_text().splitlines()[:20]]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    for r in rows[:15]:
        r["video"] = str(tmp_path / "broken.mp4")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={tmp_path / 'runs'}", "data.source=manifest", f"data.manifest.path={tmp_path / 'm.jsonl'}",
        "data.manifest.frames=8", "data.manifest.size=64", "data.manifest.on_error=skip", "train.global_batch=20",
        "train.micro_batch=20", "train.budget.samples=40", "eval.tasks=[]", "eval.grid=[]"))
    record = run(cfg, log=lambda m: None)
    errors = read_json(tmp_path / "runs" / record["run_id"] / RUN_RECORD)["data_errors"]
    assert errors["replaced_samples"] == 30 and len(errors["examples"]) == 20  # 15 broken files, two epochs
    log = (tmp_path / "runs" / record["run_id"] / "log.txt").read_text()
    assert log.count("replaced an unreadable sample") == 20 and log.count("more unreadable samples replaced") == 1


def _bad_manifest(two_manifests, tmp_path, problem: str) -> Path:
    manifest, _ = two_manifests
    rows = [{**r, "video": str(manifest.parent / r["video"])} for r in map(json.loads, manifest.read_text().splitlines())]
    path = tmp_path / "m.jsonl"
    if problem == "malformed line":
        path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    elif problem != "missing manifest":
        (tmp_path / "broken.mp4").write_bytes(b"not a video")
        rows[5]["video"] = str(tmp_path / ("absent.mp4" if problem == "missing video" else "broken.mp4"))
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    return path


def _manifest_run(path: Path, out: Path) -> list[str]:
    from tests.conftest import tiny_overrides

    return ["base/tiny.yaml", *tiny_overrides(f"output_dir={out}", "data.source=manifest", f"data.manifest.path={path}",
                                              "data.manifest.frames=8", "data.manifest.size=64", "eval.tasks=[]",
                                              "eval.grid=[]")]


@pytest.mark.parametrize("problem", ["missing manifest", "malformed line", "missing video", "corrupt video"])
def test_bad_training_data_fails_in_validation_and_leaves_nothing(two_manifests, tmp_path, problem):
    """A run refuses bad training data before a model is built or a folder written, naming the key, the
    dataset and what is wrong (a sweep, through the same check, submits nothing)."""
    from bench.config import load_run_config
    from bench.run.train import run

    out = tmp_path / "runs"
    base, *overrides = _manifest_run(_bad_manifest(two_manifests, tmp_path, problem), out)
    cfg = load_run_config(base, overrides)
    expected = {"missing manifest": "m.jsonl", "malformed line": "m.jsonl:2", "missing video": "absent.mp4",
                "corrupt video": "broken.mp4"}[problem]
    with pytest.raises(ManifestError, match=rf"data\.manifest\.path.*{re.escape(expected)}"):
        run(cfg, log=lambda m: None)
    assert not out.exists()


@pytest.mark.slow
def test_bad_training_data_is_one_line_from_the_command(two_manifests, tmp_path):
    out = tmp_path / "runs"
    argv = _manifest_run(_bad_manifest(two_manifests, tmp_path, "corrupt video"), out)
    done = subprocess.run([sys.executable, "-m", "bench.run.train", *argv], capture_output=True, text=True, timeout=300)
    said = [line for line in done.stderr.splitlines() if "WARNING" not in line and line.strip()]
    assert done.returncode == 2 and len(said) == 1 and said[0].startswith("error: ") and "broken.mp4" in said[0], said
    assert not out.exists()
