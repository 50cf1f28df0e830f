"""The token-space twin: a classical VLM that predicts the target's tokens.

    video -> the same frozen X-encoder -> linear -> [visual tokens][query][target, EOS] -> causal LM
    (a slice of the same LM's layers: the predictor's, or all of them) -> cross-entropy on the
    target tokens only.

score() is the length-normalised log-likelihood of each candidate (the paper's perplexity protocol):
the prefix runs once, and the candidates' tokens run on its KV cache a trie level at a time, each
distinct beginning of a sample's candidates once. generate() is greedy decoding with the KV cache.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.config import ModelConfig
from models.encoders import XEncoder
from models.lm import greedy_decode, load_lm, positions
from models.protocol import Batch, Candidates, broadcast_candidates, count_parameters, decay_groups, encoder_parity
from models.registry import register


class VLM(nn.Module):
    has_embedding = False
    logit_rows = 2048  # rows of vocabulary logits materialised at once (1 GiB in fp32 at Llama-3's vocabulary)
    # prefix positions repeated in the KV cache at once (4 GiB at paper scale); the candidate trie's levels hold
    # about twice that while one level's cache is gathered from the last's
    score_cache_tokens = 2**18

    def __init__(self, cfg: ModelConfig, seed: int = 0, meta: bool = False):
        super().__init__()
        self.cfg = cfg
        self.x_encoder = XEncoder(cfg.x_encoder, seed, meta)
        self.lm, self.tokenizer = load_lm(cfg.lm, seed, meta)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vis_proj = nn.Linear(self.x_encoder.dim, self.lm.config.hidden_size,
                                      device="meta" if meta else None)

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
        vis = self.vis_proj(self.x_encoder.tokens(batch).to(self.vis_proj.weight.dtype))
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
        """(B, K) mean log-likelihood per candidate token. The prefix's KV cache is copied for every trie node
        (at most once per candidate), so samples (and, past one sample, candidates) go in groups that hold at
        most `score_cache_tokens` repeated prefix positions at once: memory stays bounded at any K and scale."""
        prefix, pkeep = self._prefix(batch)
        B, P = pkeep.shape
        rows = broadcast_candidates(candidates, B)
        K = len(rows[0])
        group = max(1, self.score_cache_tokens // (K * P))
        return torch.cat([self._score_group(prefix[s:s + group], pkeep[s:s + group], rows[s:s + group])
                          for s in range(0, B, group)])

    def _score_group(self, prefix: torch.Tensor, pkeep: torch.Tensor, rows: list[list[str]]) -> torch.Tensor:
        G, P = pkeep.shape
        K = len(rows[0])
        out = self.lm.model(inputs_embeds=prefix, attention_mask=pkeep, position_ids=positions(pkeep), use_cache=True)
        per = max(1, self.score_cache_tokens // (G * P))  # candidates per chunk
        chunks = [[r[c:c + per] for r in rows] for c in range(0, K, per)]
        return torch.cat([self._score_chunk(out.last_hidden_state[:, -1], out.past_key_values if len(chunks) == 1
                                            else copy.deepcopy(out.past_key_values), pkeep, chunk)
                          for chunk in chunks], 1)

    def _score_chunk(self, last: torch.Tensor, cache, pkeep: torch.Tensor, rows: list[list[str]]) -> torch.Tensor:
        """Each candidate's mean token log-likelihood, walking the candidates' token trie a level at a time.

        A node of level d is a sample's prefix followed by d candidate tokens; candidates of one sample that
        begin alike share their first nodes, and the LM runs each node once (one token, on the KV cache of
        its parent) instead of once per candidate. Class names in prompt templates share most of their
        tokens ("in this clip a red object moves left"): a third of the positions of a padded row per
        candidate. Each token's log-probability is read from its parent node's state."""
        G, P = pkeep.shape
        K = len(rows[0])
        texts = list(dict.fromkeys(c for r in rows for c in r))  # tokenized once each
        table, tmask = self._tokens(texts, "right", self.cfg.lm.max_target_tokens, eos=True)
        where = {t: i for i, t in enumerate(texts)}
        pick = torch.tensor([where[c] for r in rows for c in r], device=table.device)
        ids, lengths = table[pick], tmask.sum(1)[pick]  # (G*K, C) each candidate's tokens, and how many
        logp = torch.zeros(G * K, dtype=torch.float64, device=ids.device)
        node = torch.arange(G, device=ids.device).repeat_interleave(K)  # each candidate's node: level 0, its sample
        root = torch.arange(G, device=ids.device)  # each node's sample
        hidden = last  # (nodes, H): the state of each node of the level, from which its children's tokens are read
        span = int(ids.max()) + 1  # a node is its parent and its token, as one integer: parent * span + token
        for d in range(1, ids.shape[1] + 1):
            live = lengths >= d  # candidates with a d-th token
            logp[live] += self._token_logp(hidden, node[live], ids[live, d - 1]).double()
            more = lengths > d  # candidates whose d-th token has a child: its node runs
            if not bool(more.any()):
                break
            nodes, node_of = torch.unique(node[more] * span + ids[more, d - 1], return_inverse=True)
            parent, token = nodes // span, nodes % span
            if len(parent) != len(hidden) or not torch.equal(parent, torch.arange(len(hidden), device=parent.device)):
                cache.reorder_cache(parent)
            root = root[parent]
            keep = torch.cat([pkeep[root], torch.ones(len(root), d, dtype=pkeep.dtype, device=pkeep.device)], 1)
            hidden = self.lm.model(input_ids=token[:, None], attention_mask=keep, position_ids=positions(keep)[:, -1:],
                                   past_key_values=cache, use_cache=True).last_hidden_state[:, 0]
            node[more] = node_of
        return (logp / lengths.clamp_min(1)).float().view(G, K)

    def _token_logp(self, hidden: torch.Tensor, parent: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """log p(token | the state of its parent node), for each (parent, token), with the LM head in fp32: the
        log-normaliser once per node, in chunks of `logit_rows` rows of the vocabulary, and the token's logit
        once per candidate."""
        weight = self.lm.lm_head.weight.float()
        bias = None if self.lm.lm_head.bias is None else self.lm.lm_head.bias.float()
        lse = torch.cat([F.linear(hidden[s:s + self.logit_rows].float(), weight, bias).logsumexp(-1)
                         for s in range(0, len(hidden), self.logit_rows)])
        logit = (hidden[parent].float() * weight[token]).sum(-1)
        if bias is not None:
            logit = logit + bias[token]
        return logit - lse[parent]

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
