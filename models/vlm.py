"""The token-space twin: a classical VLM that predicts the target's tokens.

    video -> the same frozen X-encoder -> linear -> [visual tokens][query][target, EOS] -> causal LM
    (a slice of the same LM's layers: the predictor's, or all of them) -> cross-entropy on the
    target tokens only.

score() is the length-normalised log-likelihood of each candidate (the paper's perplexity protocol,
models/candidate_scoring.py): the prefix runs once, and the candidates' tokens run on its KV cache a trie
level at a time, each distinct beginning of a sample's candidates once. generate() is greedy decoding with
the KV cache.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.candidate_scoring import CACHE_TOKENS, LOGIT_ROWS, score_candidates
from models.config import ModelConfig
from models.encoders import XEncoder
from models.lm import greedy_decode, load_lm, positions
from models.protocol import Batch, Candidates, count_parameters, decay_groups, encoder_parity
from models.registry import register
from models.visual_scale import VisualScale


class VLM(nn.Module):
    has_embedding = False
    logit_rows = LOGIT_ROWS  # score()'s memory bounds (models/candidate_scoring.py)
    score_cache_tokens = CACHE_TOKENS

    def __init__(self, cfg: ModelConfig, seed: int = 0, meta: bool = False):
        super().__init__()
        self.cfg = cfg
        self.x_encoder = XEncoder(cfg.x_encoder, seed, meta)
        self.lm, self.tokenizer = load_lm(cfg.lm, seed, meta)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vis_proj = nn.Linear(self.x_encoder.dim, self.lm.config.hidden_size,
                                      device="meta" if meta else None)
        self.vis_scale = VisualScale(cfg.visual_scale, self.lm.model.embed_tokens)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    def _tokens(self, texts: list[str], side: str, max_length: int, eos: bool = False):
        device = self.vis_proj.weight.device
        texts = [t + self.tokenizer.eos_token for t in texts] if eos else list(texts)
        if not any(texts):
            empty = torch.zeros(len(texts), 0, dtype=torch.long, device=device)
            return empty, empty
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, padding_side=side,
                             add_special_tokens=False, return_tensors="pt").to(device)
        return tok["input_ids"], tok["attention_mask"]

    def _prefix(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """[padding][visual tokens][query]: embeddings (B, P, H) and key mask (B, P). All padding goes
        first, so the last position of every row is a real token (what comes next is predicted there)."""
        vis = self.vis_scale(self.vis_proj(self.x_encoder.tokens(batch).to(self.vis_proj.weight.dtype)))
        ids, qmask = self._tokens(batch["query"], "right", self.cfg.lm.max_query_tokens)
        x = torch.cat([vis, self.lm.model.embed_tokens(ids).to(vis.dtype)], 1)
        keep = torch.cat([torch.ones(vis.shape[:2], dtype=torch.long, device=vis.device), qmask.long()], 1)
        order = torch.argsort(keep, dim=1, stable=True)  # zeros (padding) first, tokens keep their order
        return x.gather(1, order[..., None].expand_as(x)), keep.gather(1, order)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        prefix, pkeep = self._prefix(batch)
        ids, tmask = self._tokens(batch["target"], "right", self.cfg.lm.max_target_tokens, eos=True)
        x = torch.cat([prefix, self.lm.model.embed_tokens(ids).to(prefix.dtype)], 1)
        keep = torch.cat([pkeep, tmask.long()], 1)
        h = self.lm.model(inputs_embeds=x, attention_mask=keep, position_ids=positions(keep)).last_hidden_state
        P = prefix.shape[1]
        logits = self.lm.lm_head(h[:, P - 1:-1])  # position P-1+i predicts target token i
        labels = ids.masked_fill(tmask == 0, -100)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return {"loss": loss}

    forward = loss

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        named = [(n, p) for n, p in self.named_parameters() if not n.startswith("x_encoder.")]
        return decay_groups(named, lr, weight_decay, "lm")

    @torch.no_grad()
    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        """(B, K) mean log-likelihood per candidate token, its EOS included (models/candidate_scoring.py): the prefix
        once, the candidates' tokens on its KV cache a trie level at a time, in groups of bounded memory."""
        prefix, pkeep = self._prefix(batch)
        return score_candidates(self.lm, prefix, pkeep, candidates, self._candidate_tokens,
                                logit_rows=self.logit_rows, cache_tokens=self.score_cache_tokens)

    def _candidate_tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates as training reads a target: right-padded, EOS after each, at most max_target_tokens."""
        return self._tokens(texts, "right", self.cfg.lm.max_target_tokens, eos=True)

    @torch.no_grad()
    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        prefix, keep = self._prefix(batch)
        rows = greedy_decode(self.lm, prefix, keep, self.eos_id, max_tokens or self.cfg.lm.max_target_tokens)
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

    def embed(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError("the token-space VLM has no embedding stream (has_embedding is False)")

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        return {"x_encoder": count_parameters(self.x_encoder), "lm": count_parameters(self.lm),
                "vis_proj": count_parameters(self.vis_proj)}

    def parity(self) -> dict[str, Any]:
        return encoder_parity(self.x_encoder, self.tokenizer)


@register("vlm")
def build(cfg: ModelConfig, seed: int = 0, meta: bool = False) -> VLM:
    return VLM(cfg, seed, meta)
