"""The caches of frozen encoders: the same numbers as encoding on the fly, built once, shared."""

from __future__ import annotations

import numpy as np
import torch

from bench.cache import CachedSamples, x_features, y_targets
from bench.config import load_run_config
from bench.data.loader import SharedLoader, collate
from bench.data.shapes import ShapesWorld, TrainSamples, WorldClips
from bench.run.build import build_model
from tests.conftest import tiny_overrides


def test_caches_match_on_the_fly_encoding_and_are_built_once(tmp_path):
    cfg = load_run_config("base/tiny.yaml", tiny_overrides("data.shapes.train_size=200", "model.y_encoder.lr_multiplier=0"))
    model = build_model(cfg).eval()
    world = ShapesWorld(cfg.data.shapes)
    feats = x_features(model.x_encoder, WorldClips(world, "train"), tmp_path)
    assert feats.shape == (200, 4, 2048)
    direct = model.x_encoder(collate([{"video": world.clip("train", i)} for i in (0, 137, 199)])["video"])
    assert np.allclose(feats[[0, 137, 199]], direct.numpy(), atol=1e-5)
    path = next((tmp_path / "x_features").glob("*.npy"))
    mtime = path.stat().st_mtime_ns
    x_features(model.x_encoder, WorldClips(world, "train"), tmp_path)
    assert path.stat().st_mtime_ns == mtime  # reused, not rebuilt

    samples = TrainSamples(cfg.data, 0, world)
    texts = samples.possible_targets()
    rows = y_targets(model.y_encoder, texts, tmp_path)
    some = [texts[0], texts[len(texts) // 2]]
    assert np.allclose(rows[[0, len(texts) // 2]], model.y_encoder.encode(some).numpy(), atol=1e-5)
    model.y_encoder.add_cache(texts, rows)
    calls = []
    model.y_encoder.encode = lambda t: calls.append(t)  # a cached text never reaches the encoder
    assert torch.allclose(model.y_encoder(some), torch.from_numpy(rows[[0, len(texts) // 2]]))
    assert calls == []

    batch = next(iter(SharedLoader(CachedSamples(samples, feats), 8, 8, 8)))
    assert "video" not in batch and batch["x_features"].shape == (8, 4, 2048)
    with torch.no_grad():
        cached = model.loss(batch)["loss"]
        raw = model.loss(next(iter(SharedLoader(samples, 8, 8, 8))))["loss"]
    assert torch.allclose(cached, raw, atol=1e-5)


def test_a_frozen_y_encoder_reads_the_hard_negatives_from_the_cache_with_the_same_scores():
    from bench.eval.sets.resolve import load_sets
    from bench.eval.tasks import evaluate
    from bench.eval.tasks.common import EvalContext

    cfg = load_run_config("base/tiny.yaml", tiny_overrides("model.y_encoder.lr_multiplier=0", "eval.size=40",
                                                           "eval.tasks=[hardneg]"))
    model = build_model(cfg).eval()
    world = ShapesWorld(cfg.data.shapes)
    sets = load_sets(cfg, world)
    samples = TrainSamples(cfg.data, 0, world)
    uncached = evaluate(model, EvalContext.from_config(cfg, sets, {}), ["hardneg"])

    ctx = EvalContext.for_run(cfg, model, "sft", torch.device("cpu"), sets, samples)
    calls = []
    encode, model.y_encoder.encode = model.y_encoder.encode, lambda t: calls.append(t) or encode(t)
    cached = evaluate(model, ctx, ["hardneg"])
    assert calls == []  # every anchor, paraphrase and negative came from the cache
    assert [(r["metric"], r["n"]) for r in cached] == [(r["metric"], r["n"]) for r in uncached]
    assert np.allclose([r["value"] for r in cached], [r["value"] for r in uncached])
