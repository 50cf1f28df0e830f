"""Captioning metrics through pycocoevalcap: its PTB tokenizer, CIDEr-D, BLEU-4, METEOR, ROUGE-L.

The PTB tokenizer and METEOR run on Java; SPICE is not offered (it downloads CoreNLP at run time).
Texts are tokenized once per call (one Java process for all of them), then metrics are computed on the
tokenized strings, so that sweeps over many decode rates do not start Java again and again.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence

JAVA_METRICS = "the PTB tokenizer (every captioning metric) and METEOR"


class JavaMissing(RuntimeError):
    pass


def require_java() -> None:
    if shutil.which("java") is None:
        raise JavaMissing(f"captioning metrics need Java for {JAVA_METRICS}, and no 'java' is on PATH "
                          "(Debian: apt-get install -y default-jre-headless)")


def ptb_tokenize(texts: Sequence[str]) -> dict[str, str]:
    """text -> its PTB-tokenized form, for every distinct text, in one Java call."""
    require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    out = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(unique)})
    return {t: out[i][0] for i, t in enumerate(unique)}


def caption_scores(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]],
                   metrics: Sequence[str] = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L"),
                   tokenized: Mapping[str, str] | None = None) -> dict[str, float]:
    """Corpus scores of one candidate per id against that id's references (all paraphrases)."""
    tok = dict(tokenized or {})
    missing = [t for t in [*candidates.values(), *(r for refs in references.values() for r in refs)] if t not in tok]
    tok.update(ptb_tokenize(missing))
    res = {k: [tok[v]] for k, v in candidates.items()}
    gts = {k: [tok[r] for r in references[k]] for k in candidates}
    out: dict[str, float] = {}
    for name in metrics:
        if name == "CIDEr":
            from pycocoevalcap.cider.cider import Cider

            out[name] = float(Cider().compute_score(gts, res)[0])
        elif name == "BLEU-4":
            from pycocoevalcap.bleu.bleu import Bleu

            out[name] = float(Bleu(4).compute_score(gts, res, verbose=0)[0][3])
        elif name == "METEOR":
            from pycocoevalcap.meteor.meteor import Meteor

            out[name] = float(Meteor().compute_score(gts, res)[0])
        elif name == "ROUGE-L":
            from pycocoevalcap.rouge.rouge import Rouge

            out[name] = float(Rouge().compute_score(gts, res)[0])
        else:
            raise KeyError(f"unknown captioning metric {name!r}; known: CIDEr, BLEU-4, METEOR, ROUGE-L")
    return out


def cider_items(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]],
                tokenized: Mapping[str, str] | None = None) -> list[float]:
    """CIDEr-D of each candidate (in the order of `candidates`), its document frequencies taken from all the
    references given: the corpus CIDEr is their mean, and any subset's mean is that subset's score with the
    whole corpus's frequencies (what a bootstrap over items resamples)."""
    from pycocoevalcap.cider.cider import Cider

    tok = dict(tokenized or {})
    missing = [t for t in [*candidates.values(), *(r for refs in references.values() for r in refs)] if t not in tok]
    tok.update(ptb_tokenize(missing))
    keys = list(candidates)
    res = {k: [tok[candidates[k]]] for k in keys}
    gts = {k: [tok[r] for r in references[k]] for k in keys}
    _, scores = Cider().compute_score(gts, res)
    by_key = dict(zip(gts.keys(), (float(v) for v in scores)))  # Cider scores in its own key order
    return [by_key[k] for k in keys]
