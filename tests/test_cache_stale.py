"""A cache entry that other code built under the same key is caught when it is opened, with its path in the
message, for the X features and for the feature statistics alike."""

from __future__ import annotations

import numpy as np
import pytest

from bench.cache import StaleCacheError, feature_statistics, x_features
from bench.config import load_run_config
from bench.data.shapes import ShapesWorld, WorldClips
from models.encoders import XEncoder
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def encoder_and_clips():
    cfg = load_run_config("base/tiny.yaml", tiny_overrides())
    clips = WorldClips(ShapesWorld(cfg.data.shapes), "test")
    return XEncoder(cfg.model.x_encoder, cfg.seed), clips


def test_an_x_feature_entry_with_other_values_is_refused_naming_it(tmp_path, encoder_and_clips):
    x, clips = encoder_and_clips
    good = np.array(x_features(x, clips, tmp_path))
    assert np.array_equal(np.array(x_features(x, clips, tmp_path)), good)  # reopened: checked and accepted
    (path,) = (tmp_path / "x_features").glob("*.npy")
    stale = good.copy()
    stale[0] *= 1.01  # what a change to the encoder's code or library could leave behind
    np.save(path, stale)
    with pytest.raises(StaleCacheError, match=str(path)):
        x_features(x, clips, tmp_path)


def test_feature_statistics_carry_a_probe_that_catches_a_stale_entry(tmp_path, encoder_and_clips):
    x, clips = encoder_and_clips
    mean, std, count = feature_statistics(x, clips, 50, tmp_path)
    again = feature_statistics(x, clips, 50, tmp_path)
    assert np.array_equal(again[0], mean) and again[2] == count
    (path,) = (tmp_path / "x_feature_stats").glob("*.npz")
    with np.load(path) as z:
        fields = dict(z)
    np.savez(path, **{**fields, "probe": fields["probe"] + 0.05})
    with pytest.raises(StaleCacheError, match="x_feature_stats"):
        feature_statistics(x, clips, 50, tmp_path)
