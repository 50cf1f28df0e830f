"""An exported twin behind lmms-eval's model interface (bench/tools/lmms_adapter.py), checked against the suite's own
evaluation of the same export on the same files: lmms-eval's requests (Instances, built by its own ConfigurableTask
from a dataset saved to disk, and scored by the task's own process_results) must give the suite's multiple-choice
choices and captions, item by item.

lmms-eval is not a test extra: its requirements pull a CUDA torch and torchvision over the CPU torch. Install it
without them, with the light packages its core imports (docs/peers.md), to run these:

    pip install -e '.[lmms]' && pip install --no-deps lmms-eval==0.7.3
    .venv/bin/python -m pytest tests/test_peer_lmms_eval.py -m slow
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval.api.task", reason="lmms-eval is not installed (docs/peers.md)")

import datasets  # noqa: E402
import lmms_eval.api.metrics  # noqa: E402, F401  (registers the metrics tasks name: acc, ...)
from lmms_eval.api.instance import Instance  # noqa: E402
from lmms_eval.api.task import ConfigurableTask  # noqa: E402

from bench.config import run_id  # noqa: E402
from bench.data.items import vqa_items  # noqa: E402
from bench.data.shapes import ShapesWorld  # noqa: E402
from bench.data.video import write_video  # noqa: E402
from bench.results import RunDir, read_jsonl  # noqa: E402
from bench.tools import lmms_adapter  # noqa: E402
from bench.tools.evaluate import main as eval_main  # noqa: E402
from bench.tools.export import load_export, read_export  # noqa: E402
from bench.tools.export import main as export_main  # noqa: E402
from tests.tinyrun import cfg_for, run_in_process  # noqa: E402

pytestmark = pytest.mark.slow
ITEMS = 6


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Both twins, trained 64 samples and exported as `python -m bench.export` writes them."""
    root = tmp_path_factory.mktemp("lmms")
    out = {}
    for name in ("vlm", "vljepa"):
        cfg = cfg_for(root / "runs", f"model.name={name}", "train.budget.samples=64", "eval.grid=[64]",
                      "eval.tasks=[classification]")
        run_in_process(cfg)
        assert export_main([str(RunDir.of(root / "runs", run_id(cfg)).path), "--out", str(root / name)]) == 0
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def data(exports, tmp_path_factory) -> Path:
    """ITEMS clips of the tiny world's val split as lossless mp4 at the twins' clip shape, with a VQA question each:
    the suite's dataset folder (questions.jsonl, captions.jsonl) and, over the same files, a Hugging Face dataset
    saved to disk (hf/), the form lmms-eval's tasks load offline."""
    root = tmp_path_factory.mktemp("lmms_data")
    cfg, _ = load_export(exports["vlm"])
    world = ShapesWorld(cfg.data.shapes)
    items = vqa_items(world, "val", ITEMS)
    for it in items:
        write_video(root / f"v{it.index}.mp4", world.clip("val", it.index), fps=4, lossless=True)
    rows = [{"video": f"v{it.index}.mp4", "question": it.question, "candidates": list(it.candidates),
             "answer": it.answer} for it in items]
    (root / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "captions.jsonl").write_text("".join(json.dumps({"video": r["video"], "captions": ["a clip"]}) + "\n"
                                                 for r in rows))
    (root / "dataset.yaml").write_text(json.dumps({"tasks": {"vqa": {"annotations": "questions.jsonl"},
                                                             "captioning": {"annotations": "captions.jsonl"}}}))
    docs = [{**r, "video": str(root / r["video"])} for r in rows]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)}).save_to_disk(str(root / "hf"))
    return root


def lmms_task(data: Path, kind: str) -> ConfigurableTask:
    """An lmms-eval task over the saved dataset: multiple choice (a request per candidate) or generation."""
    common = {"dataset_path": str(data / "hf"), "dataset_kwargs": {"load_from_disk": True}, "test_split": "test",
              "doc_to_visual": lambda d: [d["video"]], "doc_to_text": lambda d: d["question"]}
    if kind == "choice":
        return ConfigurableTask(config={**common, "task": "shapes_choice", "output_type": "multiple_choice",
                                        "doc_to_choice": lambda d: d["candidates"], "doc_to_target": lambda d: d["answer"],
                                        "metric_list": [{"metric": "acc"}]})
    return ConfigurableTask(config={**common, "task": "shapes_caption", "output_type": "generate_until",
                                    "doc_to_target": lambda d: "a clip", "generation_kwargs": {"until": ["\n"]},
                                    "process_results": lambda doc, results: {"words": len(results[0].split())},
                                    "metric_list": [{"metric": "words", "aggregation": "mean", "higher_is_better": True}]})


