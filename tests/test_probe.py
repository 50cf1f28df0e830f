"""Linear probes of frozen features: they find what is linearly there and nothing that is not."""

from __future__ import annotations

import numpy as np

from bench.tools.probe import probe


def test_probe_finds_an_encoded_attribute_and_not_a_random_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 800)
    features = rng.normal(size=(800, 4, 16)).astype(np.float32)
    features[:, 1, :4] += 3.0 * np.eye(4)[labels]  # the label, linearly, in one token
    found = probe(features, labels.tolist())
    assert found["accuracy"] > 0.85 and found["classes"] == 4 and found["test"] == 200
    noise = probe(features, rng.integers(0, 4, 800).tolist())
    assert noise["accuracy"] < 0.4 and abs(noise["accuracy"] - 0.25) < 0.1
