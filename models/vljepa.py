"""VL-JEPA: predict the embedding of the target text, not its tokens.

    video -> frozen X-encoder -> linear -> [visual tokens][query tokens] -> predictor (the last N
    layers of a causal LM, attention bidirectional or causal) -> mean over non-padding positions
    -> linear head -> predicted embedding (D)
    target text -> Y-encoder (its own LR multiplier; 0 = frozen) -> mean pool -> linear head -> D
    loss(predicted, target) chosen by name (models/losses.py)

At inference the predicted embedding is compared with Y-encoded candidate texts (classification,
retrieval, VQA, world prediction), or turned into text by the Y-decoder (captioning).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.config import ModelConfig
from models.decoder import YDecoder, y_decoding
from models.encoders import TextEncoder, XEncoder, masked_mean
from models.lm import additive_mask, load_lm, positions
from models.losses import build_loss
from models.protocol import Batch, Candidates, count_parameters, decay_groups, encoder_parity, score_by_embedding
from models.registry import register
from models.step_targets import StepTargets
from models.visual_scale import VisualScale


class VLJEPA(nn.Module):
    has_embedding = True

    def __init__(self, cfg: ModelConfig, seed: int = 0, meta: bool = False):
        super().__init__()
        self.cfg = cfg
        self.x_encoder = XEncoder(cfg.x_encoder, seed, meta)
        lm, self.tokenizer = load_lm(cfg.lm, seed, meta)
        self.predictor = lm.model  # layers, final norm, rotary embedding, token embeddings; no LM head
        width = self.predictor.config.hidden_size
        self.causal = cfg.attention == "causal"
        self.y_encoder = TextEncoder(cfg.y_encoder, seed, meta)
        device = "meta" if meta else None
        self.vis_scale = VisualScale(cfg.visual_scale, self.predictor.embed_tokens)  # draws no random numbers
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vis_proj = nn.Linear(self.x_encoder.dim, width, device=device)
            self.pred_head = nn.Linear(width, cfg.embed_dim, device=device)
            if cfg.y_encoder.head:
                self.y_head = nn.Linear(self.y_encoder.dim, cfg.embed_dim, device=device)
            elif self.y_encoder.dim == cfg.embed_dim:
                self.y_head = nn.Identity()
            else:
                raise ValueError(f"model.y_encoder.head is false, so model.embed_dim ({cfg.embed_dim}) must equal "
                                 f"the Y-encoder's width ({self.y_encoder.dim})")
        self.loss_fn = build_loss(cfg.loss)
        self.decoder: YDecoder | None = None
        if cfg.decoder.checkpoint and not meta:
            self.decoder = YDecoder.load(cfg.decoder.checkpoint)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._step: StepTargets | None = None  # inside step_targets(): the optimizer step's one target encoding

    # ---------------------------------------------------------------- the two sides
    def _query_tokens(self, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.vis_proj.weight.device
        if not any(queries):
            return torch.zeros(len(queries), 0, dtype=torch.long, device=device), \
                torch.zeros(len(queries), 0, dtype=torch.long, device=device)
        tok = self.tokenizer(list(queries), padding=True, truncation=True, max_length=self.cfg.lm.max_query_tokens,
                             add_special_tokens=False, return_tensors="pt").to(device)
        return tok["input_ids"], tok["attention_mask"]

    def predictor_states(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The predictor's output at every position, (B, L, width), and the key mask (B, L)."""
        vis = self.vis_scale(self.vis_proj(self.x_encoder.tokens(batch).to(self.vis_proj.weight.dtype)))
        ids, qmask = self._query_tokens(batch["query"])
        x = torch.cat([vis, self.predictor.embed_tokens(ids).to(vis.dtype)], 1)
        keep = torch.cat([torch.ones(vis.shape[:2], dtype=qmask.dtype, device=vis.device), qmask], 1)
        if bool(keep.all()):  # no padding: no mask tensor, so attention takes its fused kernel (flash on a GPU)
            direction = {} if self.causal else {"is_causal": False}
            h = self.predictor(inputs_embeds=x, position_ids=positions(keep), **direction).last_hidden_state
        else:
            mask = additive_mask(keep, self.causal, x.dtype)
            h = self.predictor(inputs_embeds=x, attention_mask=mask, position_ids=positions(keep)).last_hidden_state
        return h, keep

    def predict(self, batch: Batch) -> torch.Tensor:
        """(B, D): the predicted embedding of the answer to each sample's query."""
        h, keep = self.predictor_states(batch)
        return self.pred_head(masked_mean(h, keep))

    def encode_targets(self, texts: list[str]) -> torch.Tensor:
        """(B, D): the Y-encoder's embedding of each text in the shared space."""
        return self.y_head(self.y_encoder(list(texts)))

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings for scoring; in eval mode each distinct text is encoded once
        and cached until the next train() (class names are not re-encoded for every sample)."""
        if self.training:
            return F.normalize(self.encode_targets(texts), dim=-1)
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            with torch.no_grad():
                emb = F.normalize(self.encode_targets(missing).float(), dim=-1)
            self._text_cache.update(zip(missing, emb))
        return torch.stack([self._text_cache[t] for t in texts])

    def train(self, mode: bool = True) -> VLJEPA:
        self._text_cache.clear()
        return super().train(mode)

    # ---------------------------------------------------------------- the protocol
    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        pred = self.predict(batch)
        texts = list(batch["target"])
        step = self._step if self.training else None
        target = step.targets(texts, pred.device) if step else self.encode_targets(texts)
        same = torch.tensor([[a == b for b in texts] for a in texts], device=pred.device)
        out = self.loss_fn(pred, target, same)
        return step.finish(out) if step else out

    forward = loss

    @contextlib.contextmanager
    def step_targets(self, targets: list[list[str]]) -> Iterator[None]:
        """train.encode_targets=step: inside the block, the loss() of each of the optimizer step's
        micro-batches (their target texts, in order) reads its targets from one encoding of them all
        (models/step_targets.py)."""
        self._step = StepTargets(targets, self.y_encoder, self.y_head, backbone_trains=not self.y_encoder.frozen)
        try:
            yield
        finally:
            self._step = None

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        main = [(n, p) for n, p in self.named_parameters()
                if not n.startswith(("y_encoder.", "x_encoder.", "decoder."))]
        groups = decay_groups(main, lr, weight_decay, "predictor")
        mult = self.cfg.y_encoder.lr_multiplier
        if mult > 0:
            groups += decay_groups(list(self.y_encoder.named_parameters()), lr * mult, weight_decay, "y_encoder")
        return groups  # the schedule scales each group's own lr, so the multiplier holds throughout

    @torch.no_grad()
    def embed(self, batch: Batch) -> torch.Tensor:
        return F.normalize(self.predict(batch).float(), dim=-1)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """(N, D) unit-norm Y-side embeddings of texts (the text-only hard-negative test)."""
        return self.encode_texts(list(texts))

    @torch.no_grad()
    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        return score_by_embedding(self.embed(batch), candidates, self.encode_texts)

    @torch.no_grad()
    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        if self.decoder is None:
            raise RuntimeError("VL-JEPA generates text through a Y-decoder: inside `with model.decoding(...)`, or "
                               "with model.decoder.checkpoint set to a folder written by YDecoder.save")
        return self.decoder.generate(self.embed(batch), max_tokens)

    def decoding(self, data, steps: int, seed: int, log=None):
        """A Y-decoder for the embedding space as it is now (models/decoder.py), for a with-block."""
        return y_decoding(self, data, steps, seed, log)

    def frozen_text_encoder(self) -> TextEncoder | None:
        return self.y_encoder if self.y_encoder.frozen else None

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        parts = {"x_encoder": self.x_encoder, "predictor": self.predictor, "vis_proj": self.vis_proj,
                 "pred_head": self.pred_head, "y_encoder": self.y_encoder, "y_head": self.y_head,
                 "loss": self.loss_fn}
        if self.decoder is not None:
            parts["y_decoder"] = self.decoder
        return {k: count_parameters(v) for k, v in parts.items()}

    def parity(self) -> dict[str, Any]:
        return {**encoder_parity(self.x_encoder, self.tokenizer), **self.y_encoder.parity()}


@register("vljepa")
def build(cfg: ModelConfig, seed: int = 0, meta: bool = False) -> VLJEPA:
    return VLJEPA(cfg, seed, meta)
