"""Each loss against an independent hand computation on small tensors (numpy, loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.losses import LossConfig, build_loss, epps_pulley

rng = np.random.default_rng(0)
P = rng.normal(size=(4, 3))
T = rng.normal(size=(4, 3))


def _t(x):
    return torch.tensor(x, dtype=torch.float32)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_infonce_matches_hand_computation():
    tau = 0.1
    loss = build_loss(LossConfig(name="infonce", temperature=tau, learn_temperature=False))
    got = loss(_t(P), _t(T))["loss"].item()
    s = _unit(P) @ _unit(T).T / tau
    row = np.mean([-s[i, i] + math.log(sum(math.exp(s[i, j]) for j in range(4))) for i in range(4)])
    col = np.mean([-s[i, i] + math.log(sum(math.exp(s[j, i]) for j in range(4))) for i in range(4)])
    assert got == pytest.approx((row + col) / 2, rel=1e-5)


def test_infonce_masks_duplicate_targets():
    tau = 0.1
    loss = build_loss(LossConfig(name="infonce", temperature=tau, learn_temperature=False))
    same = torch.zeros(4, 4, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True  # samples 0 and 1 have the same target text
    got = loss(_t(P), _t(T), same)["loss"].item()
    s = _unit(P) @ _unit(T).T / tau
    def allowed(i, j):
        return i == j or {i, j} != {0, 1}

    row = np.mean([-s[i, i] + math.log(sum(math.exp(s[i, j]) for j in range(4) if allowed(i, j))) for i in range(4)])
    col = np.mean([-s[i, i] + math.log(sum(math.exp(s[j, i]) for j in range(4) if allowed(j, i))) for i in range(4)])
    assert got == pytest.approx((row + col) / 2, rel=1e-5)


def test_infonce_temperature_is_learnable_and_clamped():
    loss = build_loss(LossConfig(name="infonce", temperature=0.07, min_temperature=0.05))
    assert loss.log_t.requires_grad
    with torch.no_grad():
        loss.log_t.fill_(math.log(0.001))
    assert loss.temperature.item() == pytest.approx(0.05)
    fixed = build_loss(LossConfig(name="infonce", learn_temperature=False))
    assert not fixed.log_t.requires_grad


def test_cosine_l1_l2():
    cos = np.mean([1 - P[i] @ T[i] / np.linalg.norm(P[i]) / np.linalg.norm(T[i]) for i in range(4)])
    assert build_loss(LossConfig(name="cosine"))(_t(P), _t(T))["loss"].item() == pytest.approx(cos, rel=1e-5)
    assert build_loss(LossConfig(name="l1"))(_t(P), _t(T))["loss"].item() == pytest.approx(np.abs(P - T).mean(), rel=1e-5)
    assert build_loss(LossConfig(name="l2"))(_t(P), _t(T))["loss"].item() == pytest.approx(((P - T) ** 2).mean(), rel=1e-5)


def test_vicreg_matches_hand_computation():
    w = [25.0, 25.0, 1.0]
    got = build_loss(LossConfig(name="vicreg", vicreg_weights=w))(_t(P), _t(T))

    def var(x):
        return np.mean([max(0.0, 1 - math.sqrt(np.var(x[:, d], ddof=1) + 1e-4)) for d in range(x.shape[1])])

    def cov(x):
        c = np.cov(x, rowvar=False)
        return sum(c[i, j] ** 2 for i in range(3) for j in range(3) if i != j) / 3

    inv = ((P - T) ** 2).mean()
    expect = w[0] * inv + w[1] * (var(P) + var(T)) + w[2] * (cov(P) + cov(T))
    assert got["loss"].item() == pytest.approx(expect, rel=1e-4)


def test_epps_pulley_matches_hand_computation_and_prefers_gaussians():
    z = rng.normal(size=(50, 1))
    ts = np.linspace(-3, 3, 17)
    err = [(np.mean(np.cos(t * z[:, 0])) - math.exp(-t * t / 2)) ** 2 + np.mean(np.sin(t * z[:, 0])) ** 2 for t in ts]
    f = np.array(err) * np.exp(-ts ** 2 / 2)
    expect = 50 * sum((f[i] + f[i + 1]) / 2 * (ts[i + 1] - ts[i]) for i in range(16))
    assert epps_pulley(_t(z))[0].item() == pytest.approx(expect, rel=1e-4)
    gaussian = epps_pulley(torch.randn(512, 8)).mean()
    collapsed = epps_pulley(torch.full((512, 8), 0.3)).mean()
    assert gaussian < collapsed


def test_sigreg_combines_invariance_and_regulariser():
    torch.manual_seed(0)
    out = build_loss(LossConfig(name="sigreg", sigreg_weight=0.5, sigreg_slices=16))(_t(P), _t(T))
    assert out["invariance"].item() == pytest.approx(((P - T) ** 2).mean(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * out["invariance"].item() + 0.5 * out["sigreg"].item(), rel=1e-5)
