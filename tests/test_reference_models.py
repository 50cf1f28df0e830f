"""Off-the-shelf reference models evaluated without training (bench/tools/reference.py, models/reference_clip.py):
`python -m bench.eval hf:FOLDER` on tiny random CLIP and SigLIP folders written here with save_pretrained (their
tokenizer a word-level one over the shapes world's words, their image processors the transformers classes),
nothing downloaded (HF_HUB_OFFLINE=1, tests/conftest.py). The records land in the results store as a run's and
analysis reads them; each clip's classification is the one computed by hand from the model's own forward pass
(frame embeddings normalised, averaged over the frames, renormalised; cosine to each prompt, averaged over the
templates), so a wrong pooling, normalisation, text padding or clip shape fails here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoTokenizer,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    PreTrainedTokenizerFast,
    Siglip2Config,
    Siglip2ImageProcessor,
    Siglip2Model,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
)

from analysis.records import metrics
from analysis.tables import final_values
from bench.data.config import ShapesConfig
from bench.data.items import classification_items
from bench.data.shapes import ShapesWorld
from bench.data.text import CLASS_PROMPTS, vocabulary
from bench.data.video import read_clip, write_video
from bench.results import read_json, read_jsonl, run_dirs
from bench.tools.evaluate import main
from models.encoders import weight_hash
from models.reference_base import ReferenceModelError
from models.reference_clip import HFDualEncoder, load_hf

SIZE, FRAMES, ITEMS = 32, 8, 24
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=32, pad_token_id=0, bos_token_id=2, eos_token_id=3)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8)


def tokenizer() -> PreTrainedTokenizerFast:
    """Word-level over the world's words, ending every text with <eos> (CLIP's text tower pools at it)."""
    words = ["<pad>", "<unk>", "<bos>", "<eos>", *vocabulary()]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", model_max_length=TEXT["max_position_embeddings"])


def build(kind: str, folder: Path) -> Path:
    """A tiny random model of `kind` with its tokenizer and image processor, saved as a transformers folder."""
    tok = tokenizer()
    text = {**TEXT, "vocab_size": len(tok)}
    torch.manual_seed(0)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config={**VISION, "image_size": SIZE}, projection_dim=16))
        processor = CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    elif kind == "siglip":
        model = SiglipModel(SiglipConfig(text_config=text, vision_config={**VISION, "image_size": SIZE}))
        processor = SiglipImageProcessor(size={"height": SIZE, "width": SIZE})
    else:  # SigLIP2's variable-resolution tower: a patch budget, (SIZE / 8)^2 patches of 8 pixels
        patches = (SIZE // VISION["patch_size"]) ** 2
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config={**VISION, "num_patches": patches}))
        processor = Siglip2ImageProcessor(patch_size=VISION["patch_size"], max_num_patches=patches)
    for part in (model, tok, processor):
        part.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    return {kind: build(kind, root / kind) for kind in ("clip", "siglip", "siglip2")}


def hand_video_embedding(model, processor, clip: np.ndarray) -> torch.Tensor:
    """(D,) a clip (T, H, W, 3) through the model's forward pass, frame by frame: the mean of the frames' unit
    embeddings, renormalised."""
    inputs = processor(images=list(clip), return_tensors="pt")
    dummy = torch.zeros(len(clip), 1, dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=dummy, **inputs)  # image_embeds: normalised by the model itself
    return F.normalize(out.image_embeds.mean(0), dim=-1)


def hand_text_embeddings(model, tok, texts: list[str], padding: str) -> torch.Tensor:
    """(N, D) unit-norm text embeddings through get_text_features, padded as the model card says."""
    inputs = tok(texts, padding=padding, max_length=TEXT["max_position_embeddings"], return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(**inputs)
    return F.normalize(getattr(out, "pooler_output", out), dim=-1)


def hand_top1(folder: Path, shapes: dict, padding: str) -> list[int]:
    """Each of the first ITEMS val clips' best class: cosine to each class prompt, averaged over templates."""
    model, tok = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    world = ShapesWorld(ShapesConfig(**shapes))
    items = classification_items(world, "val", ITEMS)
    names = list(items[0].candidates)
    videos = torch.stack([hand_video_embedding(model, processor, world.clip("val", it.index)) for it in items])
    scores = torch.stack([videos @ hand_text_embeddings(model, tok, [t.format(n) for n in names], padding).T
                          for t in CLASS_PROMPTS]).mean(0)
    return scores.argmax(1).tolist()


