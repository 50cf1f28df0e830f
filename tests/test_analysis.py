"""The analysis package: literature numbers with sources, and a report built from committed real records
whose tables agree with the records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.records import interval, metrics
from analysis.report import build
from analysis.tables import REFERENCE, ablation_table, comparison_markdown, comparison_table, sota_markdown, to_markdown

EXAMPLE = Path(__file__).resolve().parent.parent / "results" / "example"


@pytest.mark.parametrize("name", ["ablations", "controlled_comparison", "sota", "selective_decoding", "per_dataset"])
def test_reference_numbers_parse_and_cite_a_source(name):
    import csv
    rows = list(csv.reader((REFERENCE / f"{name}.csv").open()))
    assert {len(r) for r in rows} == {len(rows[0])}, "a row has more fields than the header (an unquoted comma?)"
    ref = pd.read_csv(REFERENCE / f"{name}.csv")
    assert len(ref) > 0 and "source" in ref.columns
    assert ref["source"].notna().all() and ref["source"].str.contains("2512.10942").all()


def test_interval_matches_a_t_interval():
    mean, half, n = interval(pd.Series([1.0, 2.0, 3.0]))
    assert (mean, n) == (2.0, 3) and half == pytest.approx(4.302652729749464 * 1.0 / 3 ** 0.5)


def test_partial_runs_stay_visible(tmp_path):
    run = tmp_path / "runs" / "abc"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "abc", "model": "vljepa", "seed": 0, "status": "failed",
                                              "config": {"train": {"budget": {"samples": 64}}}}))
    frame = metrics(tmp_path)
    assert len(frame) == 1 and bool(frame["partial"].iloc[0]) and frame["status"].iloc[0] == "failed"


def test_report_from_committed_records_matches_them(tmp_path):
    page = build(EXAMPLE, tmp_path)
    text = page.read_text()
    sweeps = [json.loads(p.read_text()) for p in (EXAMPLE / "sweeps").glob("*.json")]
    assert sweeps
    for sweep in sweeps:
        assert f"## {sweep['name']}" in text and f"python -m bench.sweep {sweep['file']}" in text
        if sweep["name"] != "loss":
            continue
        key = sweep["swept"][0]
        for setting in {r["point"][key] for r in sweep["runs"]}:
            per_seed = []  # an independent computation straight from the records
            for r in sweep["runs"]:
                if r["point"][key] != setting:
                    continue
                rec = json.loads((EXAMPLE / "runs" / r["run_id"] / "run.json").read_text())
                budget = rec["config"]["train"]["budget"]["samples"]
                rows = [json.loads(x) for x in (EXAMPLE / "runs" / r["run_id"] / "evals.jsonl").read_text().splitlines()]
                per_seed += [x["value"] for x in rows if x["task"] == "classification" and x["metric"] == "top1"
                             and x["samples_seen"] == budget]
            line = next(ln for ln in text.splitlines() if ln.startswith(f"| {setting} |"))
            assert f"{np.mean(per_seed):.1f} ±" in line
    for png in (tmp_path / "figures").glob("*.png"):
        assert png.stat().st_size > 5000 and png.with_suffix(".pdf").is_file()
    names = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    # every sweep's training loss; the selective-decoding figure named once, not selective_selective_...
    assert {f"{s['name']}_training" for s in sweeps} | {"selective_decoding"} <= names
    assert "bands: its 95% t-interval" in text and "hollow diamonds: the paper's numbers" in text
    # a swept list of training stages reads by its stages' names in every table, the evaluation noise's too
    assert "| sft - pretrain+sft | classification/top1 |" in text and '[{"data_stage"' not in text


def test_training_curves_hold_every_logged_window_of_every_run():
    from analysis.records import training_curves

    curves = training_curves(EXAMPLE)
    run_id = curves["run_id"].iloc[0]
    logged = [json.loads(x) for x in (EXAMPLE / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    mine = curves[curves["run_id"] == run_id].drop_duplicates("samples_seen")
    assert list(mine["loss"]) == [r["loss"] for r in logged] and list(mine["samples_seen"]) == [r["samples_seen"] for r in logged]


def test_comparison_pairs_the_twins_by_seed():
    """The difference interval pairs runs of the same seed (same data order): a constant gap between
    twins whose seeds vary a lot is still a certain gap."""
    rows = []
    for seed, base in enumerate([10.0, 30.0, 50.0]):
        for model, value in (("vljepa", base + 2.0), ("vlm", base)):
            rows.append({"sweep": "c", "model": model, "seed": seed, "samples_seen": 64, "task": "classification",
                         "metric": "top5", "value": value, "chance": 10.4})
    table = comparison_table(pd.DataFrame(rows), "c", [("classification", "top5")])
    row = table.iloc[0]
    assert row["vljepa - vlm classification/top5"] == (2.0, 0.0, 3)
    assert row["chance classification/top5"] == pytest.approx(10.4)
    assert row["vljepa classification/top5"][1] > 10  # unpaired: the seeds' spread dominates
    assert "2.0 ± 0.0" in comparison_markdown(table)


def test_wall_time_comes_from_the_run_records(tmp_path):
    run = tmp_path / "runs" / "abc"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "abc", "model": "vljepa", "seed": 0, "status": "done",
                                              "started": 100.0, "finished": 160.5,
                                              "config": {"train": {"budget": {"samples": 64}}}}))
    assert metrics(tmp_path)["wall_s"].iloc[0] == pytest.approx(60.5)


def test_ablation_differences_pair_settings_by_seed():
    rows = []
    for seed, base in enumerate([5.0, 25.0, 45.0]):
        for setting, gap in (("a", 0.0), ("b", -3.0)):
            for task, metric in (("classification", "top1"), ("retrieval", "t2v_R@1"), ("vqa", "accuracy")):
                rows.append({"sweep": "s", "k": setting, "seed": seed, "samples_seen": 64, "budget": 64, "order": 0,
                             "task": task, "metric": metric, "value": base + gap, "chance": 1.0})
    table = ablation_table(pd.DataFrame(rows), "s", "k")
    text = to_markdown(table)
    assert "minus **a**" in text and "| b | -3.0 ± 0.0 | -3.0 ± 0.0 | -3.0 ± 0.0 |" in text


def test_sota_table_places_the_suites_runs_beside_the_literature():
    frame = metrics(EXAMPLE)
    text = sota_markdown(frame)
    assert "arXiv 2512.10942" in text and "this suite: sweep jepa_vs_vlm, 3 seeds" in text
    assert "sweep loss" not in text  # an ablation's arms are not one model's result


def test_snapshot_copies_a_sweep_and_drops_the_runs_it_replaced(tmp_path):
    from analysis.snapshot import snapshot

    results, out = tmp_path / "results", tmp_path / "example"
    for root, ids in ((results, ["new1", "new2"]), (out, ["old1"])):
        (root / "sweeps").mkdir(parents=True)
        (root / "sweeps" / "s.json").write_text(json.dumps({"runs": [{"run_id": i} for i in ids]}))
        for i in ids:
            (root / "runs" / i).mkdir(parents=True)
            (root / "runs" / i / "run.json").write_text(json.dumps({"status": "done", "git_commit": "aaa"}))
    (results / "runs" / "new1" / "checkpoints").mkdir()
    assert snapshot(results, out, ["s"]) == 2
    assert sorted(d.name for d in (out / "runs").iterdir()) == ["new1", "new2"]
    assert sorted(f.name for f in (out / "runs" / "new1").iterdir()) == ["run.json"]  # records only


def test_per_dataset_records_give_one_summary_and_a_table_beside_the_paper(tmp_path):
    from analysis.tables import per_dataset_markdown

    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "k.json").write_text(json.dumps({"name": "k", "file": "k.yaml", "swept": [],
        "runs": [{"run_id": f"r{s}", "seed": s, "condition": "base", "point": {}} for s in (0, 1)]}))
    for seed, (k400, ssv2) in enumerate([(60.0, 20.0), (62.0, 22.0)]):
        run = tmp_path / "runs" / f"r{seed}"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"run_id": f"r{seed}", "model": "vljepa", "seed": seed,
                                                  "status": "done", "config": {"train": {"budget": {"samples": 64}}}}))
        rows = [{"dataset": "kinetics400", "value": k400}, {"dataset": "ssv2", "value": ssv2},
                {"dataset": "mean", "value": (k400 + ssv2) / 2, "sets": ["kinetics400", "ssv2"]}]
        (run / "evals.jsonl").write_text("".join(json.dumps({"run_id": f"r{seed}", "samples_seen": 64, "task": "classification",
                                                             "metric": "top1", "chance": 1.0, **r}) + "\n" for r in rows))
    summary = metrics(tmp_path)
    assert sorted(summary["value"]) == [40.0, 42.0]  # one number per run and task: the mean over its sets
    table = per_dataset_markdown(metrics(tmp_path, per_dataset=True))
    assert "| k | vljepa | classification | kinetics400 | top1 | 61.0 ± 12.7 | 64.8 |" in table
    assert "| ssv2 | top1 | 21.0 ± 12.7 | 19.3 |" in table
    assert "| mean of 2 | top1 | 41.0 ± 12.7 | - |" in table  # the paper averages 8 other sets
    assert "classification (mean of 2 sets: kinetics400, ssv2)" in sota_markdown(summary)


def test_sample_efficiency_gains_a_flops_row_when_records_carry_flops(tmp_path):
    """Records with train_flops give the compute-matched row; records without (older ones) do not."""
    import matplotlib.image

    from analysis.figures import sample_efficiency

    rows = []
    for model, per_sample in (("vljepa", 1e9), ("vlm", 2e9)):
        for seed in (0, 1):
            for n in (64, 128):
                rows.append({"sweep": "s", "task": "classification", "metric": "top1", "model": model, "seed": seed,
                             "samples_seen": n, "value": 10.0 + n / 64 + seed, "chance": 5.0,
                             "train_flops": per_sample * n, "run_id": f"{model}{seed}"})
    frame = pd.DataFrame(rows)
    with_flops = sample_efficiency(frame, "s", [("classification", "top1", "top-1")], tmp_path / "a")
    without = sample_efficiency(frame.assign(train_flops=None), "s", [("classification", "top1", "top-1")],
                                tmp_path / "b")
    tall, short = (matplotlib.image.imread(str(p[0])).shape[0] for p in (with_flops, without))
    assert tall > 1.8 * short


def test_an_ablation_scored_by_its_captions_gets_a_cider_table_and_paired_differences():
    from analysis.power import ablation_power
    from analysis.tables import columns_for

    rows = []
    for seed, base in enumerate([40.0, 50.0, 45.0]):
        for order, (setting, gap) in enumerate((("targets", 0.0), ("predictions", 7.0))):
            for metric, shift in (("CIDEr", 0.0), ("CIDEr_decoder_ceiling", 30.0), ("CIDEr_nearest_caption", 10.0)):
                rows.append({"sweep": "d", "order": order, "k": setting, "seed": seed, "samples_seen": 64, "budget": 64,
                             "task": "captioning", "metric": metric, "value": base + shift + gap, "chance": None})
    columns = columns_for({"captioning"})
    assert columns_for({"captioning", "vqa"}) != columns and columns_for({"world"}) == []
    md = to_markdown(ablation_table(pd.DataFrame(rows), "d", "k", columns=columns))
    assert "| setting | seeds | CIDEr | CIDEr ceiling | CIDEr nearest caption |" in md and "nan" not in md
    assert "| predictions | 7.0 ± 0.0 | 7.0 ± 0.0 | 7.0 ± 0.0 |" in md  # each seed's gap, paired
    power_rows = ablation_power(ablation_table(pd.DataFrame(rows), "d", "k", columns=columns))
    assert {r["metric"] for r in power_rows} == {"CIDEr", "CIDEr ceiling", "CIDEr nearest caption"}


def test_ablation_tables_show_the_no_vision_prior_beside_chance():
    from analysis.tables import ablation_table, to_markdown

    rows = [{"sweep": "a", "order": i, "setting_key": setting, "seed": seed, "samples_seen": 64, "budget": 64,
             "task": "vqa", "metric": "accuracy", "value": 50.0 + seed, "chance": 24.5, "prior": 39.2,
             "run_id": f"{setting}{seed}"}
            for i, setting in enumerate(["x", "y"]) for seed in (0, 1)]
    table = ablation_table(pd.DataFrame(rows), "a", "setting_key")
    md = to_markdown(table)
    assert "VQA (chance; prior)" in md and "(24.5; 39.2)" in md


def test_selective_decoding_is_read_per_run_with_its_interval_and_judged_on_the_gap_across_seeds():
    from analysis.figures import selective_markdown
    from analysis.power import selective_power

    rows = []
    for seed, gap in enumerate([3.0, 4.0, 5.0]):
        base = {"sweep": "sel", "seed": seed, "run_id": f"r{seed}", "samples_seen": 48, "task": "streaming"}
        rows += [{**base, "metric": "cider_gap_pooled", "value": gap, "lo": gap - 2, "hi": gap + 2},
                 {**base, "metric": "reduction_factor_pooled", "value": 2.0 + seed, "lo": 1.0, "hi": 4.0},
                 {**base, "metric": "reduction_factor_control_pooled", "value": 1.0, "lo": None, "hi": None}]
    f = pd.DataFrame(rows)
    md = selective_markdown(f)
    assert "| 1 | 3.00x (1.00x to 4.00x) | 1.00x | +4.0 (+2.0 to +6.0) |" in md
    (row,) = selective_power(f, "sel")
    assert row["n"] == 3 and row["mean"] == pytest.approx(4.0) and row["verdict"] == "reproduced"
    f.loc[f["metric"] == "cider_gap_pooled", "value"] = [-3.0, -4.0, -5.0]
    assert selective_power(f, "sel")[0]["verdict"] == "contradicted"  # the paper's direction, with no number


def test_caption_facts_are_scored_against_the_canonical_reference(tmp_path):
    from analysis.captions import PRIOR, attribute_frame, attribute_markdown, score_rows
    from analysis.snapshot import snapshot

    refs = [["a small red circle moves left next to a blue square then the light comes on", "a paraphrase"],
            ["a large green star rotates", "another"]]
    rows = [{"item": 0, "references": refs[0], "prediction": "a tiny crimson disc slides to the left beside a navy box "
             "and the lamp switches on", "ceiling": "a small blue circle moves left"},
            {"item": 1, "references": refs[1], "prediction": "a lime starburst spins next to a red box",
             "ceiling": "a huge green star rotates"}]
    s = score_rows(rows)
    assert s[("prediction", "colour")] == s[("prediction", "motion")] == s[("prediction", "event")] == 100.0
    assert s[("prediction", "distractor")] == 50.0  # the second adds a distractor the clip lacks
    assert s[("prediction", "size")] == 100.0  # over the one caption that states a size
    assert s[("ceiling", "colour")] == 50.0 and s[("ceiling", "distractor")] == 50.0 and s[("ceiling", "event")] == 50.0
    assert s[(PRIOR, "size")] == 50.0 and ("nearest_caption", "colour") not in s

    # through a results store: the snapshot keeps the captions of each run's last evaluation only
    results = tmp_path / "results"
    (results / "sweeps").mkdir(parents=True)
    runs = [{"run_id": f"r{i}", "seed": i, "condition": "c", "point": {}} for i in range(2)]
    (results / "sweeps" / "s.json").write_text(json.dumps({"name": "s", "runs": runs, "swept": []}))
    for i in range(2):
        run = results / "runs" / f"r{i}"
        for samples, preds in ((8000, rows[:1]), (16000, rows)):
            (run / "predictions" / f"{samples:012d}").mkdir(parents=True)
            (run / "predictions" / f"{samples:012d}" / "captioning__shapes.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in preds))
        (run / "predictions" / f"{16000:012d}" / "vqa__shapes.jsonl").write_text("{}\n")
        (run / "run.json").write_text(json.dumps({"run_id": f"r{i}", "status": "done", "git_commit": "aaa",
                                                  "model": "vljepa", "seed": i}))
    out = tmp_path / "out"
    assert snapshot(results, out, ["s"]) == 2
    kept = sorted(str(p.relative_to(out)) for p in out.glob("runs/*/predictions/*/*"))
    assert kept == [f"runs/r{i}/predictions/000000016000/captioning__shapes.jsonl" for i in range(2)]
    frame = attribute_frame(out, "s")
    assert set(frame["samples_seen"]) == {16000} and len(frame[frame["source"] == "prediction"]) == 10
    assert "| vljepa: decoder ceiling | 50.0 ± 0.0 |" in attribute_markdown(frame)


def test_an_ablation_over_zipped_keys_keeps_every_condition_apart():
    """The Y-encoder sweep zips four keys; no one of them tells its four conditions apart (three arms share
    the pretrained path), so its table must not merge them under one key's values."""
    from analysis.report import _setting_key

    conditions = [("minilm", "{}"), ("minilm", "{n: 4}"), ("minilm", "{n: 2}"), ("", "{}")]
    f = pd.DataFrame([{"condition": f"c{i}", "a": a, "b": b, "seed": s} for i, (a, b) in enumerate(conditions)
                      for s in range(3)])
    g, key = _setting_key(f, ["a", "b"])
    assert key == "setting" and g.drop_duplicates("condition")[key].nunique() == 4
    assert _setting_key(f.assign(c=f["condition"]), ["a", "c"])[1] == "c"  # one key that suffices is used as is


