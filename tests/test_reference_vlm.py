"""Off-the-shelf generative VLMs evaluated without training (bench/tools/reference.py, models/reference_vlm.py):
`python -m bench.eval hf:FOLDER` on tiny random Idefics3 (SmolVLM's class) and LLaVA folders written here with
save_pretrained (their tokenizer a word-level one over the shapes world's words and the families' special
tokens, their processors the transformers classes: Idefics3 with a chat template, LLaVA without one), nothing
downloaded (HF_HUB_OFFLINE=1, tests/conftest.py). Captioning, classification, VQA and world prediction are
recorded; retrieval, streaming and hardneg are not applicable. The candidate scores are checked against the
model's own forward pass on each prompt + candidate, and greedy captions against the model's own generate()."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForImageTextToText,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from bench.data.text import vocabulary
from bench.data.video import write_video
from bench.results import read_json, read_jsonl, run_dirs
from bench.tools import reference
from bench.tools.evaluate import main
from models.encoders import weight_hash
from models.reference_base import ReferenceModelError
from models.reference_vlm import HFGenerativeVLM, load_hf

SIZE, PATCH, FRAMES, ITEMS = 32, 8, 2, 6
SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
TEXT = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0, bos_token_id=2, tie_word_embeddings=False)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=PATCH,
              image_size=SIZE)
# a SmolVLM-like chat: "User:<image>... query<end_of_utterance>\nAssistant:"
CHAT = ("{% for message in messages %}{{ message['role'] | capitalize }}:{% for c in message['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
        "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
KINDS = ("idefics3", "llava")


def tokenizer() -> PreTrainedTokenizerFast:
    """Word-level over the world's words and the chat's, the families' image tokens special; decoded with spaces."""
    words = [*SPECIAL, *vocabulary(), "User:", "Assistant:"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", additional_special_tokens=SPECIAL[4:])


def build(kind: str, folder: Path) -> Path:
    """A tiny random model of `kind` with its processor, saved as a transformers folder."""
    tok = tokenizer()
    text = {**TEXT, "vocab_size": len(tok)}
    torch.manual_seed(0)
    if kind == "idefics3":  # generation ends at <end_of_utterance>, as SmolVLM-Instruct's does
        eos = tok.convert_tokens_to_ids("<end_of_utterance>")
        model = Idefics3ForConditionalGeneration(Idefics3Config(
            text_config={**text, "eos_token_id": eos}, vision_config=VISION, scale_factor=2,
            image_token_id=tok.convert_tokens_to_ids("<image>")))
        images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": SIZE},
                                           max_image_size={"longest_edge": SIZE})
        processor = Idefics3Processor(images, tok, image_seq_len=(SIZE // PATCH) ** 2 // 4, chat_template=CHAT)
    else:  # LLaVA-1.5's layout: a CLIP vision tower, its patch tokens (CLS dropped), no chat template here
        model = LlavaForConditionalGeneration(LlavaConfig(
            text_config={**text, "eos_token_id": tok.eos_token_id},
            vision_config={**VISION, "model_type": "clip_vision_model", "projection_dim": 16},
            image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
            vision_feature_select_strategy="default"))
        images = CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
        processor = LlavaProcessor(images, tok, patch_size=PATCH, vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference_vlm")
    return {kind: build(kind, root / kind) for kind in KINDS}


def clips(n: int, frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    """(n, frames, 3, SIZE, SIZE) uint8 clips, as the tasks batch them."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, frames, 3, SIZE, SIZE), dtype=np.uint8))


def direct_logp(adapter: HFGenerativeVLM, video: torch.Tensor, query: str, candidate: str) -> torch.Tensor:
    """(tokens,) log p of each of a candidate's tokens (its end token included), one sample alone, from the whole
    model's forward pass on the processor's prompt + those tokens."""
    inputs = adapter.inputs({"video": video[None], "query": [query]})
    ids = torch.tensor([adapter.continuation(candidate) + [adapter.end_id]])
    n = inputs["input_ids"].shape[1]
    full = {**inputs, "input_ids": torch.cat([inputs["input_ids"], ids], 1),
            "attention_mask": torch.ones(1, n + ids.shape[1], dtype=torch.long)}
    with torch.no_grad():
        logits = adapter.model(**full).logits[0, n - 1:-1].float()
    return F.log_softmax(logits, -1).gather(1, ids[0][:, None])[:, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_candidates_are_scored_by_their_log_likelihood_under_the_models_own_forward_pass(folders, kind):
    adapter = load_hf(str(folders[kind]), f"hf:{kind}", frames=FRAMES)
    adapter.lm.lm_head.weight.mul_(40)  # a peaked model: candidates' likelihoods far apart, the best one known
    video = clips(2)
    queries = ["what colour is the circle", "describe"]  # prompts of different lengths: the batch is left-padded
    # shared beginnings (the trie's shared nodes) and different lengths; the first four all of three words
    cands = ["a red circle", "a red square", "a blue square", "the big star", "a red circle moves left", "no"]
    scores = adapter.score({"video": video, "query": queries}, cands)
    for b, query in enumerate(queries):
        per_token = [direct_logp(adapter, video[b], query, c) for c in cands]
        assert torch.allclose(scores[b], torch.stack([t.mean() for t in per_token]), atol=1e-4)
        summed = torch.stack([t.sum() for t in per_token[:4]])  # equal lengths: the mean's argmax is the sum's
        assert int(adapter.score({"video": video[b:b + 1], "query": [query]}, cands[:4]).argmax()) == int(summed.argmax())
        assert sorted(summed.tolist())[-1] - sorted(summed.tolist())[-2] > 0.1  # a clear winner, not a tie
    # one list of candidates per sample scores each sample's own
    own = adapter.score({"video": video, "query": queries}, [cands[:2], cands[2:4]])
    assert torch.allclose(own, torch.stack([scores[0, :2], scores[1, 2:4]]), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_captions_are_the_models_own_greedy_generation(folders, kind):
    adapter = load_hf(str(folders[kind]), f"hf:{kind}", frames=FRAMES)
    batch = {"video": clips(2, seed=1), "query": ["describe the video", "what"]}
    got = adapter.generate(batch, 6)
    inputs = adapter.inputs(batch)
    with torch.no_grad():
        out = adapter.model.generate(**inputs, max_new_tokens=6, do_sample=False, eos_token_id=adapter.end_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    expected = [t.strip() for t in adapter.tokenizer.batch_decode(new, skip_special_tokens=True)]
    assert got == expected and all(got)


@pytest.fixture
def quick(monkeypatch):
    """Captions of 8 tokens scored by CIDEr alone (METEOR's Java start-up alone takes seconds): the default suite's
    budget; the slow case keeps the carrier's settings."""
    carrier = reference.carrier_config

    def short(model, output_dir=None):
        cfg = carrier(model, output_dir)
        decoder = replace(cfg.model.decoder, max_tokens=8)
        return replace(cfg, model=replace(cfg.model, decoder=decoder), eval=replace(cfg.eval, caption_metrics=["CIDEr"]))

    monkeypatch.setattr(reference, "carrier_config", short)


def evaluate(folder: Path, out: Path, *extra: str) -> int:
    return main([f"hf:{folder}", "--tasks", "captioning", "classification", "vqa", "world", "retrieval", "hardneg",
                 "streaming", "--size", str(ITEMS), "--frames", str(FRAMES), "--output-dir", str(out), *extra])


@pytest.mark.parametrize("kind,prompt,end", [("idefics3", "chat_template", "<end_of_utterance>"),
                                             pytest.param("llava", "plain", "<eos>", marks=pytest.mark.slow)])
def test_a_generative_vlm_is_evaluated_into_the_results_store_as_a_run(folders, tmp_path, request, kind, prompt, end):
    if kind == "idefics3":
        request.getfixturevalue("quick")
    store = tmp_path / "results"
    assert evaluate(folders[kind], store / "runs") == 0
    (run,) = list(run_dirs(store))
    record, evals = run.read_record(), read_jsonl(run.evals)
    assert record["reference"] is True and record["status"] == "done" and record["spec"] == f"hf:{folders[kind]}"
    assert record["weights_hash"] == weight_hash(AutoModelForImageTextToText.from_pretrained(folders[kind]))
    adapter = record["adapter"]
    assert (adapter["video_input"], adapter["prompt"], adapter["candidate_end"]) == ("frames_as_images", prompt, end)
    assert adapter["score"] == "mean_token_loglik" and adapter["queries"]["captioning"] == "describe the video"
    assert record["git_commit"] and "transformers" in record["versions"]
    shapes = record["config"]["data"]["shapes"]
    assert (shapes["frames"], shapes["size"]) == (FRAMES, SIZE)  # the model's clip shape
    metrics = {(r["task"], r["metric"]) for r in evals}
    assert {("captioning", "CIDEr"), ("classification", "top1"), ("vqa", "accuracy"), ("world", "accuracy")} <= metrics
    assert not [r for r in evals if r["metric"] == "failed"] and {r["samples_seen"] for r in evals} == {0}
    na = {r["task"]: r for r in evals if r["metric"] == "not_applicable"}
    assert set(na) == set(record["not_applicable"]) == {"retrieval", "streaming", "hardneg"}
    assert all(r["value"] is None and "has none" in r["reason"] for r in na.values())
    kept = run.predictions(0)
    captions = read_jsonl(kept / "captioning__shapes.jsonl")
    assert len(captions) == ITEMS and all(r["prediction"] for r in captions)
    assert len(read_jsonl(kept / "vqa__shapes.jsonl")) == ITEMS


@pytest.mark.slow
def test_a_dataset_folder_is_read_at_the_models_frames_and_size(folders, tmp_path, monkeypatch):
    seen, inputs = set(), HFGenerativeVLM.inputs

    def spy(self, batch):  # the clip shape every batch arrives at
        seen.add(tuple(batch["video"].shape[1:]))
        return inputs(self, batch)

    monkeypatch.setattr(HFGenerativeVLM, "inputs", spy)
    d, rng = tmp_path / "d", np.random.default_rng(0)
    for i in range(4):  # 48 px, 5 frames: decoded at the model's 32 px and its 2 frames
        write_video(d / f"{i}.mp4", rng.integers(0, 255, (5, 48, 48, 3), dtype=np.uint8), fps=4, lossless=True)
    (d / "dataset.yaml").write_text(json.dumps({"tasks": {"captioning": {"annotations": "caps.jsonl"},
                                                          "vqa": {"annotations": "vqa.jsonl"}}}))
    (d / "caps.jsonl").write_text("".join(json.dumps({"video": f"{i}.mp4", "captions": ["a red circle", "a circle"]})
                                          + "\n" for i in range(4)))
    (d / "vqa.jsonl").write_text("".join(json.dumps({"video": f"{i}.mp4", "question": "is there a circle",
                                                     "candidates": ["yes", "no"], "answer": i % 2}) + "\n" for i in range(4)))
    out = tmp_path / "runs"
    assert main([f"hf:{folders['llava']}", "--sets", f"captioning={d}", f"vqa={d}", "--frames", str(FRAMES),
                 "--output-dir", str(out)]) == 0
    (run,) = list(out.iterdir())
    evals = read_jsonl(run / "evals.jsonl")
    assert seen == {(FRAMES, 3, SIZE, SIZE)}
    assert {r["task"] for r in evals if r["metric"] in ("CIDEr", "accuracy")} == {"captioning", "vqa"}
    assert all(r["n"] == 4 for r in evals if r["metric"] in ("CIDEr", "accuracy"))
    assert {r["metric"] for r in evals if r["task"] == "vqa"} >= {"precision", "recall", "f1"}  # yes/no: POPE's
    assert read_json(run / "run.json")["adapter"]["frames"] == FRAMES


def test_generative_specs_that_cannot_be_evaluated_say_why(folders, tmp_path, capsys):
    other = tmp_path / "qwen2_vl"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    assert main([f"hf:{other}", "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"hf:{other}" in err and "model_type 'qwen2_vl'" in err and "generative VLM (idefics3, llava)" in err
    with pytest.raises(ReferenceModelError, match="at least 1 frame"):
        load_hf(str(folders["llava"]), "hf:x", frames=0)
    with pytest.raises(ReferenceModelError, match="expected a generative VLM"):
        load_hf(str(tmp_path / "qwen2_vl"), "hf:y")
    assert not (tmp_path / "runs").exists()
