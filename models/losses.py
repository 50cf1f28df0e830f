"""Losses between predicted embeddings and target embeddings, chosen by name in the config.

Each is an nn.Module (the InfoNCE temperature is a parameter) called as
loss(pred (B, D), target (B, D), same (B, B) bool or None) -> dict with "loss".
`same[i, j]` marks samples whose target texts are identical: InfoNCE does not treat them as negatives.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSSES: dict[str, type[nn.Module]] = {}  # name -> loss class: what model.loss.name chooses among


@dataclass
class LossConfig:
    name: str = field(default="infonce", metadata={"help": "the name of a loss registered in LOSSES below"})
    temperature: float = field(default=0.07, metadata={"gt": 0.0})
    learn_temperature: bool = True
    min_temperature: float = field(default=0.01, metadata={"gt": 0.0})
    mask_duplicates: bool = field(default=True, metadata={"help": "InfoNCE: identical targets are not negatives"})
    vicreg_weights: list[float] = field(default_factory=lambda: [25.0, 25.0, 1.0],
                                        metadata={"help": "invariance, variance, covariance"})
    sigreg_weight: float = field(default=0.05, metadata={"ge": 0.0})
    sigreg_slices: int = field(default=256, metadata={"ge": 1})

    def check(self) -> None:
        if self.name not in LOSSES:
            close = difflib.get_close_matches(self.name, list(LOSSES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"model.loss.name={self.name!r} is not a registered loss{hint} "
                             f"(registered: {', '.join(sorted(LOSSES))})")




def _register(name: str):
    def deco(cls):
        LOSSES[name] = cls
        return cls
    return deco


def build_loss(cfg: LossConfig) -> nn.Module:
    return LOSSES[cfg.name](cfg)


@_register("infonce")
class InfoNCE(nn.Module):
    """Bidirectional InfoNCE on cosine similarities (alignment + uniformity: it cannot collapse).
    The temperature is log-parameterised, learnable or fixed, and clamped below at min_temperature."""

    def __init__(self, cfg: LossConfig):
        super().__init__()
        # shape (1,), not a scalar: DeepSpeed broadcasts parameters as byte views, which 0-d tensors refuse
        self.log_t = nn.Parameter(torch.tensor([math.log(cfg.temperature)]), requires_grad=cfg.learn_temperature)
        self.log_t_min = math.log(cfg.min_temperature)
        self.mask_duplicates = cfg.mask_duplicates

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_t.clamp(min=self.log_t_min).exp()[0]

    def forward(self, pred, target, same=None):
        p, t = F.normalize(pred.float(), dim=-1), F.normalize(target.float(), dim=-1)
        logits = p @ t.T / self.temperature
        if self.mask_duplicates and same is not None:
            off_diag = same & ~torch.eye(len(p), dtype=torch.bool, device=p.device)
            logits = logits.masked_fill(off_diag, float("-inf"))
        labels = torch.arange(len(p), device=p.device)
        loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        acc = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss, "temperature": self.temperature.detach(), "batch_acc": acc.detach()}


@_register("cosine")
class Cosine(nn.Module):
    """1 - cosine similarity: alignment only, no term against collapse."""

    def __init__(self, cfg: LossConfig):
        super().__init__()

    def forward(self, pred, target, same=None):
        return {"loss": (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()}


@_register("l1")
class L1(nn.Module):
    def __init__(self, cfg: LossConfig):
        super().__init__()

    def forward(self, pred, target, same=None):
        return {"loss": (pred.float() - target.float()).abs().mean()}


@_register("l2")
class L2(nn.Module):
    def __init__(self, cfg: LossConfig):
        super().__init__()

    def forward(self, pred, target, same=None):
        return {"loss": (pred.float() - target.float()).pow(2).mean()}


def _variance(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    std = torch.sqrt(x.var(dim=0) + eps)
    return F.relu(1 - std).mean()


def _covariance(x: torch.Tensor) -> torch.Tensor:
    n, d = x.shape
    xc = x - x.mean(0)
    cov = xc.T @ xc / (n - 1)
    off = cov - torch.diag(torch.diag(cov))
    return off.pow(2).sum() / d


@_register("vicreg")
class VICReg(nn.Module):
    """Invariance (MSE) + variance (hinge on each dimension's std) + covariance (off-diagonal),
    the variance and covariance terms on both the predictions and the targets (Bardes et al. 2022)."""

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.w_inv, self.w_var, self.w_cov = cfg.vicreg_weights

    def forward(self, pred, target, same=None):
        p, t = pred.float(), target.float()
        inv = F.mse_loss(p, t)
        var = _variance(p) + _variance(t)
        cov = _covariance(p) + _covariance(t)
        loss = self.w_inv * inv + self.w_var * var + self.w_cov * cov
        return {"loss": loss, "invariance": inv.detach(), "variance": var.detach(), "covariance": cov.detach()}


def epps_pulley(z: torch.Tensor, t_max: float = 3.0, points: int = 17) -> torch.Tensor:
    """Per column of z (N, M): N x the weighted squared distance between the empirical characteristic
    function and that of N(0, 1), integrated over t in [-t_max, t_max] (trapezoid, weight exp(-t^2/2))."""
    t = torch.linspace(-t_max, t_max, points, device=z.device, dtype=z.dtype)
    zt = z.unsqueeze(-1) * t  # (N, M, P)
    real, imag = zt.cos().mean(0), zt.sin().mean(0)  # (M, P)
    gauss = torch.exp(-0.5 * t * t)
    err = (real - gauss).pow(2) + imag.pow(2)
    return z.shape[0] * torch.trapezoid(err * gauss, t, dim=-1)


@_register("sigreg")
class SIGReg(nn.Module):
    """Invariance (MSE) + sketched isotropic Gaussian regularisation of the predictions (LeJEPA,
    Balestriero & LeCun 2025): random unit directions, an Epps-Pulley test of each 1-D projection
    against N(0, 1), averaged. Fresh directions every call, drawn from the global RNG."""

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.weight, self.slices = cfg.sigreg_weight, cfg.sigreg_slices

    def forward(self, pred, target, same=None):
        p, t = pred.float(), target.float()
        inv = F.mse_loss(p, t)
        dirs = F.normalize(torch.randn(p.shape[1], self.slices, device=p.device), dim=0)
        reg = epps_pulley(p @ dirs).mean()
        return {"loss": (1 - self.weight) * inv + self.weight * reg, "invariance": inv.detach(), "sigreg": reg.detach()}
