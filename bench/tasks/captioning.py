"""Captioning: generate() for held-out clips, scored against every reference paraphrase with
pycocoevalcap (CIDEr-D, BLEU-4, METEOR, ROUGE-L). VL-JEPA decodes its predicted embedding with a
Y-decoder (bench/tasks/decoding.py); the VLM decodes greedily."""

from __future__ import annotations

from bench.tasks.captionmetrics import caption_scores
from bench.tasks.common import EvalContext, clip_batches, metric
from bench.tasks.decoding import attached_decoder


def run(model, ctx: EvalContext) -> list[dict]:
    indices = list(range(min(ctx.size, ctx.world.size(ctx.split))))
    outputs: dict[str, str] = {}
    with attached_decoder(model, ctx):
        for sl, batch in clip_batches(ctx, indices, ctx.queries["captioning"]):
            for i, text in zip(indices[sl], model.generate(batch, ctx.decode_tokens)):
                outputs[str(i)] = text
    refs = {str(i): list(ctx.world.references(ctx.split, i)) for i in indices}
    scores = caption_scores(outputs, refs)
    # reported x100, as papers do (the paper's "14.8 CIDEr" is 0.148)
    return [metric("captioning", name, 100 * value, None, n=len(indices)) for name, value in scores.items()]
