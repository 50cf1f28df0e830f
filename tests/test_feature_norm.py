"""The frozen encoder's feature standardization (model.x_encoder.normalize): what it computes, that twins and
seeds share it, that a checkpoint carries it, and that a run records it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.cache import fit_feature_norm, world_features
from bench.config import load_run_config, run_id
from bench.data.loader import collate
from bench.data.shapes import ShapesWorld, TrainSamples
from bench.results import RunDir
from bench.run.build import build_model
from bench.run.checkpoint import read_latest
from bench.tools.evaluate import load_checkpointed_model
from tests.conftest import tiny_overrides
from tests.tinyrun import cfg_for, run_in_process

STANDARDIZE = "model.x_encoder.normalize=standardize"


def _fitted(name: str, seed: int, *extra: str):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(f"model.name={name}", f"seed={seed}", STANDARDIZE, *extra))
    model = build_model(cfg, log=None)
    fit_feature_norm(model, TrainSamples(cfg.data, cfg.seed))
    return cfg, model


def test_standardized_training_features_have_mean_0_and_sd_1_in_every_dimension():
    cfg, model = _fitted("vljepa", 0, "model.x_encoder.normalize_clips=100000")  # every training clip
    raw = torch.from_numpy(np.array(world_features(model.x_encoder, ShapesWorld(cfg.data.shapes))))
    out = model.x_encoder.tokens({"x_features": raw}).double().flatten(0, -2)
    assert out.mean(0).abs().max() < 1e-4
    assert (out.std(0, unbiased=False) - 1).abs().max() < 1e-3
    # what it removes: a component every clip shares, larger than what tells the clips apart
    flat = raw.double().flatten(0, -2)
    assert flat.mean(0).norm() > (flat - flat.mean(0)).norm(dim=-1).mean()
    # the video path (no feature cache) is standardized alike
    world = ShapesWorld(cfg.data.shapes)
    video = collate([{"video": world.clip("train", i)} for i in range(2)])["video"]
    assert torch.allclose(model.x_encoder.tokens({"video": video}), model.x_encoder.tokens({"x_features": raw[:2]}),
                          atol=1e-4)


def test_twins_and_seeds_share_one_standardization_and_a_checkpoint_carries_it():
    _, jepa = _fitted("vljepa", 0)
    _, vlm = _fitted("vlm", 1)
    assert jepa.parity()["x_feature_norm_hash"] == vlm.parity()["x_feature_norm_hash"]
    cfg = load_run_config("base/tiny.yaml", tiny_overrides("model.name=vlm", "seed=1", STANDARDIZE))
    fresh = build_model(cfg, log=None)
    with pytest.raises(RuntimeError, match="never measured"):
        fresh.x_encoder.tokens({"x_features": torch.zeros(1, 4, fresh.x_encoder.dim)})
    fresh.load_state_dict(vlm.state_dict())
    assert fresh.parity()["x_feature_norm_hash"] == vlm.parity()["x_feature_norm_hash"]
    # off by default: no buffers (every earlier checkpoint still loads), and no change to any run_id
    default = load_run_config("base/tiny.yaml", tiny_overrides())
    assert not any("feature_" in k for k in build_model(default, log=None).state_dict())
    assert run_id(default) == run_id(load_run_config("base/tiny.yaml", tiny_overrides("model.x_encoder.normalize=none")))
    assert run_id(default) != run_id(load_run_config("base/tiny.yaml", tiny_overrides(STANDARDIZE)))


def test_a_run_records_its_standardization_and_its_checkpoint_evaluates_with_it(tmp_path, monkeypatch):
    cfg = cfg_for(tmp_path, STANDARDIZE, "train.budget.samples=64", "eval.grid=[64]")
    record = run_in_process(cfg)
    assert record["status"] == "done" and record["parity"]["x_feature_norm_hash"]
    run = RunDir.of(tmp_path, run_id(cfg))
    ckpt = run.checkpoints / read_latest(run.checkpoints)["tag"]
    _, model = load_checkpointed_model(run, ckpt)
    assert model.parity()["x_feature_norm_hash"] == record["parity"]["x_feature_norm_hash"]
    # statistics that are not the run's are refused, not used
    state = {k: (v + 1 if k.endswith("feature_mean") else v) for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "tampered.pt")
    monkeypatch.setattr("bench.tools.evaluate.model_state", lambda _: torch.load(tmp_path / "tampered.pt", weights_only=True))
    with pytest.raises(ValueError, match="feature standardization"):
        load_checkpointed_model(run, ckpt)
