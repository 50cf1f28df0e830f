"""The twins behind one protocol: training signal, attention masks, optimizer groups, scoring,
generation, loading through the from_pretrained path, and the paper preset's dimensions."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.config import load_run_config
from bench.data.loader import SharedLoader
from bench.data.shapes import TrainSamples
from bench.run.build import build_model
from bench.run.resolve import resolve_model_config
from models import registry
from models.decoder import YDecoder
from models.encoders import XEncoder
from models.protocol import Model
from tests.conftest import tiny_overrides


def tiny(name: str, *extra: str):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(f"model.name={name}", *extra))
    return cfg, build_model(cfg)


def batches(cfg, n: int, size: int = 32):
    return list(SharedLoader(TrainSamples(cfg.data, cfg.seed), size, size, size * n))


@pytest.mark.parametrize("name", ["vljepa", "vlm"])
def test_twins_train_with_falling_loss(name):
    torch.manual_seed(0)  # the Y-encoder's dropout draws from the global RNG
    # the tests' random BERT embeds every caption nearly parallel: at the default temperature (0.07)
    # 40 steps barely move InfoNCE; a softer one shows learning in the same steps
    cfg, model = tiny(name, "model.loss.temperature=0.2")
    assert isinstance(model, Model)
    data = batches(cfg, 4)
    opt = torch.optim.AdamW(model.param_groups(3e-3, 0.0))
    model.train()
    with torch.no_grad():
        first = [float(model.loss(b)["loss"]) for b in data]
    for _ in range(10):
        for b in data:
            loss = model.loss(b)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        after = [float(model.loss(b)["loss"]) for b in data]
    assert sum(after) < 0.9 * sum(first)


def _states(model, video, queries):
    model.eval()
    with torch.no_grad():
        h, keep = model.predictor_states({"video": video, "query": queries})
    return h


@pytest.mark.parametrize("attention,earlier_changes", [("bidirectional", True), ("causal", False)])
def test_attention_switch(attention, earlier_changes):
    cfg, model = tiny("vljepa", f"model.attention={attention}")
    video = batches(cfg, 1, 2)[0]["video"]
    a = _states(model, video, ["what colour is the square", "what colour is the square"])
    b = _states(model, video, ["what colour is the star", "what colour is the square"])
    V = a.shape[1] - 5  # visual tokens, then 5 query tokens; the last query token differs in row 0
    changed = not torch.allclose(a[0, : V + 4], b[0, : V + 4], atol=1e-6)
    assert changed == earlier_changes
    assert not torch.allclose(a[0, -1], b[0, -1])  # the changed position itself always changes
    assert torch.allclose(a[1], b[1], atol=1e-6)  # the other sample is untouched


def test_padding_is_masked_in_both_modes():
    for attention in ("bidirectional", "causal"):
        cfg, model = tiny("vljepa", f"model.attention={attention}")
        video = batches(cfg, 1, 2)[0]["video"][:1]
        model.eval()
        with torch.no_grad():
            alone = model.predict({"video": video, "query": ["how many objects are there"]})
            padded = model.predict({"video": video.repeat(2, 1, 1, 1, 1),
                                    "query": ["how many objects are there", "how many objects are there in this clip now"]})
        assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_y_encoder_lr_multiplier_is_in_the_optimizer_groups():
    _, model = tiny("vljepa", "model.y_encoder.lr_multiplier=0.05")
    groups = {g["name"]: g for g in model.param_groups(1e-3, 0.01)}
    assert groups["y_encoder"]["lr"] == pytest.approx(5e-5) and groups["predictor"]["lr"] == pytest.approx(1e-3)
    y_params = {id(p) for p in model.y_encoder.parameters()}
    assert y_params == {id(p) for g in groups.values() if g["name"].startswith("y_encoder") for p in g["params"]}
    x_params = {id(p) for p in model.x_encoder.parameters()}
    assert not x_params & {id(p) for g in groups.values() for p in g["params"]}

    _, frozen = tiny("vljepa", "model.y_encoder.lr_multiplier=0")
    assert not any(g["name"].startswith("y_encoder") for g in frozen.param_groups(1e-3, 0.01))
    assert not any(p.requires_grad for p in frozen.y_encoder.parameters())

    _, no_table = tiny("vljepa", "model.y_encoder.lr_multiplier=0.05", "model.y_encoder.train_embeddings=false")
    tuned = {id(p) for g in no_table.param_groups(1e-3, 0.01) if g["name"].startswith("y_encoder") for p in g["params"]}
    table = no_table.y_encoder.backbone.get_input_embeddings().weight
    assert id(table) not in tuned and len(tuned) == len(y_params) - 1


def test_x_encoder_is_frozen_and_identical_in_both_twins():
    _, jepa = tiny("vljepa")
    _, vlm = tiny("vlm", "seed=5")
    jepa.train(), vlm.train()
    for m in (jepa, vlm):
        assert not m.x_encoder.training and not any(p.requires_grad for p in m.x_encoder.parameters())
    assert jepa.parity()["x_encoder_hash"] == vlm.parity()["x_encoder_hash"]


def test_x_encoder_loads_back_through_from_pretrained(tmp_path):
    cfg = load_run_config("base/tiny.yaml")
    direct = XEncoder(cfg.model.x_encoder)
    from transformers import AutoConfig, AutoModel

    full = AutoModel.from_config(AutoConfig.for_model(**cfg.model.x_encoder.backbone.arch))
    full.encoder.load_state_dict(direct.encoder.state_dict())
    full.save_pretrained(tmp_path / "vjepa2-tiny")
    spec = dataclasses.replace(cfg.model.x_encoder.backbone, pretrained=str(tmp_path / "vjepa2-tiny"))
    loaded = XEncoder(dataclasses.replace(cfg.model.x_encoder, backbone=spec))
    assert loaded.weight_hash() == direct.weight_hash()
    video = torch.randint(0, 255, (2, 8, 3, 64, 64), dtype=torch.uint8)
    assert loaded(video).shape == (2, 4, 16 * 128)  # frame_concat: one token per time step
    assert torch.equal(loaded(video), direct(video))


def test_vljepa_scores_and_caches_class_names():
    cfg, model = tiny("vljepa")
    b = batches(cfg, 1, 4)[0]
    model.eval()
    names = ["square moving left", "circle growing", "star rotating"]
    shared = model.score(b, names)
    per_sample = model.score(b, [names] * 4)
    assert shared.shape == (4, 3) and torch.allclose(shared, per_sample, atol=1e-5)
    calls = []
    orig = model.encode_targets
    model.encode_targets = lambda texts: (calls.append(list(texts)), orig(texts))[1]
    model.score(b, names), model.score(b, names)
    assert calls == []  # already cached in eval mode
    model.train()
    assert not model._text_cache


def test_vlm_score_is_the_length_normalised_log_likelihood():
    cfg, model = tiny("vlm")
    b = batches(cfg, 1, 2)[0]
    b["query"] = ["describe the video", ""]
    model.eval()
    long = " ".join(["red square"] * 40)  # past max_target_tokens: cut, as training cuts it
    shared = ["a red square moves left", "a star", "there is a green disc that rises", long]
    # per sample: candidates that share their first tokens (the trie's branches), repeat, or are a prefix of
    # another, in an order that differs between the samples
    own = [shared, ["a red square moves right", "a red square moves left", "a red", "a red"]]
    for cands in (shared, own):
        scores = model.score(b, cands)
        rows = [cands, cands] if isinstance(cands[0], str) else cands
        for i in range(2):  # against an independent full forward pass per candidate, no cache
            for k, c in enumerate(rows[i]):
                one = {"video": b["video"][i:i + 1], "query": [b["query"][i]], "target": [c]}
                nll = model.loss(one)["loss"]
                assert scores[i, k].item() == pytest.approx(-nll.item(), abs=1e-4)



@pytest.mark.parametrize("cache_tokens", [10, 45])  # one sample and one candidate at a time; two samples
def test_vlm_score_in_bounded_memory_equals_one_pass(cache_tokens):
    cfg, model = tiny("vlm")
    b = batches(cfg, 1, 3)[0]
    b["query"] = ["describe the video", "", "what moves"]
    model.eval()
    cands = [["a red square moves left", "a star", "there is a green disc that rises"]] * 3
    whole = model.score(b, cands)
    model.score_cache_tokens = cache_tokens  # prefixes here are 7 positions (4 visual, 3 query), K = 3
    assert torch.allclose(model.score(b, cands), whole, atol=1e-5)

def test_generate_for_both_twins(tmp_path):
    cfg, vlm = tiny("vlm")
    b = batches(cfg, 1, 3)[0]
    vlm.eval()
    texts = vlm.generate(b, max_tokens=6)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)

    cfg, jepa = tiny("vljepa")
    with pytest.raises(RuntimeError, match="Y-decoder"):
        jepa.generate(b)
    resolved = resolve_model_config(cfg.model)
    dec = YDecoder(cfg.model.decoder, cfg.model.embed_dim, resolved.lm.tokenizer)
    captions = [t for batch in batches(cfg, 2, 16) for t in batch["target"]]
    jepa.eval()
    with torch.no_grad():
        emb = jepa.encode_targets(captions)
    losses = dec.fit(emb, captions, steps=40, batch=16, lr=3e-3)
    assert losses[-1] < 0.6 * losses[0]
    path = dec.save(tmp_path / "ydec")
    jepa.decoder = YDecoder.load(path)
    assert torch.equal(jepa.decoder.prefix.weight, dec.prefix.weight)
    out = jepa.generate(b, max_tokens=8)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)



def test_decoder_training_depends_on_its_seed_alone():
    cfg, jepa = tiny("vljepa")
    tokenizer = resolve_model_config(cfg.model).lm.tokenizer
    captions = [t for batch in batches(cfg, 1, 8) for t in batch["target"]]
    with torch.no_grad():
        emb = jepa.encode_targets(captions)
    runs = []
    for state in (1, 2):  # the caller's random state differs; the decoder's training noise must not
        torch.manual_seed(state)
        runs.append(YDecoder(cfg.model.decoder, cfg.model.embed_dim, tokenizer).fit(emb, captions, steps=3, batch=4, seed=5))
    assert runs[0] == runs[1]
    other = YDecoder(cfg.model.decoder, cfg.model.embed_dim, tokenizer).fit(emb, captions, steps=3, batch=4, seed=6)
    assert other != runs[0]

def test_vlm_has_no_embedding_stream():
    _, model = tiny("vlm")
    assert model.has_embedding is False
    with pytest.raises(NotImplementedError):
        model.embed({})


def test_paper_preset_builds_at_paper_dimensions():
    cfg = load_run_config("base/paper.yaml")
    model = build_model(cfg, meta=True)
    counts = model.parameter_counts()
    total = sum(c["trainable"] + c["frozen"] for c in counts.values())
    assert 280e6 < counts["x_encoder"]["frozen"] < 330e6  # V-JEPA 2 ViT-L encoder (304M)
    assert 0.45e9 < counts["predictor"]["trainable"] < 0.53e9  # 8 Llama-3.2-1B layers (paper: 0.5B)
    assert 0.28e9 < counts["y_encoder"]["trainable"] < 0.33e9  # EmbeddingGemma-300M
    assert 1.2e9 < total < 1.9e9  # paper: about 1.6B in all
    assert model.pred_head.out_features == 1536


def test_registry_names_and_errors():
    assert {"vljepa", "vlm"} <= set(registry.names())
    with pytest.raises(KeyError, match="did you mean 'vljepa'"):
        registry.get("vljepaa")
