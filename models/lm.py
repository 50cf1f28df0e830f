"""The causal LM both twins are cut from: a slice of its layers, its final norm, rotary embedding and
token embeddings (VL-JEPA's predictor; the VLM's trunk, which also keeps the LM head)."""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import PreTrainedModel

from models.config import LMConfig
from models.encoders import load_backbone, load_tokenizer


def load_lm(cfg: LMConfig, run_seed: int, meta: bool = False) -> tuple[PreTrainedModel, object | None]:
    """(causal LM with only the layers of cfg.layers, tokenizer). The kept layers are renumbered so
    the KV cache indexes them from 0; with train_embeddings false the token embeddings (and a tied
    head) are frozen."""
    need_tokenizer = not meta or "vocab_size" not in cfg.backbone.arch
    tokenizer = load_tokenizer(cfg.tokenizer, cfg.backbone.pretrained) if need_tokenizer else None
    vocab = {} if "vocab_size" in cfg.backbone.arch else {"vocab_size": len(tokenizer)}
    lm = load_backbone(cfg.backbone, run_seed, causal_lm=True, meta=meta, **vocab)
    layers = lm.model.layers
    kept = list(layers)[cfg.layer_slice()]
    if not kept:
        raise ValueError(f"lm.layers={cfg.layers!r} keeps none of the LM's {len(layers)} layers")
    for i, layer in enumerate(kept):
        layer.self_attn.layer_idx = i
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = i
    lm.model.layers = nn.ModuleList(kept)
    lm.config.num_hidden_layers = len(kept)
    if getattr(lm.config, "layer_types", None):
        lm.config.layer_types = list(lm.config.layer_types)[cfg.layer_slice()]
    if not cfg.train_embeddings:
        lm.model.embed_tokens.weight.requires_grad_(False)
        if lm.lm_head.weight is not lm.model.embed_tokens.weight:
            lm.lm_head.weight.requires_grad_(False)
    return lm, tokenizer


def additive_mask(keep: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) 1/0 key mask -> (B, 1, L, L) additive float mask: 0 where attention is allowed, the
    dtype's minimum elsewhere. Padding keys are always masked; `causal` also masks later keys.
    (A 4D *bool* mask is read with the opposite meaning on some attention paths: never use one.)"""
    B, L = keep.shape
    allowed = keep[:, None, None, :].bool().expand(B, 1, L, L)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=keep.device).tril()
    # a fully padded query row would softmax over nothing: let it see itself
    allowed = allowed | torch.eye(L, dtype=torch.bool, device=keep.device)
    mask = torch.zeros(B, 1, L, L, dtype=dtype, device=keep.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def positions(keep: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding wherever it sits (left, middle or right)."""
    return (keep.long().cumsum(1) - 1).clamp_min(0)


def cut_at_eos(rows: list[list[int]], eos_id: int) -> list[list[int]]:
    return [r[: r.index(eos_id)] if eos_id in r else r for r in rows]


@torch.no_grad()
def greedy_decode(lm: PreTrainedModel, embeds: torch.Tensor, keep: torch.Tensor, eos_id: int,
                  max_tokens: int) -> list[list[int]]:
    """Greedy decoding with the KV cache after a prefix of embeddings (B, L, H) with key mask keep (B, L);
    padding may sit anywhere in the prefix. Returns the new token ids of each row, EOS excluded."""
    pos = positions(keep)
    out = lm.model(inputs_embeds=embeds, attention_mask=keep, position_ids=pos, use_cache=True)
    logits = lm.lm_head(out.last_hidden_state[:, -1])
    next_pos = pos[:, -1:] + 1
    done = torch.zeros(len(embeds), dtype=torch.bool, device=embeds.device)
    steps = []
    for _ in range(max_tokens):
        nxt = logits.argmax(-1).masked_fill(done, eos_id)
        steps.append(nxt)
        done |= nxt == eos_id
        if bool(done.all()):
            break
        keep = torch.cat([keep, torch.ones_like(keep[:, :1])], 1)
        out = lm.model(input_ids=nxt[:, None], attention_mask=keep, position_ids=next_pos,
                       past_key_values=out.past_key_values, use_cache=True)
        logits = lm.lm_head(out.last_hidden_state[:, -1])
        next_pos = next_pos + 1
    rows = torch.stack(steps, 1).tolist() if steps else [[] for _ in range(len(embeds))]
    return cut_at_eos(rows, eos_id)
