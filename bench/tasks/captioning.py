"""Captioning: generate() for each clip of the set, scored against all its references with
pycocoevalcap (CIDEr-D, BLEU-4, METEOR, ROUGE-L). VL-JEPA decodes its predicted embedding with a
Y-decoder (its decoding hook: models/decoder.py); the VLM decodes greedily.

For a model with a Y-decoder, `CIDEr_decoder_ceiling` decodes the Y-side embedding of a reference
instead of the prediction: what captions would score if the predictor were perfect. It separates what
the predictor misses from what the decoder loses."""

from __future__ import annotations

import torch

from bench.evalsets.sets import CaptioningSet
from bench.tasks.captionmetrics import caption_scores, ptb_tokenize
from bench.tasks.common import EvalContext, clip_batches, metric


def run(model, ctx: EvalContext, s: CaptioningSet) -> list[dict]:
    indices = list(range(len(s.references)))
    outputs: dict[str, str] = {}
    refs = {str(i): list(s.references[i]) for i in indices}
    ceiling: dict[str, str] = {}
    with ctx.decoding(model) as decoding:
        for sl, batch in clip_batches(ctx, s.visuals, indices, ctx.queries["captioning"]):
            for i, text in zip(indices[sl], model.generate(batch, ctx.decode_tokens)):
                outputs[str(i)] = text
        if decoding is not None:
            keys = [str(i) for i in indices]
            given = [refs[k][-1] for k in keys]  # the last reference (shapes world: a paraphrase, not the canonical caption)
            n = ctx.eval.batch
            for a in range(0, len(keys), n):
                with torch.no_grad():
                    emb = decoding.encode_targets(given[a:a + n])
                ceiling.update(zip(keys[a:a + n], decoding.decode(emb, ctx.decode_tokens)))
    # one Java tokenizer call for every text scored below
    tokenized = ptb_tokenize([*outputs.values(), *ceiling.values(), *(r for rs in refs.values() for r in rs)])
    ctx.keep("captioning", s, [{"item": int(k), "prediction": outputs[k], "references": refs[k],
                                **({"ceiling": ceiling[k]} if k in ceiling else {})} for k in outputs])
    scores = caption_scores(outputs, refs, tuple(ctx.eval.caption_metrics), tokenized)
    # reported x100, as papers do (the paper's "14.8 CIDEr" is 0.148)
    recs = [metric("captioning", name, 100 * value, None, n=len(indices)) for name, value in scores.items()]
    if ceiling:
        value = caption_scores(ceiling, refs, ("CIDEr",), tokenized)["CIDEr"]
        recs.append(metric("captioning", "CIDEr_decoder_ceiling", 100 * value, None, n=len(indices)))
    return recs