def test_an_integer_setting_reads_as_the_sweep_wrote_it_and_finds_the_papers_row():
    """A swept integer stays an integer in the frame (other sweeps' runs leave the column empty, which made
    it a float column) so that it prints as written and meets its row of results/reference/ablations.csv."""
    table = ablation_table(metrics(EXAMPLE), "lm_init", "model.lm.text_pretraining.samples")
    assert list(table["setting"].astype(str)) == ["0", "64000"]
    assert table["Class. paper"].tolist() == [28.1, 27.3]
    assert list(ablation_table(metrics(EXAMPLE), "y_lr", "model.y_encoder.lr_multiplier")["Class. paper"].notna()) == [True] * 5


def _store_of_sweeps(root: Path, sweeps: dict[str, dict[str, float]], models: tuple[str, ...] = ("vljepa",)) -> None:
    """A results store with one sweep record per name ({setting: classification top-1 at seed 0}, seeds 0 and 1,
    each setting run by every model) and the run records and evaluations of their runs."""
    (root / "sweeps").mkdir(parents=True, exist_ok=True)
    for name, settings in sweeps.items():
        runs = []
        for i, (setting, top1) in enumerate(settings.items()):
            for model in models:
                for seed in (0, 1):
                    rid = f"{name}-{model}-{i}-{seed}"
                    point = {"model.loss.name": setting, **({"model.name": model} if len(models) > 1 else {})}
                    runs.append({"run_id": rid, "seed": seed, "condition": f"{model}-{setting}", "point": point})
                    run = root / "runs" / rid
                    run.mkdir(parents=True)
                    (run / "run.json").write_text(json.dumps({"run_id": rid, "model": model, "seed": seed, "status": "done",
                                                              "config": {"train": {"budget": {"samples": 64}}}}))
                    (run / "evals.jsonl").write_text("".join(
                        json.dumps({"run_id": rid, "samples_seen": n, "task": "classification", "metric": metric,
                                    "value": top1 + seed + n / 64, "chance": 1.0}) + "\n"
                        for n in (32, 64) for metric in ("top1", "top5")))
        swept = ["model.loss.name"] + (["model.name"] if len(models) > 1 else [])
        (root / "sweeps" / f"{name}.json").write_text(json.dumps({"name": name, "file": f"ablations/{name}.yaml",
                                                                 "swept": swept, "runs": runs}))


