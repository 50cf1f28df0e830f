"""open_clip models evaluated without training (models/reference_openclip.py): `python -m bench.eval open_clip:FOLDER`
on a tiny random open_clip CLIP written here in open_clip's local-dir layout (open_clip_config.json and a
safetensors checkpoint; its tokenizer open_clip's own BPE, shipped with the package), nothing downloaded. Each
clip's class is the one computed by hand through open_clip's own calls (its evaluation transform, encode_image,
encode_text), and analysis reads the records as a run's.

open_clip needs torchvision; where it is not importable (this project's default venv: the CPU torch has no
matching torchvision on the package registry) the module is skipped. .ci/run runs it in a venv of its own with
torch 2.14.1 and torchvision 0.29.1 (docs/reference_models.md), with VLJEPA_REQUIRE_OPENCLIP=1 so that it cannot skip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

if os.environ.get("VLJEPA_REQUIRE_OPENCLIP"):  # .ci/run's open_clip venv: a failing import fails, never skips
    import open_clip
else:
    open_clip = pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from analysis.records import metrics  # noqa: E402
from analysis.report import build  # noqa: E402
from analysis.tables import final_values  # noqa: E402
from bench.data.config import ShapesConfig  # noqa: E402
from bench.data.items import classification_items  # noqa: E402
from bench.data.shapes import ShapesWorld  # noqa: E402
from bench.data.text import CLASS_PROMPTS  # noqa: E402
from bench.results import read_jsonl, run_dirs  # noqa: E402
from bench.tools.evaluate import main  # noqa: E402
from models.reference_base import ReferenceModelError  # noqa: E402
from models.reference_openclip import load_open_clip  # noqa: E402

SIZE, FRAMES, ITEMS = 32, 4, 24
MODEL_CFG = {"embed_dim": 32,
             "vision_cfg": {"image_size": SIZE, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
             "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A tiny random open_clip CLIP in open_clip's local-dir layout."""
    from safetensors.torch import save_file

    out = tmp_path_factory.mktemp("open_clip")
    torch.manual_seed(0)
    model = open_clip.CLIP(**MODEL_CFG)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG, "preprocess_cfg": {
        "size": SIZE, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "open_clip_model.safetensors")
    return out


def hand_top5(name: str, shapes: dict, pretrained: str | None = None, items: int = ITEMS) -> list[list[int]]:
    """Each of the first ITEMS val clips' five best classes, best first, through open_clip's own calls: the frames' unit image
    embeddings averaged and renormalised; cosine to each class prompt, averaged over the templates."""
    model, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    world = ShapesWorld(ShapesConfig(**shapes))
    items = classification_items(world, "val", items)
    names = list(items[0].candidates)
    with torch.no_grad():
        videos = []
        for it in items:
            pixels = torch.stack([transform(Image.fromarray(f)) for f in world.clip("val", it.index)])
            videos.append(F.normalize(F.normalize(model.encode_image(pixels), dim=-1).mean(0), dim=-1))
        videos = torch.stack(videos)
        scores = torch.stack([videos @ F.normalize(model.encode_text(tokenizer([t.format(n) for n in names])), dim=-1).T
                              for t in CLASS_PROMPTS]).mean(0)
    return scores.argsort(1, descending=True)[:, :5].tolist()


def test_an_open_clip_model_is_evaluated_into_the_results_store_as_a_run(folder, tmp_path):
    store = tmp_path / "results"
    spec = f"open_clip:{folder}"
    assert main([spec, "--tasks", "classification", "retrieval", "captioning", "--sets", "classification=shapes",
                 "retrieval=shapes", "--size", str(ITEMS), "--frames", str(FRAMES), "--output-dir",
                 str(store / "runs")]) == 0
    (run,) = list(run_dirs(store))
    record, evals = run.read_record(), read_jsonl(run.evals)
    assert record["reference"] is True and record["status"] == "done" and record["spec"] == spec
    assert record["adapter"]["model_type"] == f"open_clip:{folder}" and record["adapter"]["video_pooling"] == "frame_mean"
    shapes = record["config"]["data"]["shapes"]
    assert (shapes["frames"], shapes["size"]) == (FRAMES, SIZE)  # the model's own image size
    (na,) = [r for r in evals if r["task"] == "captioning"]
    assert na["metric"] == "not_applicable" and "writes no text" in na["reason"]
    kept = read_jsonl(run.predictions(0) / "classification__shapes.jsonl")
    expected = hand_top5(f"local-dir:{folder}", shapes)
    assert [r["top5"] for r in kept] == expected
    top1 = [r for r in evals if r["task"] == "classification" and r["metric"] == "top1"][0]
    assert top1["value"] == pytest.approx(100 * np.mean([e[0] == r["label"] for e, r in zip(expected, kept)]))
    assert {r["metric"] for r in evals if r["task"] == "retrieval"} >= {"t2v_R@1", "v2t_R@1"}
    frame = final_values(metrics(store))
    row = frame[(frame["task"] == "classification") & (frame["metric"] == "top1")]
    assert list(row["model"]) == [spec] and list(row["value"]) == [top1["value"]]
    page = build(store, tmp_path / "report").read_text().splitlines()  # measured rows, apart from every benchmark
    assert any(line.startswith(f"| {folder.name} (measured here) | `{spec}` |") for line in page)
    assert any(line.startswith(f"| {folder.name} (measured here) | {FRAMES} frames × {SIZE} px | {ITEMS} | "
                               f"{top1['value']:.1f} (") for line in page)


