"""The suite's zero-shot classification and retrieval, cross-checked against a peer implementation: CLIP_benchmark
(LAION's `clip-benchmark` package), on the same image files and the same tiny CLIP (bench/tools/clip_benchmark_check.py
writes both, and wraps the CLIP as CLIP_benchmark calls a model). The suite scores through `python -m bench.eval
hf:FOLDER` (and, for CLIP's template ensembling, the same evaluation with eval.prompt_ensemble=embeddings);
CLIP_benchmark through its own zero-shot classifier, logits and retrieval metrics. Compared: top-1 <-> acc1, top-5 <->
acc5, the mean per-class recall (from the suite's per-item predictions) <-> mean_per_class_recall, t2v_R@k <->
image_retrieval_recall@k and v2t_R@k <-> text_retrieval_recall@k (k = 1, 5, 10), and each item's class ranking.

clip-benchmark is not a test extra: its requirements name torchvision and open_clip_torch, which pull a CUDA torch
over the CPU one. Install it without them (docs/peers.md) to run these:

    pip install --no-deps --target .peers/clip_benchmark clip-benchmark==1.6.2
    PYTHONPATH=.peers/clip_benchmark .venv/bin/python -m pytest tests/test_peer_clip_benchmark.py -m slow
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("clip_benchmark.metrics.zeroshot_classification", reason="clip-benchmark is not installed (docs/peers.md)")

from bench.results import read_jsonl  # noqa: E402
from bench.tools import clip_benchmark_check as check  # noqa: E402
from bench.tools.evaluate import main  # noqa: E402

pytestmark = pytest.mark.slow
FRAMES = 2  # a still image read as a clip of 2 identical frames: their mean is the image's own embedding


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("peer_clip")
    data = check.write_dataset(root / "data")  # three templates
    single = check.write_dataset(root / "single", templates=["{}"])  # the same images, one template
    folder = check.tiny_clip(root / "clip", data)
    return {"root": root, "data": data, "single": single, "folder": folder, "peer": check.peer_metrics(folder, data),
            "peer_single": check.peer_metrics(folder, single)}


def peer_ranking(folder: Path, data: Path) -> tuple[list[list[int]], list[int]]:
    """Each item's classes by CLIP_benchmark's logits, best first, and the labels, in the suite's item order."""
    model, loaders = check.peer_setup(folder, data, 8)
    logits, target = check.peer_logits(model, loaders["classification"], check.class_names(data), check.peer_templates(data))
    return logits.argsort(1, descending=True).tolist(), target.tolist()


def assert_agree(suite: dict[str, float], peer: dict) -> None:
    rows = check.compare(suite, peer)
    assert len(rows) == 9 and all(r["peer_value"] is not None for r in rows)  # 6 classes: acc5 is defined
    bad = [r for r in rows if not r["equal"]]
    assert not bad, bad


def test_bench_eval_on_a_reference_clip_scores_as_clip_benchmark_does(setup, tmp_path):
    """`python -m bench.eval hf:FOLDER` as a user runs it (one template: the suite's default ensemble is then the
    classifier's): every record equals CLIP_benchmark's metric, and every item's class ranking its logits'."""
    out = tmp_path / "runs"
    data = setup["single"]
    assert main([f"hf:{setup['folder']}", "--sets", f"classification={data}", f"retrieval={data}", "--size", "0",
                 "--frames", str(FRAMES), "--output-dir", str(out)]) == 0
    (run,) = list(out.iterdir())
    suite = check.suite_metrics(run)
    assert_agree(suite, setup["peer_single"])
    ranking, labels = peer_ranking(setup["folder"], data)
    kept = check.suite_predictions(run)
    assert [r["label"] for r in kept] == labels
    assert [r["top5"] for r in kept] == [r[:5] for r in ranking]
    # the numbers say something: neither chance nor perfect, and the two retrieval directions differ
    assert 100 / 6 < suite["classification/top1"] < 100
    assert suite["classification/top1"] != suite["classification/mean_per_class_recall"]  # unbalanced classes
    assert 0 < suite["retrieval/t2v_R@1"] < 100 and suite["retrieval/t2v_R@1"] != suite["retrieval/v2t_R@1"]


def test_with_clips_template_ensembling_the_suite_builds_clip_benchmarks_classifier(setup, tmp_path):
    """Three templates, eval.prompt_ensemble=embeddings: the suite's classifier is CLIP_benchmark's (per class, the
    mean of its templates' unit-norm text embeddings, renormalised): the same metrics and every item's ranking."""
    run = check.suite_run(setup["folder"], setup["data"], tmp_path / "runs", "embeddings", FRAMES)
    assert_agree(check.suite_metrics(run), setup["peer"])
    ranking, _ = peer_ranking(setup["folder"], setup["data"])
    assert [r["top5"] for r in check.suite_predictions(run)] == [r[:5] for r in ranking]
    evals = read_jsonl(run / "evals.jsonl")
    assert {r.get("ensemble") for r in evals if r["task"] == "classification"} == {"embeddings"}


def test_the_default_score_ensemble_is_the_mean_of_template_cosines_not_clip_benchmarks_classifier(setup, tmp_path):
    """eval.prompt_ensemble=scores (the suite's default) averages each template's cosines: a different classifier
    from CLIP_benchmark's whenever there are several templates (a cosine of a mean is not a mean of cosines). Each
    item's ranking is that mean's, computed here from the peer wrapper's own embeddings."""
    data, folder = setup["data"], setup["folder"]
    run = check.suite_run(folder, data, tmp_path / "runs", "scores", FRAMES)
    model, loaders = check.peer_setup(folder, data, 8)
    clip, tokenize = model["model"], model["tokenizer"]
    names, templates = check.class_names(data), check.peer_templates(data)
    with torch.no_grad():
        images = torch.cat([F.normalize(clip.encode_image(x), dim=-1) for x, _ in loaders["classification"]])
        per_template = torch.stack([F.normalize(clip.encode_text(tokenize([t.format(c=n) for n in names])), dim=-1)
                                    for t in templates])  # (templates, classes, D)
    mean_of_cosines = (images @ per_template.transpose(1, 2)).mean(0)
    classifier = F.normalize(per_template.mean(0), dim=-1)
    assert [r["top5"] for r in check.suite_predictions(run)] == mean_of_cosines.argsort(1, descending=True)[:, :5].tolist()
    # the two constructions score differently (by each class's norm of the mean template embedding)
    assert (mean_of_cosines - images @ classifier.T).abs().max() > 1e-3

