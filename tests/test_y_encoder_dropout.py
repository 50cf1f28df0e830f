"""model.y_encoder.dropout: a fine-tuned Y-encoder's targets without its backbone's dropout, so that the LR
multiplier ablation compares weights, not weights plus dropout noise (issue #39's confound of (c))."""

from __future__ import annotations

import torch

from bench.config import load_run_config
from bench.run.build import build_model
from models.encoders import TextEncoder
from tests.conftest import tiny_overrides

TEXTS = ["a red circle moves left", "two blue squares", "a green triangle grows"]


def _encoder(*extra: str) -> TextEncoder:
    cfg = load_run_config("base/tiny.yaml", tiny_overrides("model.y_encoder.lr_multiplier=0.05", *extra))
    return build_model(cfg, log=None).y_encoder.train()  # the tokenizer resolved as a run resolves it


def test_a_trained_encoder_is_noisy_with_its_dropout_and_deterministic_without_it():
    noisy = _encoder()
    assert noisy.training and not noisy.frozen
    assert not torch.equal(noisy.encode(TEXTS), noisy.encode(TEXTS))  # MiniLM's 0.1 dropout, in train mode
    quiet = _encoder("model.y_encoder.dropout=disabled")
    assert quiet.dropouts_off > 0
    a = quiet.encode(TEXTS)
    assert torch.equal(a, quiet.encode(TEXTS))
    assert torch.allclose(a, quiet.eval().encode(TEXTS), atol=1e-6)  # what a frozen encoder of these weights gives
    assert a.requires_grad  # it still trains


def test_the_option_is_in_parity_and_the_run_id_only_when_set():
    base = load_run_config("base/tiny.yaml", tiny_overrides())
    same = load_run_config("base/tiny.yaml", tiny_overrides("model.y_encoder.dropout=as_configured"))
    off = load_run_config("base/tiny.yaml", tiny_overrides("model.y_encoder.dropout=disabled"))
    assert base.run_id == same.run_id != off.run_id
    assert "y_encoder_dropout" not in _encoder().parity()
    assert _encoder("model.y_encoder.dropout=disabled").parity()["y_encoder_dropout"] == "disabled"