def run_requests(model, task: ConfigurableTask, limit: int | None = None) -> dict[int, list]:
    """lmms-eval's evaluation loop, by hand: the task builds its Instances (of its first `limit` documents), the model
    answers each request type, and every document's responses come back in request order (what evaluate() hands
    process_results)."""
    task.build_all_requests(limit=limit)
    model.task_dict = {task.config.task: task.dataset}
    by_type: dict[str, list[Instance]] = {}
    for inst in task.instances:
        by_type.setdefault(inst.request_type, []).append(inst)
    for kind, insts in by_type.items():
        for inst, resp in zip(insts, getattr(model, kind)(insts)):
            inst.resps.append(resp)
    per_doc: dict[int, list] = {}
    for inst in sorted(task.instances, key=lambda i: (i.doc_id, i.idx)):
        per_doc.setdefault(inst.doc_id, []).append(inst.resps[0])
    return per_doc


SUITE: dict[tuple, list[dict]] = {}


def suite_predictions(export: Path, data: Path, task: str) -> list[dict]:
    """`python -m bench.eval EXPORT --sets TASK=DATA --size 0`: the per-item outputs it keeps (once per export, data
    and task in this module)."""
    if (export, data, task) not in SUITE:
        SUITE[export, data, task] = _suite_predictions(export, data, task)
    return SUITE[export, data, task]


def _suite_predictions(export: Path, data: Path, task: str) -> list[dict]:
    assert eval_main([str(export), "--sets", f"{task}={data}", "--size", "0"]) == 0
    kept = export / "ondemand" / f"{read_export(export)['checkpoint']}.predictions"
    (path,) = [p for p in kept.rglob(f"{task}__*.jsonl") if not p.name.endswith(".outcomes.jsonl")]
    return read_jsonl(path)


def test_lmms_evals_multiple_choice_picks_the_suites_vqa_choices(exports, data):
    """The VLM: lmms-eval's multiple choice (argmin of what loglikelihood returns, the mean token NLL) picks, item by
    item, the candidate the suite's VQA task picks (the highest mean token log-likelihood), and its acc is the
    suite's accuracy."""
    model = lmms_adapter.VLJepaBench(export=str(exports["vlm"]))
    task = lmms_task(data, "choice")
    per_doc = run_requests(model, task)
    results = [task.process_results(task.dataset["test"][d], per_doc[d]) for d in sorted(per_doc)]
    picks = [min(range(len(r)), key=lambda i: r[i][0]) for _, r in sorted(per_doc.items())]
    kept = suite_predictions(exports["vlm"], data, "vqa")
    assert picks == [r["chosen"] for r in kept], (picks, kept)
    assert [x["acc"] for x in results] == [float(r["chosen"] == r["answer"]) for r in kept]


def test_loglikelihood_values_are_the_vlms_own_scores(exports, data):
    """loglikelihood=nll returns minus the protocol's score (mean token log-likelihood, EOS included);
    loglikelihood=logprob the summed log-probability (times the candidate's token count). The delimiter lmms-eval
    puts before a choice is not scored."""
    nll = lmms_adapter.VLJepaBench(export=str(exports["vlm"]))
    logprob = lmms_adapter.VLJepaBench(export=str(exports["vlm"]), loglikelihood="logprob")
    task = lmms_task(data, "choice")
    a, b = run_requests(nll, task, limit=1), run_requests(logprob, task, limit=1)
    doc = task.dataset["test"][0]
    batch = nll._batch([doc["video"]], [doc["question"]])
    scores = nll.model.score(batch, [doc["candidates"]])[0].tolist()
    assert [v for v, _ in a[0]] == pytest.approx([-s for s in scores], abs=1e-5)
    counts = [nll.token_count(c) for c in doc["candidates"]]
    assert [v for v, _ in b[0]] == pytest.approx([s * n for s, n in zip(scores, counts)], abs=1e-4)
    assert all(n >= 2 for n in counts)  # a word and EOS at least: the sum is not the mean


