"""A Y-decoder for the embedding space a VL-JEPA has *now* (at this point of the sample grid).

A model with an embedding stream and no decoder attached gets one trained on the Y-encoded caption texts
of the training data (ctx.decoder_texts; text -> Y-encoder -> head -> decoder -> the same text; see
models/decoder.py), used for the task, then detached again: the next grid point's embedding space is
another one.
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

    if ctx.decoder_texts is None:
        raise ValueError("this model captions through a Y-decoder trained on the training data's captions, and no "
                         "caption texts were given (EvalContext.decoder_texts); or set model.decoder.checkpoint")
    texts = ctx.decoder_texts()
    if not texts:
        raise ValueError("the training data has no caption texts to train a Y-decoder on; set model.decoder.checkpoint")
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