def test_the_report_reports_every_sweep_record_whatever_its_name(tmp_path):
    """The sweeps come from the store's sweep records, in the order of their names, and each section from what
    the records hold (one model: an ablation's table; several: the comparison's curves), not from a list of names."""
    results = tmp_path / "results"
    _store_of_sweeps(results, {"zz_never_seen_before": {"alpha": 10.0, "beta": 20.0}})
    _store_of_sweeps(results, {"qq_twins_nobody_named": {"alpha": 10.0}}, models=("vljepa", "vlm"))
    # a record whose runs have not started: the sweep exists, and the report says its runs have no records yet
    (results / "sweeps" / "aa_queued.json").write_text(json.dumps({"name": "aa_queued", "file": "ablations/aa.yaml",
        "swept": ["model.loss.name"], "runs": [{"run_id": "nope", "seed": 0, "condition": "c", "point": {}}]}))
    text = build(results, tmp_path / "report").read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads[1:4] == ["## aa_queued", "## qq_twins_nobody_named", "## zz_never_seen_before"]
    section = text.split("## zz_never_seen_before\n")[1].split("\n## ")[0]
    assert "python -m bench.sweep ablations/zz_never_seen_before.yaml" in section
    assert "*Ablation zz_never_seen_before over `model.loss.name`" in section
    assert "| alpha | 2 | 11.5 ± 6.4 (1.0) |" in section and "| beta | 10.0 ± 0.0 |" in section  # table, paired Δ
    assert "[zz_never_seen_before.tex](zz_never_seen_before.tex)" in section
    twins = text.split("## qq_twins_nobody_named\n")[1].split("\n## ")[0]
    assert "*Sample efficiency, qq_twins_nobody_named: vljepa, vlm at matched samples" in twins
    assert "None of its 1 runs has a run record in this store yet." in text.split("## aa_queued\n")[1].split("\n## ")[0]