def evaluate(folder: Path, out: Path, *tasks: str) -> int:
    sets = [f"{t}=shapes" for t in tasks if t in ("classification", "retrieval")]
    return main([f"hf:{folder}", "--tasks", *tasks, "--sets", *sets, "--size", str(ITEMS), "--output-dir", str(out)])


@pytest.mark.parametrize("kind,padding", [("clip", "longest"), ("siglip", "max_length")])
def test_a_reference_model_is_evaluated_into_the_results_store_as_a_run(folders, tmp_path, kind, padding):
    store = tmp_path / "results"
    assert evaluate(folders[kind], store / "runs", "classification", "retrieval", "captioning") == 0
    (run,) = list(run_dirs(store))
    record, evals = run.read_record(), read_jsonl(run.evals)
    assert record["reference"] is True and record["status"] == "done" and record["spec"] == f"hf:{folders[kind]}"
    assert record["weights_hash"] == weight_hash(AutoModel.from_pretrained(folders[kind]))
    assert record["adapter"]["video_pooling"] == "frame_mean" and record["git_commit"] and "transformers" in record["versions"]
    shapes = record["config"]["data"]["shapes"]
    assert (shapes["frames"], shapes["size"]) == (FRAMES, SIZE)  # the model's own clip shape, not the twins' 64 px
    assert {(r["task"], r["samples_seen"]) for r in evals} == {("classification", 0), ("retrieval", 0), ("captioning", 0)}
    (na,) = [r for r in evals if r["task"] == "captioning"]
    assert na["metric"] == "not_applicable" and na["value"] is None and "writes no text" in na["reason"]
    assert not [r for r in evals if r["metric"] == "failed"]

    # each clip's class, as the records' per-item predictions have it, is the hand computation's
    kept = read_jsonl(run.predictions(0) / "classification__shapes.jsonl")
    expected = hand_top1(folders[kind], shapes, padding)
    assert [r["top5"][0] for r in kept] == expected
    top1 = [r for r in evals if r["task"] == "classification" and r["metric"] == "top1"][0]
    labels = [r["label"] for r in kept]
    assert top1["value"] == pytest.approx(100 * np.mean([e == y for e, y in zip(expected, labels)]))

    # analysis reads it as any run, at its final "budget" of 0 samples
    frame = final_values(metrics(store))
    row = frame[(frame["task"] == "classification") & (frame["metric"] == "top1")]
    assert list(row["model"]) == [f"hf:{folders[kind]}"] and list(row["value"]) == [top1["value"]]


def test_the_same_spec_and_settings_write_one_folder_and_other_settings_another(folders, tmp_path):
    out = tmp_path / "results" / "runs"
    for _ in range(2):
        assert evaluate(folders["clip"], out, "classification") == 0
    (first,) = list(out.iterdir())
    assert len([r for r in read_jsonl(first / "evals.jsonl") if r["metric"] == "top1"]) == 1  # not appended twice
    assert main([f"hf:{folders['clip']}", "--tasks", "classification", "--size", "8", "--frames", "4",
                 "--output-dir", str(out)]) == 0
    second = [p for p in out.iterdir() if p != first]
    assert len(second) == 1 and read_json(second[0] / "run.json")["config"]["data"]["shapes"]["frames"] == 4


@pytest.mark.parametrize("kind", ["clip", "siglip", "siglip2"])
def test_the_adapter_embeds_a_video_as_the_mean_of_its_frames(folders, kind):
    adapter = load_hf(str(folders[kind]), f"hf:{kind}")
    model, processor = AutoModel.from_pretrained(folders[kind]).eval(), AutoImageProcessor.from_pretrained(folders[kind])
    world = ShapesWorld(ShapesConfig(frames=FRAMES, size=adapter.image_size))
    clips = [world.clip("val", i) for i in range(3)]
    video = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W), as the tasks batch it
    got = adapter.embed({"video": video})
    inputs = processor(images=[f for c in clips for f in c], return_tensors="pt")
    with torch.no_grad():
        out = model.get_image_features(**inputs)
    raw = getattr(out, "pooler_output", out).view(len(clips), FRAMES, -1)
    frames = F.normalize(raw, dim=-1)
    assert adapter.image_size == SIZE
    assert torch.allclose(got, F.normalize(frames.mean(1), dim=-1), atol=1e-5)
    # the check can fail: the first frame alone, or the mean of unnormalised frames, is another embedding
    assert not torch.allclose(got, frames[:, 0], atol=1e-3)
    assert not torch.allclose(got, F.normalize(raw.mean(1), dim=-1), atol=1e-4)
    assert torch.allclose(adapter.score({"video": video}, ["a red circle", "a blue square"]),
                          got @ adapter.embed_text(["a red circle", "a blue square"]).T)


