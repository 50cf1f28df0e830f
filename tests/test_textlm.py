"""The text-pretrained tiny LM both twins start from (model.lm.text_pretraining)."""

from __future__ import annotations

import json

import pytest
import torch

from bench.cache import cache_dir
from bench.config import load_run_config
from bench.configlib import ConfigError
from bench.run import textlm
from bench.run.build import build_model
from bench.run.resolve import resolve_model_config
from bench.sweep.plan import check_parity, expand
from models.encoders import load_tokenizer
from tests.conftest import tiny_overrides

RECIPE = ["model.lm.text_pretraining.samples=512", "model.lm.text_pretraining.batch=32"]


def tiny(*extra: str):
    return load_run_config("experiments/base/tiny.yaml", tiny_overrides(*extra))


def key_of(cfg) -> str:
    lm = resolve_model_config(cfg.model).lm
    return textlm.cache_key(lm, cfg.data, load_tokenizer(lm.tokenizer, "").get_vocab())


def test_the_cache_key_is_the_lm_and_its_text_not_the_run():
    base = key_of(tiny(*RECIPE))
    # what the twins and their seeds differ in leaves the LM as it is: both start from one LM
    assert key_of(tiny(*RECIPE, "model.name=vlm", "model.lm.layers=:", "seed=3", "train.lr=3e-4")) == base
    # what changes the LM's weights or its text changes the key
    for change in ("model.lm.text_pretraining.samples=1024", "model.lm.text_pretraining.lr=3e-4",
                   "model.lm.text_pretraining.seed=1", "model.lm.backbone.arch.hidden_size=64",
                   "model.lm.backbone.init_seed=1", "data.shapes.paraphrases=3", "data.shapes.world_seed=1"):
        assert key_of(tiny(*RECIPE, change)) != base, change


def test_pretraining_learns_the_text_once_and_both_twins_start_from_it(monkeypatch):
    log: list[str] = []
    jepa = build_model(tiny(*RECIPE), log=log.append)
    folder = cache_dir() / "lms" / key_of(tiny(*RECIPE))
    info = json.loads((folder / textlm.RECORD).read_text())
    assert info["texts"] == 512 and info["held_out_loss_after"] < info["held_out_loss_before"] - 0.5
    assert any("held-out caption loss" in line for line in log)

    def no_second_build(*a, **k):
        raise AssertionError("the cached LM was pretrained again")
    monkeypatch.setattr(textlm, "pretrain", no_second_build)
    vlm = build_model(tiny(*RECIPE, "model.name=vlm", "model.lm.layers=:", "seed=1"))
    # VL-JEPA's predictor is the last 2 of the pretrained LM's 4 layers; the VLM is all of them
    j, v = jepa.predictor.layers, vlm.lm.model.layers
    assert len(v) == 4 and len(j) == 2
    for a, b in zip(j, list(v)[2:]):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(p, q), name
    random = build_model(tiny("model.name=vlm", "model.lm.layers=:", "seed=1"))
    assert not torch.equal(random.lm.model.layers[0].mlp.up_proj.weight, v[0].mlp.up_proj.weight)


def test_a_recipe_needs_a_random_lm_and_the_shapes_world():
    with pytest.raises(ConfigError, match="text_pretraining.samples=512 pretrains a random LM"):
        tiny(*RECIPE, "model.lm.backbone.pretrained=some/hub-id")
    cfg = tiny(*RECIPE)
    with pytest.raises(ValueError, match="reads the shapes world's text"):
        textlm.corpus(type(cfg.data)(source="manifest"), 4, 0)


def test_a_sweep_holds_the_lm_equal_inside_a_comparison_group():
    from bench.sweep.config import load_sweep_config
    path = "experiments/comparison/jepa_vs_vlm.yaml"
    runs = expand(*load_sweep_config(path))
    assert not check_parity(runs, ["model.name", "model.lm.layers"], fingerprints=False)
    runs[1].cfg.model.lm.text_pretraining.samples = 512  # one twin pretrained, the other not: unfair
    problems = check_parity(runs, ["model.name", "model.lm.layers"], fingerprints=False)
    assert any("model.lm.text_pretraining" in p for p in problems)
