"""Captioning: generate() for each clip of the set, scored against all its references with
pycocoevalcap (CIDEr-D, BLEU-4, METEOR, ROUGE-L). VL-JEPA decodes its predicted embedding with a
Y-decoder (its decoding hook: models/decoder.py); the VLM decodes greedily.

For a model with a Y-decoder, two more readings of the same clips:
- `CIDEr_decoder_ceiling` decodes the Y-side embedding of one reference (the last: in the shapes world a
  paraphrase) instead of the prediction: what captions would score if the predictor were perfect. That
  reference is held out of its scoring (a ceiling scored against the text it decoded measures
  autoencoding), and `CIDEr_heldout` scores the predictions against the same remaining references, so
  the two compare: their difference is what the predictor misses, the ceiling's distance from the
  references what the decoder loses.
- `CIDEr_nearest_caption` replaces the decoder by retrieval: the training caption (of those the Y-decoder
  is trained on) whose Y-embedding is nearest the prediction. A decoder that does not beat it adds
  nothing over looking the prediction up."""

from __future__ import annotations

import torch

from bench.eval.sets.kinds import CaptioningSet
from bench.eval.tasks.captionmetrics import caption_scores, cider_items, ptb_tokenize
from bench.eval.tasks.common import EvalContext, clip_batches, item_se, metric


def held_out(refs: dict[str, list[str]]) -> dict[str, list[str]]:
    """The references the ceiling is scored against: all but the last, which it decoded (kept where it is
    the only one)."""
    return {k: (r[:-1] if len(r) > 1 else r) for k, r in refs.items()}


def nearest_captions(predicted: torch.Tensor, bank: torch.Tensor, texts: list[str]) -> list[str]:
    """For each predicted embedding, the text of the bank embedding nearest in cosine."""
    sims = torch.nn.functional.normalize(predicted.float(), dim=-1) @ torch.nn.functional.normalize(bank.float(), dim=-1).T
    return [texts[j] for j in sims.argmax(1).tolist()]


def run(model, ctx: EvalContext, s: CaptioningSet) -> list[dict]:
    indices = list(range(len(s.references)))
    outputs: dict[str, str] = {}
    refs = {str(i): list(s.references[i]) for i in indices}
    ceiling: dict[str, str] = {}
    nearest: dict[str, str] = {}
    with ctx.decoding(model) as decoding:
        bank_texts = sorted(set(ctx.decoder_texts())) if decoding is not None and ctx.decoder_texts else []
        bank = None
        if bank_texts:
            with torch.no_grad():
                bank = torch.cat([decoding.encode_targets(bank_texts[a:a + 256]).float().cpu()
                                  for a in range(0, len(bank_texts), 256)])
        for sl, batch in clip_batches(ctx, s.visuals, indices, ctx.queries["captioning"]):
            for i, text in zip(indices[sl], model.generate(batch, ctx.decode_tokens)):
                outputs[str(i)] = text
            if bank is not None:
                with torch.no_grad():
                    predicted = model.embed(batch).float().cpu()
                nearest.update(zip((str(i) for i in indices[sl]), nearest_captions(predicted, bank, bank_texts)))
        if decoding is not None:
            keys = [str(i) for i in indices]
            given = [refs[k][-1] for k in keys]  # the last reference (shapes world: a paraphrase, not the canonical caption)
            n = ctx.eval.batch
            for a in range(0, len(keys), n):
                with torch.no_grad():
                    emb = decoding.encode_targets(given[a:a + n])
                ceiling.update(zip(keys[a:a + n], decoding.decode(emb, ctx.decode_tokens)))
    # one Java tokenizer call for every text scored below
    tokenized = ptb_tokenize([*outputs.values(), *ceiling.values(), *nearest.values(),
                              *(r for rs in refs.values() for r in rs)])
    ctx.keep("captioning", s, [{"item": int(k), "prediction": outputs[k], "references": refs[k],
                                **({"ceiling": ceiling[k]} if k in ceiling else {}),
                                **({"nearest_caption": nearest[k]} if k in nearest else {})} for k in outputs])
    scores = caption_scores(outputs, refs, tuple(ctx.eval.caption_metrics), tokenized)
    # reported x100, as papers do (the paper's "14.8 CIDEr" is 0.148)
    recs = [metric("captioning", name, 100 * value, None, n=len(indices),
                   **({"se": 100 * item_se(cider_items(outputs, refs, tokenized))} if name == "CIDEr" else {}))
            for name, value in scores.items()]
    if ceiling:
        rest = held_out(refs)
        for name, texts in (("CIDEr_decoder_ceiling", ceiling), ("CIDEr_heldout", outputs)):
            recs.append(metric("captioning", name, 100 * caption_scores(texts, rest, ("CIDEr",), tokenized)["CIDEr"],
                               None, n=len(indices)))
    if nearest:
        recs.append(metric("captioning", "CIDEr_nearest_caption",
                           100 * caption_scores(nearest, refs, ("CIDEr",), tokenized)["CIDEr"], None, n=len(indices)))
    return recs
