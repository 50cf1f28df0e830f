"""A CLIP-style dual encoder on the same frozen X-encoder and Y-encoder: the video's visual tokens,
averaged, through a linear map into the shared space; no predictor, no query. A baseline for what
VL-JEPA's predictor adds (the paper compares against CLIP, SigLIP2 and PE-Core), and the worked
example of "a new baseline is one file": it implements the protocol and registers a name.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.config import ModelConfig
from models.decoder import y_decoding
from models.encoders import TextEncoder, XEncoder
from models.losses import build_loss
from models.protocol import Batch, Candidates, count_parameters, decay_groups, score_by_embedding
from models.registry import register


class DualEncoder(nn.Module):
    has_embedding = True

    def __init__(self, cfg: ModelConfig, seed: int = 0, meta: bool = False):
        super().__init__()
        self.cfg = cfg
        self.x_encoder = XEncoder(cfg.x_encoder, seed, meta)
        self.y_encoder = TextEncoder(cfg.y_encoder, seed, meta)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.video_head = nn.Linear(self.x_encoder.dim, cfg.embed_dim, device="meta" if meta else None)
            self.text_head = nn.Linear(self.y_encoder.dim, cfg.embed_dim, device="meta" if meta else None)
        self.loss_fn = build_loss(cfg.loss)
        self.decoder = None  # a Y-decoder, when one is attached (captioning)

    def encode_video(self, batch: Batch) -> torch.Tensor:
        tokens = self.x_encoder.tokens(batch).to(self.video_head.weight.dtype)
        return self.video_head(tokens.mean(1))

    def encode_targets(self, texts: list[str]) -> torch.Tensor:
        return self.text_head(self.y_encoder(list(texts)))

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        texts = list(batch["target"])
        same = torch.tensor([[a == b for b in texts] for a in texts])
        return self.loss_fn(self.encode_video(batch), self.encode_targets(texts), same.to(self.video_head.weight.device))

    forward = loss

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        named = [(n, p) for n, p in self.named_parameters() if not n.startswith(("x_encoder.", "y_encoder."))]
        groups = decay_groups(named, lr, weight_decay, "heads")
        if self.cfg.y_encoder.lr_multiplier > 0:
            groups += decay_groups(list(self.y_encoder.named_parameters()), lr * self.cfg.y_encoder.lr_multiplier,
                                   weight_decay, "y_encoder")
        return groups

    @torch.no_grad()
    def embed(self, batch: Batch) -> torch.Tensor:
        return F.normalize(self.encode_video(batch).float(), dim=-1)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(self.encode_targets(texts).float(), dim=-1)

    @torch.no_grad()
    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        return score_by_embedding(self.embed(batch), candidates, self.embed_text)

    @torch.no_grad()
    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        if self.decoder is None:
            raise RuntimeError("the dual encoder captions through a Y-decoder: inside `with model.decoding(...)`")
        return self.decoder.generate(self.embed(batch), max_tokens)

    def decoding(self, data, steps: int, seed: int, log=None):
        return y_decoding(self, data, steps, seed, log)

    def frozen_text_encoder(self) -> TextEncoder | None:
        return self.y_encoder if self.y_encoder.frozen else None

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        return {"x_encoder": count_parameters(self.x_encoder), "y_encoder": count_parameters(self.y_encoder),
                "heads": {k: a + b for (k, a), (_, b) in zip(count_parameters(self.video_head).items(),
                                                             count_parameters(self.text_head).items())},
                "loss": count_parameters(self.loss_fn)}

    def parity(self) -> dict[str, Any]:
        return {"x_encoder_hash": self.x_encoder.weight_hash(), "query_tokenizer": None, **self.y_encoder.parity()}


@register("dual_encoder")
def build(cfg: ModelConfig, seed: int = 0, meta: bool = False) -> DualEncoder:
    return DualEncoder(cfg, seed, meta)
