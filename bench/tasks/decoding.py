"""A Y-decoder for the embedding space a VL-JEPA has *now* (at this point of the sample grid).

A model with an embedding stream and no decoder attached gets one trained on the Y-encoded references
of training clips (text -> Y-encoder -> head -> decoder -> the same text; see models/decoder.py),
used for the task, then detached again: the next grid point's embedding space is another one.
"""

from __future__ import annotations

import contextlib

import torch

from bench.tasks.common import EvalContext


@contextlib.contextmanager
def attached_decoder(model, ctx: EvalContext, log=None):
    if not getattr(model, "has_embedding", False) or getattr(model, "decoder", None) is not None:
        yield model
        return
    from models.decoder import YDecoder

    texts = sorted({r for i in range(min(ctx.decoder_clips, ctx.world.size("train")))
                    for r in ctx.world.references("train", i)})
    with torch.no_grad():
        emb = torch.cat([model.encode_targets(texts[s:s + 256]).float() for s in range(0, len(texts), 256)])
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        decoder = YDecoder(model.cfg.decoder, model.cfg.embed_dim, model.cfg.lm.tokenizer, seed=ctx.seed)
        decoder.to(emb.device).fit(emb, texts, steps=ctx.decoder_steps, batch=64, lr=1e-3, seed=ctx.seed, log=log)
    model.decoder = decoder
    try:
        yield model
    finally:
        model.decoder = None