def test_lmms_evals_generation_writes_the_suites_captions(exports, data):
    """generate_until with prompt=suite (the query the twin was trained on): each caption is the one the suite's
    captioning task writes for the same clip."""
    model = lmms_adapter.VLJepaBench(export=str(exports["vlm"]), prompt="suite")
    task = lmms_task(data, "caption")
    per_doc = run_requests(model, task)
    kept = suite_predictions(exports["vlm"], data, "captioning")
    assert [per_doc[d][0] for d in sorted(per_doc)] == [r["prediction"] for r in kept]
    assert all(task.process_results(task.dataset["test"][d], per_doc[d])["words"] >= 0 for d in per_doc)


def test_vljepa_generates_through_a_y_decoder_and_refuses_token_likelihoods(exports, data):
    """VL-JEPA captions through the Y-decoder the adapter trains once (as bench.eval does); it has no token
    likelihood, so loglikelihood refuses unless embedding_scores=true, which returns minus the cosine (argmin: its
    choice by the protocol's score)."""
    model = lmms_adapter.VLJepaBench(export=str(exports["vljepa"]), decoder_steps=20, decoder_clips=64)
    per_doc = run_requests(model, lmms_task(data, "caption"))
    assert all(isinstance(per_doc[d][0], str) and per_doc[d][0] for d in per_doc)
    with pytest.raises(NotImplementedError, match="embedding_scores"):
        run_requests(model, lmms_task(data, "choice"), limit=1)
    scoring = lmms_adapter.VLJepaBench(export=str(exports["vljepa"]), embedding_scores="true")
    task = lmms_task(data, "choice")
    per_doc = run_requests(scoring, task, limit=1)
    doc = task.dataset["test"][0]
    cos = scoring.model.score(scoring._batch([doc["video"]], [doc["question"]]), [doc["candidates"]])[0].tolist()
    assert [v for v, _ in per_doc[0]] == pytest.approx([-c for c in cos], abs=1e-5)


def test_the_adapter_registers_with_lmms_eval_and_reads_its_visuals(exports, tmp_path):
    """The model is found by name in lmms-eval's registry; an image, a frame list and a video path each become one
    clip at the export's shape; stop strings cut a generation."""
    from lmms_eval.models import get_model
    from PIL import Image

    lmms_adapter.register()
    assert get_model(lmms_adapter.MODEL_ID) is lmms_adapter.VLJepaBench
    model = lmms_adapter.VLJepaBench.create_from_arg_string(f"export={exports['vlm']},batch_size=2")
    assert model.batch_size == 2 and model.frames == 8 and model.size == 64
    image = Image.new("RGB", (96, 80), (200, 30, 30))
    assert model.clip_of(image).shape == (8, 64, 64, 3) and model.clip_of([image] * 3).shape == (8, 64, 64, 3)
    assert lmms_adapter.cut_at("a red ball\nnext", ["\n"]) == "a red ball"
    assert lmms_adapter.continuation(" red", {}) == "red"


def test_lmms_evals_own_evaluator_runs_the_registered_model_on_a_generation_task(exports, data):
    """lmms-eval's simple_evaluate, the model named as on its command line (`--model vljepa_bench --model_args
    export=...`): it loads the export through the registry and writes the suite's captions. (Its evaluator turns every
    response into text, so a multiple-choice task's (value, greedy) pairs do not survive it in 0.7.3: the choice
    tests above drive the task's own requests and process_results instead.)"""
    pytest.importorskip("filelock._api", reason="lmms-eval 0.7.3's evaluator patches filelock._api: filelock<4 (the lmms extra)")
    from lmms_eval.evaluator import simple_evaluate

    lmms_adapter.register()
    out = simple_evaluate(model=lmms_adapter.MODEL_ID, model_args=f"export={exports['vlm']},prompt=suite",
                          tasks=[lmms_task(data, "caption")], batch_size=4, device="cpu", log_samples=True)
    written = [s["resps"][0][0] for s in sorted(out["samples"]["shapes_caption"], key=lambda s: s["doc_id"])]
    assert written == [r["prediction"] for r in suite_predictions(exports["vlm"], data, "captioning")]
    assert out["results"]["shapes_caption"]["words,none"] == pytest.approx(sum(len(w.split()) for w in written) / ITEMS)
