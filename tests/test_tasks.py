"""Evaluation tasks: each metric against an independent computation, and every twin through every task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config import load_run_config
from bench.data.shapes import ShapesWorld, TrainSamples
from bench.eval.curves import reduction_factor
from bench.eval.sets.resolve import load_sets
from bench.eval.tasks import TASKS, captionmetrics, evaluate
from bench.eval.tasks.common import EvalContext, stage_queries
from bench.eval.tasks.retrieval import ranks_from_chunks
from bench.eval.tasks.streaming import chain_segments
from bench.results import read_jsonl
from bench.run.build import build_model
from models.protocol import DecoderData
from tests.conftest import tiny_overrides


def test_cider_equals_pycocoevalcap_called_directly():
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    cands = {"1": "a red square moves left", "2": "a blue star grows", "3": "the light goes out"}
    refs = {"1": ["a red square moves left", "a crimson box slides to the left"],
            "2": ["a blue star expands", "an azure starburst gets bigger"],
            "3": ["the room goes dark", "a green circle stays still then the light goes out"]}
    ours = captionmetrics.caption_scores(cands, refs, ("CIDEr",))["CIDEr"]
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in cands.items()})
    assert ours == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-12)


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(captionmetrics.shutil, "which", lambda name: None)
    with pytest.raises(captionmetrics.JavaMissing, match="METEOR"):
        captionmetrics.caption_scores({"1": "a"}, {"1": ["a"]})


def test_retrieval_ranks_on_hand_made_similarities():
    S = torch.tensor([[0.9, 0.1, 0.8, 0.0],   # video 0: its text (0) is best -> v2t rank 1
                      [0.5, 0.2, 0.3, 0.6],   # video 1: text 1 beaten by 0, 2, 3 -> rank 4
                      [0.1, 0.7, 0.7, 0.2],   # video 2: text 1 ties its match, and a tie counts against -> 2
                      [0.0, 0.0, 0.1, 0.4]])  # video 3: rank 1
    diag = S.diag()
    v2t, t2v = ranks_from_chunks([(0, S)], diag)
    assert v2t.tolist() == [1, 4, 2, 1]
    assert t2v.tolist() == [1, 2, 2, 2]  # text 0: video 0 best; text 1: video 2 beats video 1; ...
    v2t_c, t2v_c = ranks_from_chunks([(0, S[:3]), (3, S[3:])], diag)  # chunked: the same ranks
    assert v2t_c.tolist() == v2t.tolist() and t2v_c.tolist() == t2v.tolist()
    collapsed = torch.full((4, 4), 0.5)  # every score alike: every match ranks last, R@1 = 0
    v2t, t2v = ranks_from_chunks([(0, collapsed)], collapsed.diag())
    assert v2t.tolist() == t2v.tolist() == [4, 4, 4, 4]
    # two texts per video: a video's own texts never compete with each other
    two = torch.tensor([[0.9, 0.9, 0.1], [0.2, 0.3, 0.8]])
    owner = [0, 0, 1]
    v2t, t2v = ranks_from_chunks([(0, two)], torch.tensor([0.9, 0.9, 0.8]), owner)
    assert v2t.tolist() == [1, 1] and t2v.tolist() == [1, 1, 1]


def test_chain_clustering_recovers_known_boundaries():
    rng = np.random.default_rng(0)
    levels = rng.normal(size=(4, 16)) * 3
    lengths = [30, 18, 25, 27]
    stream = np.concatenate([np.repeat(levels[i:i + 1], n, 0) for i, n in enumerate(lengths)])
    stream += rng.normal(scale=0.3, size=stream.shape)
    segs = chain_segments(stream, 4)
    assert [a for a, _ in segs] == [0, 30, 48, 73]


def test_reduction_factor_interpolates():
    uniform = {0.5: 10.0, 1.0: 20.0, 2.0: 25.0}
    adaptive = {0.25: 12.0, 0.5: 28.0, 1.0: 30.0}
    # adaptive reaches 20 halfway between 0.25 and 0.5 -> 1.0 / 0.375
    assert reduction_factor(uniform, adaptive) == pytest.approx(1 / 0.375)
    assert reduction_factor(uniform, {0.5: 1.0, 1.0: 2.0}) is None


def test_curves_are_read_monotone_and_the_control_shows_saturation():
    from bench.eval.curves import mean_gap, monotone

    # uniform's CIDEr wobbles: at 0.5 Hz it scores above itself at 1 Hz by chance; read raw, the crossing
    # falls between swept rates and the reading follows the wobble; read monotone, the wobble is pooled
    # into a flat stretch, which the control reports as what it is: uniform had saturated by 0.5 Hz
    uniform = {0.25: 10.0, 0.5: 21.0, 1.0: 20.0, 2.0: 30.0}
    assert reduction_factor(uniform, uniform) == pytest.approx(1 / (0.25 + 10 / 11 * 0.25))
    fit = monotone(uniform)
    assert fit == {0.25: 10.0, 0.5: 20.5, 1.0: 20.5, 2.0: 30.0}
    assert reduction_factor(fit, fit) == pytest.approx(2.0)
    steady = monotone({0.25: 10.0, 0.5: 15.0, 1.0: 20.0, 2.0: 30.0})
    assert reduction_factor(steady, steady) == 1.0  # no saturation: uniform against itself saves nothing
    # the gap: adaptive 4 above uniform at every rate -> 4, whatever the spacing of the rates
    assert mean_gap(steady, {r: v + 4 for r, v in steady.items()}) == pytest.approx(4.0)
    assert mean_gap({0.1: 0.0, 1.0: 0.0}, {0.1: 0.0, 1.0: 2.0}) == pytest.approx(1.0)  # linear in log rate


def test_per_item_cider_averages_to_the_corpus_score():
    from bench.eval.tasks.captionmetrics import caption_scores, cider_items

    refs = {"a": ["a red ball moves left", "the red ball goes left"], "b": ["a blue cube jumps", "blue cube jumping"],
            "c": ["a small green ball", "green ball small"]}
    cands = {"a": "red ball moves left", "b": "a blue ball jumps", "c": "a large red cube"}
    items = cider_items(cands, refs)
    assert np.mean(items) == pytest.approx(caption_scores(cands, refs, ("CIDEr",))["CIDEr"])
    assert items[0] > items[2]  # in the order given


def test_the_decoder_ceiling_is_scored_without_the_reference_it_decoded():
    from bench.eval.tasks.captioning import held_out, nearest_captions
    from bench.eval.tasks.captionmetrics import caption_scores

    refs = {"0": ["a red ball moves left", "the red ball goes left", "red ball heading left"],
            "1": ["a blue cube jumps", "the blue cube hops", "blue cube jumping up"]}
    decoded = {k: r[-1] for k, r in refs.items()}  # a perfect autoencoder: the paraphrase it was given, back
    rest = held_out(refs)
    assert all(decoded[k] not in rest[k] and rest[k] == refs[k][:-1] for k in refs)
    echo = caption_scores(decoded, refs, ("CIDEr",))["CIDEr"]
    assert caption_scores(decoded, rest, ("CIDEr",))["CIDEr"] < echo  # scoring it against itself inflated it
    assert held_out({"0": ["only one"]}) == {"0": ["only one"]}
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    assert nearest_captions(torch.tensor([[0.9, 0.1], [0.2, 3.0]]), bank, ["x", "y", "xy"]) == ["x", "y"]


@pytest.fixture(scope="module")
def ctx():
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        "eval.size=24", "eval.streams=2", f"eval.tasks={sorted(TASKS)}", "eval.batch=12", "eval.decoder_steps=10",
        "eval.stream_rates=[1.0, 0.5, 0.25]", "eval.stream_bootstrap=50", "model.decoder.max_tokens=8"))
    world = ShapesWorld(cfg.data.shapes)
    source = TrainSamples(cfg.data, 0, world)
    return EvalContext.from_config(cfg, load_sets(cfg, world), stage_queries("pretrain"),
                                   decoder_texts=lambda: source.caption_texts(20))


@pytest.mark.parametrize("name", ["vljepa", "vlm"])
def test_every_twin_runs_every_task(name, ctx):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(f"model.name={name}"))
    model = build_model(cfg)
    model.train()
    recs = evaluate(model, ctx, sorted(TASKS))
    assert model.training  # evaluate() put the model back in training mode
    tasks = {r["task"] for r in recs}
    expected = set(TASKS) - ({"hardneg", "streaming"} if name == "vlm" else set())  # need a text/embedding stream
    assert tasks == expected
    for r in recs:
        assert np.isfinite(r["value"]) or r["metric"].startswith("reduction_factor")
        if r["task"] in ("classification", "vqa", "world"):
            assert r["chance"] is not None and 0 < r["chance"] < 100
    if name == "vljepa":  # every strategy's curve; the readings with their bootstrap intervals over streams
        stream = {(r["metric"], r.get("rate_hz")): r for r in recs if r["task"] == "streaming"}
        assert {m for m, _ in stream if m.startswith("CIDEr_")} == {f"CIDEr_{s}" for s in ctx.eval.stream_strategies}
        for m in ("reduction_factor", "reduction_factor_pooled", "cider_gap", "cider_gap_pooled"):
            r = stream[(m, None)]
            assert r["lo"] <= r["value"] <= r["hi"] or not np.isfinite(r["value"])
        assert stream[("reduction_factor_control_pooled", None)]["value"] >= 1.0
    caption_metrics = {r["metric"] for r in recs if r["task"] == "captioning"}
    for m in ("CIDEr_decoder_ceiling", "CIDEr_heldout", "CIDEr_nearest_caption"):
        assert (m in caption_metrics) == (name == "vljepa")  # only a model with a Y-decoder
    for r in recs:  # a mean over items carries its standard error over them: the evaluation's own noise
        if r["metric"] in ("top1", "top5", "accuracy", "t2v_R@1", "CIDEr"):
            assert r["se"] > 0 or r["value"] in (0.0, 100.0), r
    if name == "vljepa":
        assert model.decoder is None  # the grid-point decoder is detached again


def test_classification_encodes_each_class_name_once(ctx):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides())
    model = build_model(cfg)
    seen: list[str] = []
    orig = model.encode_targets
    model.encode_targets = lambda texts: (seen.extend(texts), orig(texts))[1]
    evaluate(model, ctx, ["classification"])  # 24 clips in 2 batches, 3 prompt templates
    assert len(seen) == len(set(seen)) == 3 * 48  # 6 colours x 8 motions, 3 prompt templates


@pytest.mark.slow
def test_eval_cli_on_a_finished_run(tmp_path, capsys):
    from bench.run.train import run
    from bench.tools.evaluate import main

    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=32", "train.budget.samples=64",
        "eval.grid=[]", "eval.tasks=[]", "eval.task_size={classification: 8}"))
    rec = run(cfg, log=lambda m: None)
    # --size sizes every task, one the run's eval.task_size names included
    assert main([str(tmp_path / rec["run_id"]), "--tasks", "classification", "vqa", "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "| classification | shapes | top5 |" in out and (tmp_path / rec["run_id"] / "ondemand").is_dir()
    kept = list((tmp_path / rec["run_id"] / "ondemand").glob("*.predictions/*.jsonl"))
    assert sorted(p.name for p in kept) == ["classification__shapes.jsonl", "classification__shapes.outcomes.jsonl",
                                            "vqa__shapes.jsonl", "vqa__shapes.outcomes.jsonl"]
    # more items than the run's split holds (val_size 64): the split grows, its first items are the run's own,
    # and the records go beside the default evaluation's, not over them
    assert main([str(tmp_path / rec["run_id"]), "--tasks", "classification", "--size", "100", "--name", "items100"]) == 0
    small, big = sorted((tmp_path / rec["run_id"] / "ondemand").glob("*.jsonl"), key=lambda p: "items100" in p.name)
    assert big.name.endswith(".items100.jsonl") and {r["n"] for r in read_jsonl(big)} == {100}
    assert {r["n"] for r in read_jsonl(small) if r["task"] == "classification"} == {16}
    hits = [read_jsonl(p.with_suffix(".predictions") / "classification__shapes.outcomes.jsonl") for p in (small, big)]
    for a, b in zip(*hits):
        assert b["hits"][:16] == a["hits"] and len(b["hits"]) == 100
    assert all(r["git_commit"] for r in read_jsonl(big))
    with pytest.raises(SystemExit):  # a name is part of a file name: no path in it
        main([str(tmp_path / rec["run_id"]), "--name", "../x"])


def test_kept_predictions_rebuild_the_recorded_metrics(ctx):
    """Every number can be audited: the captions and choices a task kept give its metrics again."""
    cfg = load_run_config("base/tiny.yaml", tiny_overrides())
    model = build_model(cfg)
    kept: dict[tuple[str, str], list[dict]] = {}
    ctx.predictions = lambda task, name, rows, kind="predictions": kept.__setitem__((task, name, kind), rows)
    try:
        recs = {(r["task"], r["metric"]): r["value"]
                for r in evaluate(model, ctx, ["captioning", "classification", "retrieval", "vqa"])}
    finally:
        ctx.predictions = None
    assert not any("hits" in k for k in recs)
    outcomes = {(task, r["metric"]): r["hits"] for (task, _, kind), rows in kept.items() if kind == "outcomes" for r in rows}
    assert {k for k in outcomes} >= {("classification", "top1"), ("classification", "top5"), ("retrieval", "t2v_R@1"),
                                     ("retrieval", "v2t_R@5"), ("vqa", "accuracy"), ("vqa", "accuracy_all")}
    for key, hits in outcomes.items():  # each metric is the percentage of its items' hits
        assert 100 * hits.count("1") / len(hits) == pytest.approx(recs[key]), key
    kept = {(task, name): rows for (task, name, kind), rows in kept.items() if kind == "predictions"}
    caps = kept[("captioning", "shapes")]
    cider = captionmetrics.caption_scores({str(r["item"]): r["prediction"] for r in caps},
                                          {str(r["item"]): r["references"] for r in caps}, ("CIDEr",))["CIDEr"]
    assert 100 * cider == pytest.approx(recs[("captioning", "CIDEr")], abs=1e-9)
    cls = kept[("classification", "shapes")]
    assert 100 * np.mean([r["top5"][0] == r["label"] for r in cls]) == pytest.approx(recs[("classification", "top1")])
    vqa = kept[("vqa", "shapes")]
    answerable = [r for r in vqa if r["kind"] != "shape"]  # base/tiny.yaml: eval.vqa_exclude: [shape]
    right = lambda rows: 100 * np.mean([r["chosen"] == r["answer"] for r in rows])  # noqa: E731
    assert len(vqa) == 24 and right(vqa) == pytest.approx(recs[("vqa", "accuracy_all")])
    assert right(answerable) == pytest.approx(recs[("vqa", "accuracy")])


def test_no_vision_priors_are_the_best_constant_answer_and_never_below_chance():
    from bench.eval.sets.kinds import ChoiceSet
    from bench.eval.tasks.classification import prior_hits
    from bench.eval.tasks.vqa import prior_choices, summarise

    # colour questions answered "red" 3 times of 4: the prior answers red everywhere (right 3 of 4);
    # a balanced yes/no kind scores chance (a leave-one-out count would score it 0)
    s = ChoiceSet("t", None, [0] * 6, [""] * 6,
                  [("red", "blue"), ("blue", "red"), ("red", "blue"), ("blue", "red"), ("yes", "no"), ("yes", "no")],
                  [0, 1, 0, 0, 0, 1], ["colour"] * 4 + ["exists"] * 2)
    assert prior_choices(s) == [0, 1, 0, 1, 0, 0]
    assert [p == a for p, a in zip(prior_choices(s), s.answers)] == [True, True, True, False, True, False]
    labels = torch.tensor([2, 2, 2, 0, 1])
    assert prior_hits(labels, 4, 1).tolist() == [True, True, True, False, False]  # class 2 is the majority
    assert prior_hits(labels, 4, 3).tolist() == [True] * 5
    balanced = torch.arange(48).repeat(5)
    assert prior_hits(balanced, 48, 1).float().mean() == pytest.approx(1 / 48)  # chance, not 0
    assert prior_hits(balanced, 48, 5).float().mean() == pytest.approx(5 / 48)
    # the headline leaves out kinds the encoder cannot answer; accuracy_all keeps them
    rows = {"colour": [(True, 0.5, True, 0), (True, 0.5, False, 2)], "shape": [(False, 0.5, True, 1), (False, 0.5, False, 3)]}
    recs = {r["metric"]: r for r in summarise("vqa", rows, exclude=["shape"])}
    assert recs["accuracy"]["value"] == 100 and recs["accuracy_all"]["value"] == 50
    assert recs["accuracy"]["prior"] == 50 and recs["accuracy_shape"]["value"] == 0
    assert list(recs["accuracy_all"]["hits"]) == [True, False, True, False]  # in item order, across kinds
    assert "accuracy_all" not in {r["metric"] for r in summarise("vqa", rows)}


def _decoder_setup(train_on: str, clips: int = 6):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(f"model.decoder.train_on={train_on}", "data.stage=sft",
                                                           f"eval.decoder_clips={clips}", "eval.batch=4"))
    model = build_model(cfg).eval()
    source = TrainSamples(cfg.data, 0, ShapesWorld(cfg.data.shapes))
    return cfg, model, source


@pytest.mark.parametrize("train_on", ["predictions", "both"])
def test_a_decoder_trained_on_predictions_sees_the_models_own_output_for_each_training_caption(train_on):
    from bench.data.loader import collate
    from bench.data.text import CAPTION_QUERY
    from models.decoder import decoder_pairs

    cfg, model, source = _decoder_setup(train_on)
    ctx = EvalContext.for_run(cfg, model, "sft", torch.device("cpu"), {}, source)
    batches = []
    data = DecoderData(ctx.decoder_texts, lambda: batches)
    for i in range(6):  # each training clip asked for its caption, one at a time: what the decoder must read
        batches.append((collate([{"video": source.world.clip("train", i), "query": CAPTION_QUERY}]),
                        [list(source.world.references("train", i))]))
    emb, texts = decoder_pairs(model, data, train_on)
    refs = [r for i in range(6) for r in source.world.references("train", i)]
    with torch.no_grad():
        own = torch.cat([model.embed(b).float().expand(len(r[0]), -1) for b, r in batches])
    targets = source.caption_texts(6) if train_on == "both" else []
    assert texts == targets + refs  # every reference of every clip, each paired with its clip's prediction
    assert torch.allclose(emb[len(targets):], own, atol=1e-5)
    if targets:
        assert torch.allclose(emb[:len(targets)], model.encode_targets(targets).float(), atol=1e-5)
    # the evaluation context's own batches (clip_batches, 4 at a time) give the same pairs
    ctx_emb, ctx_texts = decoder_pairs(model, DecoderData(ctx.decoder_texts, ctx._decoder_clip_batches), train_on)
    assert ctx_texts == texts and torch.allclose(ctx_emb, emb, atol=1e-5)


@pytest.mark.parametrize("train_on", ["targets", "predictions", "both"])
def test_a_decoder_decoding_to_the_first_reference_learns_one_wording_per_clip(train_on):
    from models.decoder import decoder_pairs

    cfg, model, source = _decoder_setup(train_on)
    ctx = EvalContext.for_run(cfg, model, "sft", torch.device("cpu"), {}, source)
    data = DecoderData(ctx.decoder_texts, ctx._decoder_clip_batches)
    emb, texts = decoder_pairs(model, data, train_on, "first_reference")
    clips = source.caption_clips(6)
    first = [r[0] for r in clips.references]
    every = [t for r in clips.references for t in r]
    encoded = [r[0] for r in clips.references for _ in r] if train_on != "predictions" else []
    assert texts == encoded + (first if train_on != "targets" else [])
    if encoded:  # every reference of a clip, Y-encoded, is trained toward the clip's first reference
        assert torch.allclose(emb[:len(encoded)], model.encode_targets(every).float(), atol=1e-5)
    if train_on != "targets":  # a clip's prediction once, toward its first reference
        own, _ = decoder_pairs(model, data, "predictions")  # each_reference: the prediction once per reference
        counts = [len(r) for r in clips.references]
        rows = torch.tensor([sum(counts[:i]) for i in range(len(counts))])
        assert torch.allclose(emb[len(encoded):], own[rows], atol=1e-5)
    assert len(set(texts)) == len(set(first))  # one wording per clip, whatever its paraphrases
    with pytest.raises(ValueError, match="decode_to=first_reference needs the training data's caption clips"):
        decoder_pairs(model, DecoderData(ctx.decoder_texts), "targets", "first_reference")


def test_a_decoder_trained_on_predictions_captions_and_needs_clips():
    cfg, model, source = _decoder_setup("predictions", clips=16)
    sets = {"captioning": load_sets(load_run_config("base/tiny.yaml", tiny_overrides("eval.size=8", "eval.tasks=[captioning]")),
                                    source.world)["captioning"]}
    ctx = EvalContext.for_run(cfg, model, "sft", torch.device("cpu"), sets, source)
    ctx.eval.decoder_steps = 5
    recs = {r["metric"]: r["value"] for r in evaluate(model, ctx, ["captioning"])}
    assert np.isfinite(recs["CIDEr"]) and "CIDEr_decoder_ceiling" in recs
    ctx.decoder_clips = None  # a source without clips: the setting is named, nothing is trained
    failed = evaluate(model, ctx, ["captioning"])  # by default the task's failure is a record, the run goes on
    assert [r["metric"] for r in failed] == ["failed"] and "train_on=predictions" in failed[0]["error"]
    ctx.eval.on_task_error = "stop"
    with pytest.raises(ValueError, match="train_on=predictions"):
        evaluate(model, ctx, ["captioning"])