def test_a_dataset_folder_is_read_at_the_models_frames_and_size(folders, tmp_path, monkeypatch):
    shapes, embed = set(), HFDualEncoder.embed

    def seen(self, batch):  # the clip shape every batch arrives at
        shapes.add(tuple(batch["video"].shape[1:]))
        return embed(self, batch)

    monkeypatch.setattr(HFDualEncoder, "embed", seen)
    rng = np.random.default_rng(0)
    names, templates = ["red thing", "blue circle", "green square"], ["a video of a {}.", "{}"]
    for i in range(6):  # 48 px, 6 frames: decoded at the model's 32 px and the 4 frames asked for
        write_video(tmp_path / "d" / f"{i}.mp4", rng.integers(0, 255, (6, 48, 48, 3), dtype=np.uint8), fps=4, lossless=True)
    (tmp_path / "d" / "dataset.yaml").write_text(json.dumps(
        {"tasks": {"classification": {"annotations": "list.txt", "classnames": "names.txt", "templates": "t.txt"}}}))
    (tmp_path / "d" / "names.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "d" / "t.txt").write_text("\n".join(templates) + "\n")
    (tmp_path / "d" / "list.txt").write_text("".join(f"{i}.mp4 {i % 3}\n" for i in range(6)))
    out = tmp_path / "runs"
    assert main([f"hf:{folders['clip']}", "--sets", f"classification={tmp_path / 'd'}", "--frames", "4",
                 "--output-dir", str(out)]) == 0
    (run,) = list(out.iterdir())
    assert read_json(run / "run.json")["adapter"]["frames"] == 4 and shapes == {(4, 3, SIZE, SIZE)}
    model, tok = AutoModel.from_pretrained(folders["clip"]).eval(), AutoTokenizer.from_pretrained(folders["clip"])
    processor = AutoImageProcessor.from_pretrained(folders["clip"])
    videos = torch.stack([hand_video_embedding(model, processor, read_clip(tmp_path / "d" / f"{i}.mp4", 4, SIZE))
                          for i in range(6)])
    scores = torch.stack([videos @ hand_text_embeddings(model, tok, [t.format(n) for n in names], "longest").T
                          for t in templates]).mean(0)
    (kept,) = [read_jsonl(f) for f in (run / "predictions" / f"{0:012d}").glob("classification__*.jsonl")
               if not f.name.endswith(".outcomes.jsonl")]  # the set is named by its path
    assert [r["top5"] for r in kept] == scores.argsort(1, descending=True).tolist()  # every class's rank


def test_specs_that_cannot_be_evaluated_say_why(folders, tmp_path, capsys):
    not_dual = tmp_path / "bert"
    not_dual.mkdir()
    (not_dual / "config.json").write_text(json.dumps({"model_type": "bert"}))
    try:  # open_clip's own cases: tests/test_reference_openclip.py
        import open_clip  # noqa: F401

        without_weights = "no weights"
    except ImportError:
        without_weights = "open_clip is not importable here"
    cases = {f"hf:{tmp_path / 'missing'}": "no transformers config", f"hf:{not_dual}": "model_type 'bert'",
             "open_clip:ViT-B-32": without_weights, "hf:": "nothing after 'hf:'"}
    for spec, says in cases.items():
        assert main([spec, "--output-dir", str(tmp_path / "runs")]) == 2, spec
        err = capsys.readouterr().err
        assert says in err and spec in err, err
    with pytest.raises(SystemExit):  # a run's checkpoint is read at the run's own clip shape
        main([str(tmp_path), "--frames", "4"])
    assert "--frames and --output-dir are for a reference spec" in capsys.readouterr().err
    with pytest.raises(ReferenceModelError, match="at least 1 frame"):
        HFDualEncoder(AutoModel.from_pretrained(folders["clip"]), tokenizer(), CLIPImageProcessor(), "hf:x", frames=0)
    assert not (tmp_path / "runs").exists()
