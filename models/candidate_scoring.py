"""Scoring candidate texts after a prefix: each candidate's mean token log-likelihood under a causal LM (the paper's
perplexity protocol), shared by the token-space twin (models/vlm.py) and the generative reference adapter
(models/reference_vlm.py).

The prefix runs once, and the candidates' tokens run on its KV cache a trie level at a time, each distinct beginning
of a sample's candidates once. The prefix's KV cache is copied for every trie node (at most once per candidate), so
samples (and, past one sample, candidates) go in groups that hold at most `cache_tokens` repeated prefix positions at
once: memory stays bounded at any number of candidates and at any scale.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.lm import positions
from models.protocol import Candidates, broadcast_candidates

LOGIT_ROWS = 2048  # rows of vocabulary logits materialised at once (1 GiB in fp32 at Llama-3's vocabulary)
# prefix positions repeated in the KV cache at once (4 GiB at paper scale); the candidate trie's levels hold about
# twice that while one level's cache is gathered from the last's
CACHE_TOKENS = 2**18

Tokens = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


class CausalLM(Protocol):
    """What scoring reads of a language model: its decoder stack `model` (called with inputs_embeds or input_ids,
    attention_mask, position_ids, past_key_values and use_cache; returns last_hidden_state and past_key_values)
    and its head `lm_head` (a linear layer over the vocabulary)."""

    model: nn.Module
    lm_head: nn.Module


@torch.no_grad()
def score_candidates(lm: CausalLM, prefix: torch.Tensor, prefix_mask: torch.Tensor, candidates: Candidates,
                     tokens: Tokens, logit_rows: int = LOGIT_ROWS, cache_tokens: int = CACHE_TOKENS) -> torch.Tensor:
    """(B, K) mean log-likelihood per candidate token, its end token included.

    prefix: (B, P, H) input embeddings, all padding first (the last position of every row a real token, from which
    the first candidate token is read); prefix_mask: (B, P) its key mask. candidates: shared by every sample, or one
    list per sample, all of one length K. tokens(texts) -> (ids, mask): the texts' token ids, right-padded, each
    with the end token after it and cut to the longest scored (the end token kept)."""
    B, P = prefix_mask.shape
    rows = broadcast_candidates(candidates, B)
    K = len(rows[0])
    group = max(1, cache_tokens // (K * P))
    return torch.cat([_score_group(lm, prefix[s:s + group], prefix_mask[s:s + group], rows[s:s + group], tokens,
                                   logit_rows, cache_tokens)
                      for s in range(0, B, group)])


def _score_group(lm: CausalLM, prefix: torch.Tensor, pkeep: torch.Tensor, rows: list[list[str]], tokens: Tokens,
                 logit_rows: int, cache_tokens: int) -> torch.Tensor:
    G, P = pkeep.shape
    K = len(rows[0])
    out = lm.model(inputs_embeds=prefix, attention_mask=pkeep, position_ids=positions(pkeep), use_cache=True)
    per = max(1, cache_tokens // (G * P))  # candidates per chunk
    chunks = [[r[c:c + per] for r in rows] for c in range(0, K, per)]
    return torch.cat([_score_chunk(lm, out.last_hidden_state[:, -1], out.past_key_values if len(chunks) == 1
                                   else copy.deepcopy(out.past_key_values), pkeep, chunk, tokens, logit_rows)
                      for chunk in chunks], 1)


def _score_chunk(lm: CausalLM, last: torch.Tensor, cache, pkeep: torch.Tensor, rows: list[list[str]], tokens: Tokens,
                 logit_rows: int) -> torch.Tensor:
    """Each candidate's mean token log-likelihood, walking the candidates' token trie a level at a time.

    A node of level d is a sample's prefix followed by d candidate tokens; candidates of one sample that begin
    alike share their first nodes, and the LM runs each node once (one token, on the KV cache of its parent)
    instead of once per candidate. Class names in prompt templates share most of their tokens ("in this clip a
    red object moves left"): a third of the positions of a padded row per candidate. Each token's
    log-probability is read from its parent node's state."""
    G, P = pkeep.shape
    K = len(rows[0])
    texts = list(dict.fromkeys(c for r in rows for c in r))  # tokenized once each
    table, tmask = tokens(texts)
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
        logp[live] += _token_logp(lm, hidden, node[live], ids[live, d - 1], logit_rows).double()
        more = lengths > d  # candidates whose d-th token has a child: its node runs
        if not bool(more.any()):
            break
        nodes, node_of = torch.unique(node[more] * span + ids[more, d - 1], return_inverse=True)
        parent, token = nodes // span, nodes % span
        if len(parent) != len(hidden) or not torch.equal(parent, torch.arange(len(hidden), device=parent.device)):
            cache.reorder_cache(parent)
        root = root[parent]
        keep = torch.cat([pkeep[root], torch.ones(len(root), d, dtype=pkeep.dtype, device=pkeep.device)], 1)
        hidden = lm.model(input_ids=token[:, None], attention_mask=keep, position_ids=positions(keep)[:, -1:],
                          past_key_values=cache, use_cache=True).last_hidden_state[:, 0]
        node[more] = node_of
    return (logp / lengths.clamp_min(1)).float().view(G, K)


def _token_logp(lm: CausalLM, hidden: torch.Tensor, parent: torch.Tensor, token: torch.Tensor,
                logit_rows: int) -> torch.Tensor:
    """log p(token | the state of its parent node), for each (parent, token), with the LM head in fp32: the
    log-normaliser once per node, in chunks of `logit_rows` rows of the vocabulary, and the token's logit once per
    candidate."""
    weight = lm.lm_head.weight.float()
    bias = None if lm.lm_head.bias is None else lm.lm_head.bias.float()
    lse = torch.cat([F.linear(hidden[s:s + logit_rows].float(), weight, bias).logsumexp(-1)
                     for s in range(0, len(hidden), logit_rows)])
    logit = (hidden[parent].float() * weight[token]).sum(-1)
    if bias is not None:
        logit = logit + bias[token]
    return logit - lse[parent]