@pytest.mark.slow
def test_perception_encoder_core_reads_through_the_same_adapter(tmp_path):
    """PE-Core's architecture as open_clip ships it (a timm tower with attention pooling, 384 px, bicubic resize of
    the shortest side), random weights saved as a checkpoint file: the spec form its real weights take."""
    name, items = "PE-Core-T-16-384", 8
    torch.manual_seed(0)
    checkpoint = tmp_path / "pe_core_t.pt"
    torch.save(open_clip.create_model(name).state_dict(), checkpoint)
    spec = f"open_clip:{name}:{checkpoint}"
    assert main([spec, "--tasks", "classification", "--sets", "classification=shapes", "--size", str(items),
                 "--frames", "2", "--output-dir", str(tmp_path / "runs")]) == 0
    (run,) = list(run_dirs(tmp_path))
    shapes = run.read_record()["config"]["data"]["shapes"]
    assert (shapes["frames"], shapes["size"]) == (2, 384)
    kept = read_jsonl(run.predictions(0) / "classification__shapes.jsonl")
    assert [r["top5"] for r in kept] == hand_top5(name, shapes, str(checkpoint), items)


@pytest.mark.slow
def test_an_open_clip_model_scores_as_clip_benchmark_scores_it(folder, tmp_path):
    """The peer check of bench/tools/clip_benchmark_check.py with an open_clip model on both sides: the suite through
    `bench.eval open_clip:FOLDER`, CLIP_benchmark through its own open_clip loader (its model, transform and
    tokenizer) and metrics; all 9 metrics equal."""
    if not os.environ.get("VLJEPA_REQUIRE_OPENCLIP"):
        pytest.importorskip("clip_benchmark.models", reason="clip-benchmark is not installed (docs/peers.md)")
    from bench.tools import clip_benchmark_check as check

    data = check.write_dataset(tmp_path / "data")  # three templates: the suite's CLIP_benchmark ensemble below
    run = check.suite_run(folder, data, tmp_path / "runs", "embeddings", 2, spec=f"open_clip:{folder}")
    peer = check.peer_metrics(folder, data, setup=check.open_clip_setup(f"local-dir:{folder}"))
    rows = check.compare(check.suite_metrics(run), peer)
    assert len(rows) == 9 and not [r for r in rows if not r["equal"]], rows


def test_the_adapter_embeds_a_video_as_the_mean_of_its_frames(folder):
    adapter = load_open_clip(str(folder), f"open_clip:{folder}", FRAMES)
    model, _, transform = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    clips = [ShapesWorld(ShapesConfig(frames=FRAMES, size=SIZE)).clip("val", i) for i in range(3)]
    video = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W), as the tasks batch it
    with torch.no_grad():
        raw = model.encode_image(torch.stack([transform(Image.fromarray(f)) for c in clips for f in c]))
    raw = raw.view(len(clips), FRAMES, -1)
    frames = F.normalize(raw, dim=-1)
    got = adapter.embed({"video": video})
    assert adapter.image_size == SIZE and torch.allclose(got, F.normalize(frames.mean(1), dim=-1), atol=1e-5)
    # the check can fail: the first frame alone is another embedding (whether frames are normalised before the mean
    # is not told apart here: the tiny tower's ln_post gives every frame nearly one norm; tests/test_reference_models.py
    # tells it for the pooling both adapters share, models/reference_base.py frame_mean)
    assert not torch.allclose(got, frames[:, 0], atol=1e-3)


def test_an_open_clip_spec_that_cannot_be_read_says_why(folder, tmp_path):
    cases = {"open_clip:ViT-B-32": "no weights", "open_clip:not-a-model:openai": "neither an open_clip model name",
             f"open_clip:{folder}:openai": "takes no weights", f"open_clip:{tmp_path}": "no open_clip_config.json"}
    for spec, says in cases.items():
        with pytest.raises(ReferenceModelError, match=says):
            load_open_clip(spec.partition(":")[2], spec, FRAMES)
