"""The report's rows measured here (analysis/reference_rows.py, analysis/measured_tables.py): a tiny random CLIP
folder (tests/test_reference_models.py) is evaluated the real way, `python -m bench.eval hf:FOLDER` (its main, in
this process), once on the shapes world and once on the world exported as dataset folders that a registry names
`kinetics400` and `gqa` (and one given by a path whose folder is called `msrvtt`); the report built from that store
must put each measured number beside the literature only where its set is the benchmark by registry name, with
the label of what it was measured on and the value of evals.jsonl, keep the literature's sources, keep the shapes
world's numbers out of every benchmark's row, and show the tasks a dual encoder cannot do as n/a with the reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.reference_rows import PAPER_SETS, SOTA_SETS, MeasuredRun, sota_rows
from analysis.report import build
from analysis.tables import REFERENCE
from bench.data.datasets import DEFAULT_REGISTRY, REGISTRY_ENV, ROOT_ENV
from bench.results import read_json, read_jsonl
from bench.tools.evaluate import main as evaluate
from bench.tools.export_world import main as export_world
from tests.test_reference_models import FRAMES, SIZE
from tests.test_reference_models import build as build_model

ITEMS = 24


def _run(out: Path) -> Path:
    """The run folder the last evaluation wrote (bench.eval names it by a hash of the spec and settings)."""
    return max(out.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A results store with two reference runs of one tiny CLIP, and the report built from it."""
    root = tmp_path_factory.mktemp("measured")
    folder = build_model("clip", root / "clip")
    runs = root / "results" / "runs"
    assert evaluate([f"hf:{folder}", "--tasks", "classification", "retrieval", "captioning", "--sets",
                     "classification=shapes", "retrieval=shapes", "--size", str(ITEMS), "--output-dir", str(runs)]) == 0
    on_shapes = _run(runs)
    world = root / "world"
    assert export_world(["--out", str(world), "--size", str(ITEMS), "--no-train", "data.shapes.val_size=64"]) == 0
    (world / "msrvtt").symlink_to(world / "shapes_val")  # a folder named like a benchmark, given by its path
    registry = world / "bench.yaml"
    registry.write_text(yaml.safe_dump({"root": str(world), "datasets": {"kinetics400": "shapes_val", "gqa": "shapes_val"}}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(REGISTRY_ENV, str(registry))
        env.delenv(ROOT_ENV, raising=False)
        assert evaluate([f"hf:{folder}", "--tasks", "classification", "vqa", "retrieval", "--sets",
                         "classification=kinetics400", "vqa=gqa", f"retrieval={world / 'msrvtt'}", "--size", str(ITEMS),
                         "--output-dir", str(runs)]) == 0
    on_files = _run(runs)
    text = build(root / "results", root / "report").read_text()
    return {"text": text, "shapes": on_shapes, "files": on_files, "world": world}


def _value(run: Path, task: str, metric: str, dataset: str) -> float:
    (rec,) = [r for r in read_jsonl(run / "evals.jsonl")
              if (r["task"], r["metric"], r.get("dataset")) == (task, metric, dataset)]
    return rec["value"]


def _section(text: str, head: str) -> str:
    return text.split(head + "\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def _sota_lines(text: str) -> list[str]:
    section = _section(text, "## Literature, and the suite's runs beside it")
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| model |")]


def test_a_number_measured_on_a_benchmark_sits_under_its_literature_rows_with_what_it_was_measured_on(store):
    run = store["files"]
    value = _value(run, "vqa", "accuracy", "gqa")
    record = read_json(run / "run.json")
    assert (record["adapter"]["frames"], record["adapter"]["image_size"]) == (FRAMES, SIZE)
    lines = _sota_lines(store["text"])
    expected = (f"| clip (measured here) | GQA | accuracy | {value:.1f} | measured here on `gqa` (registry name), "
                f"{FRAMES} frames × {SIZE} px, {ITEMS} items; run {run.name} |")
    assert expected in lines
    literature = [i for i, line in enumerate(lines) if line.split(" | ")[1] == "GQA" and "arXiv" in line]
    assert lines.index(expected) == literature[-1] + 1  # right under the last of GQA's literature rows
    # the per-dataset table: the registry's kinetics400 beside the paper's Kinetics-400 number
    top1 = _value(run, "classification", "top1", "kinetics400")
    per_dataset = _section(store["text"], "## Per dataset, beside the paper")
    assert (f"| - | clip (measured here) | classification | measured here on `kinetics400` (registry name), {FRAMES} "
            f"frames × {SIZE} px, {ITEMS} items; run {run.name} | top1 | {top1:.1f} | 64.8 | VL-JEPA BASE; arXiv "
            "2512.10942 v2 main results (per dataset) |") in per_dataset


def test_literature_rows_still_cite_their_sources(store):
    lines = _sota_lines(store["text"])
    for r in pd.read_csv(REFERENCE / "sota.csv").itertuples():
        assert f"| {r.model} | {r.benchmark} | {r.metric} | {r.value:.1f} | {r.source} |" in lines
    measured = [line for line in lines if "(measured here)" in line]
    assert measured and all("arXiv" not in line and "| measured here on " in line for line in measured)


def test_numbers_on_the_shapes_world_or_a_folder_path_fill_no_benchmark(store):
    text, shapes, files = store["text"], store["shapes"], store["files"]
    assert not [line for line in _sota_lines(text) if shapes.name in line]
    assert shapes.name not in _section(text, "## Per dataset, beside the paper")
    # the folder called msrvtt, given by its path: its own row, no paper number, under no "retrieval (8 sets)"
    r1 = _value(files, "retrieval", "t2v_R@1", str(store["world"] / "msrvtt"))
    per_dataset = _section(text, "## Per dataset, beside the paper")
    (row,) = [line for line in per_dataset.splitlines() if "| retrieval |" in line and files.name in line]
    assert f"folder {store['world'] / 'msrvtt'} (a path, not a registry name)" in row
    assert row.endswith(f"| t2v_R@1 | {r1:.1f} | - | - |")
    assert not [line for line in _sota_lines(text) if "| retrieval (8 sets) |" in line and "measured here" in line]
    # the shapes world's numbers: their own table, labelled as the world
    table = _section(text, "### Reference models on the shapes world")
    assert "*On the shapes world, val split (procedural clips, not a benchmark):*" in table
    top1, r1 = (_value(shapes, "classification", "top1", "shapes"), _value(shapes, "retrieval", "t2v_R@1", "shapes"))
    (row,) = [line for line in table.splitlines() if shapes.name in line]
    assert row.startswith(f"| clip (measured here) | {FRAMES} frames × {SIZE} px | {ITEMS} | {top1:.1f} (")
    assert f"| {r1:.1f} (" in row and files.name not in table


def test_tasks_a_dual_encoder_cannot_do_read_na_with_the_reason_not_failed(store):
    table = _section(store["text"], "### Reference models measured here")
    (row,) = [line for line in table.splitlines() if store["shapes"].name in line]
    assert "| captioning n/a¹ |" in row and "failed" not in row
    (reason,) = [r["reason"] for r in read_jsonl(store["shapes"] / "evals.jsonl") if r["metric"] == "not_applicable"]
    assert f"¹ captioning: {reason}" in table


def _mean_run(sets: list[str]) -> MeasuredRun:
    rec = {"task": "classification", "metric": "top1", "value": 12.34, "dataset": "mean", "sets": sets, "n": 80}
    return MeasuredRun("r1", "hf:org/clip-vit-b32", "done", "abc", {"frames": 16, "image_size": 224}, (rec,))


def test_the_papers_eight_set_average_is_filled_only_by_the_mean_over_exactly_its_sets():
    ref = pd.read_csv(REFERENCE / "per_dataset.csv")
    paper = list(ref[(ref["task"] == "classification") & (ref["dataset"] != "mean")]["dataset"])
    (row,) = sota_rows([_mean_run(paper)])["classification (8 sets)"]
    assert row["model"] == "clip-vit-b32 (measured here)" and row["value"] == "12.3" and row["metric"] == "top1"
    assert row["source"].startswith(f"measured here on mean of 8 sets (the paper's sets): {', '.join(paper)}, 16 frames")
    assert sota_rows([_mean_run(paper[:7])]) == {}
    assert sota_rows([_mean_run(paper[:7] + ["shapes"])]) == {}


def test_every_literature_benchmark_names_the_registry_set_it_is():
    benchmarks = set(pd.read_csv(REFERENCE / "sota.csv")["benchmark"])
    assert benchmarks == set(SOTA_SETS)
    registry = yaml.safe_load(DEFAULT_REGISTRY.read_text())["datasets"]
    per_dataset = pd.read_csv(REFERENCE / "per_dataset.csv")
    for task, metric, name in SOTA_SETS.values():
        rows = per_dataset[(per_dataset["task"] == task) & (per_dataset["metric"] == metric)]
        assert len(rows), (task, metric)
        if name != PAPER_SETS:
            assert name in registry and name in set(rows["dataset"]), name
