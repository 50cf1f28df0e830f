"""A twin exported by `python -m bench.export` as a model of lmms-eval (the `lmms` interface), so that lmms-eval's
tasks score it beside the VLMs they already run (docs/peers.md).

    lmms-eval --model vljepa_bench --model_args export=exported/tiny --tasks ...    # with the entry point below
    from bench.tools.lmms_adapter import VLJepaBench, register; register()           # in Python, without it

lmms-eval is an optional peer (`pip install --no-deps lmms-eval` and the few light packages docs/peers.md lists:
its own requirements pull a CUDA torch and torchvision over the CPU torch); this module imports it, and nothing of
the suite imports this module.

What each request becomes (lmms-eval hands a request as (context, ..., doc_to_visual, doc_id, task, split) and the
model reads its document from `self.task_dict`, which lmms-eval's evaluator fills):
- the visual (`doc_to_visual(doc)`: PIL images, image or video paths, arrays, or a list of frames) becomes one clip
  at the export's own clip shape (its frames and size): a still image fills the clip as the suite's eval sets fill
  it (bench.data.video), a video gives its frames uniformly over its length, a list of frames the same;
- `generate_until`: the model's protocol generate(): the VLM decodes greedily, VL-JEPA decodes its predicted
  embedding with a Y-decoder. VL-JEPA's Y-decoder is the one bench.eval trains before it captions (on the export's
  training data's captions and clips: eval.decoder_steps steps, eval.decoder_clips clips, or `decoder_steps=` and
  `decoder_clips=`), once, when the first generation is asked for. The text is cut at the first of the request's
  `until` strings; max_new_tokens is capped at what the suite's captioning lets any model write
  (model.decoder.max_tokens), which is also the default;
- `loglikelihood` (lmms-eval's multiple choice sends one request per choice): the VLM's protocol score(), the mean
  log-likelihood per token of the continuation (its EOS included), the suite's own multiple-choice protocol.
  lmms-eval's multiple-choice metrics take the *argmin* of what loglikelihood returns (its models return the mean
  token loss; lmms_eval/api/task.py), so the default `loglikelihood=nll` returns the mean negative log-likelihood
  per token: lmms-eval's `acc` is then the suite's VQA accuracy on the same items. `loglikelihood=logprob` returns
  the summed log-probability instead, as lmms_eval.api.model.lmms documents it (lm-evaluation-harness's reading,
  where higher is better). The leading delimiter lmms-eval puts before a choice (" ") is dropped: the twins read
  the query and the answer as separate segments. VL-JEPA has no token likelihood: it refuses, unless
  `embedding_scores=true`, with which it returns minus the cosine of its predicted embedding to the choice's (an
  argmin is then its choice; lengths mean nothing to it, so `acc_norm` does not apply);
- the query the model reads is lmms-eval's context (`prompt=context`, the default), or the query the suite sends
  for the task at the export's training stage (`prompt=suite`: the captioning query for generation, the
  classification query for choices; the tiny preset pretrains with none): a twin trained on the suite's queries
  has never seen lmms-eval's prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from PIL import Image

from bench.data.loader import collate
from bench.data.sources import train_samples
from bench.data.video import read_clip, resize_crop, uniform_indices
from bench.eval.sets.resolve import clip_shape
from bench.eval.tasks.common import EvalContext, stage_queries
from bench.run.engine import plan_stages
from bench.tools.export import load_export, read_export

MODEL_ID = "vljepa_bench"
CLASS_PATH = f"{__name__}.VLJepaBench"
LOGLIKELIHOOD = ("nll", "logprob")
PROMPTS = ("context", "suite")


def manifest() -> ModelManifest:
    """lmms-eval's registration of this model (its entry-point group `lmms_eval.models` loads this callable)."""
    return ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)


def register() -> None:
    """Register the model in this process's lmms-eval registry, for `simple_evaluate(model="vljepa_bench", ...)`
    without the entry point installed."""
    from lmms_eval.models import MODEL_REGISTRY_V2  # lazy: importing it builds lmms-eval's whole registry

    MODEL_REGISTRY_V2.register_manifest(manifest(), overwrite=True)


def _flag(value: Any) -> bool:
    """A boolean from model_args text (true/false, 1/0, yes/no) or a bool."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "on")
    return bool(value)


class VLJepaBench(lmms):
    """A twin from an export folder, behind lmms-eval's `lmms` interface (see the module's docstring)."""

    is_simple = True

    def __init__(self, export: str, device: str = "cpu", batch_size: int | str = 8, prompt: str = "context",
                 loglikelihood: str = "nll", embedding_scores: bool | str = False, decoder_steps: int | str | None = None,
                 decoder_clips: int | str | None = None, **_ignored: Any) -> None:
        super().__init__()
        if prompt not in PROMPTS or loglikelihood not in LOGLIKELIHOOD:
            raise ValueError(f"prompt={prompt!r}, loglikelihood={loglikelihood!r}: expected prompt one of {PROMPTS} "
                             f"and loglikelihood one of {LOGLIKELIHOOD}")
        self.folder = Path(export)
        self.cfg, self.model = load_export(self.folder)
        self._device = torch.device(device)
        self.model.to(self._device)
        self.batch_size = int(batch_size)
        self.prompt, self.loglikelihood_as = prompt, loglikelihood
        self.embedding_scores = _flag(embedding_scores)
        self.decoder_steps = int(decoder_steps) if decoder_steps not in (None, "") else self.cfg.eval.decoder_steps
        self.decoder_clips = int(decoder_clips) if decoder_clips not in (None, "") else self.cfg.eval.decoder_clips
        self.frames, self.size = clip_shape(self.cfg)
        self.data_stage = plan_stages(self.cfg)[read_export(self.folder)["stage"]].data_stage
        self.queries = stage_queries(self.data_stage)
        self.writes_with_decoder = callable(getattr(self.model, "decoding", None))
        self.max_tokens = self.cfg.model.decoder.max_tokens  # what the suite's captioning lets any model write
        self._decoder_ready = False

    # ------------------------------------------------------------------ inputs
    def clip_of(self, visual: Any) -> np.ndarray:
        """One visual, as lmms-eval's doc_to_visual gives it, as a (T, H, W, 3) uint8 clip at the export's shape."""
        if isinstance(visual, (list, tuple)):
            if len(visual) == 1:
                return self.clip_of(visual[0])
            frames = [self._rgb(v) for v in visual]
            if not frames:
                raise ValueError("a document with no visual: the twins read a clip for every request")
            picked = np.stack([frames[i] for i in uniform_indices(len(frames), self.frames)])
            return resize_crop(picked, self.size)
        if isinstance(visual, (str, Path)):
            return read_clip(Path(visual), self.frames, self.size)
        if isinstance(visual, dict) and "video_path" in visual:
            return read_clip(Path(visual["video_path"]), self.frames, self.size)
        frame = resize_crop(self._rgb(visual)[None], self.size)[0]
        return np.repeat(frame[None], self.frames, axis=0)

    @staticmethod
    def _rgb(visual: Any) -> np.ndarray:
        if isinstance(visual, Image.Image):
            return np.asarray(visual.convert("RGB"))
        arr = np.asarray(visual)
        if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"a visual of {type(visual).__name__} {arr.dtype} {arr.shape}: expected a PIL image, an "
                             "(H, W, 3) uint8 array, an image or video path, or a list of frames")
        return arr

    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _batch(self, visuals: Sequence[Any], queries: Sequence[str]) -> dict[str, Any]:
        batch = collate([{"video": self.clip_of(v), "query": q} for v, q in zip(visuals, queries)])
        return {k: v.to(self._device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _query(self, context: str, kind: str) -> str:
        return context if self.prompt == "context" else self.queries[kind]

    # ------------------------------------------------------------------ generation
    def _ready_decoder(self) -> None:
        """VL-JEPA's Y-decoder, trained once as bench.eval trains it before captioning (a no-op for the VLM)."""
        if self._decoder_ready or not self.writes_with_decoder:
            return
        cfg = replace(self.cfg, data=replace(self.cfg.data, cache=False, stage=self.data_stage),
                      eval=replace(self.cfg.eval, decoder_steps=self.decoder_steps, decoder_clips=self.decoder_clips))
        ctx = EvalContext.for_run(cfg, self.model, self.data_stage, self._device, {}, train_samples(cfg.data, cfg.seed))
        with ctx.decoding(self.model):  # trains it and attaches it as model.decoder for the with-block only ...
            decoder = getattr(self.model, "decoder", None)
        if decoder is not None:  # ... so it is kept attached here, for every later request
            self.model.decoder = decoder
        self._decoder_ready = True

    def generate_texts(self, visuals: Sequence[Any], queries: Sequence[str], max_tokens: int | None = None) -> list[str]:
        """The model's own generate() on these visuals and queries, batch_size at a time."""
        self._ready_decoder()
        cap = self.max_tokens if max_tokens is None else max(1, min(int(max_tokens), self.max_tokens))
        out: list[str] = []
        for a in range(0, len(visuals), self.batch_size):
            out += self.model.generate(self._batch(visuals[a:a + self.batch_size], queries[a:a + self.batch_size]), cap)
        return out

    def generate_until(self, requests: list[Instance]) -> list[str]:
        out: list[str] = []
        for a in range(0, len(requests), self.batch_size):
            chunk = [r.args for r in requests[a:a + self.batch_size]]
            groups: dict[Any, list[int]] = {}  # requests with the same max_new_tokens go together
            for i, (_, kwargs, *_rest) in enumerate(chunk):
                groups.setdefault((kwargs or {}).get("max_new_tokens"), []).append(i)
            texts = [""] * len(chunk)
            for max_new, idx in groups.items():
                visuals = [chunk[i][2](self._doc(chunk[i][4], chunk[i][5], chunk[i][3])) for i in idx]
                written = self.generate_texts(visuals, [self._query(chunk[i][0], "captioning") for i in idx], max_new)
                for i, text in zip(idx, written):
                    texts[i] = cut_at(text, (chunk[i][1] or {}).get("until"))
            out += texts
        return out

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError(f"{MODEL_ID}: the twins answer one turn (generate_until), not a dialogue")

    # ------------------------------------------------------------------ choices
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Per request (context, continuation, doc_to_visual, doc_id, task, split): (the mean token NLL, or the
        summed log-probability with loglikelihood=logprob; whether greedy decoding writes the continuation).
        Requests of one document and context are scored in one call, every continuation a candidate."""
        if self.writes_with_decoder and not self.embedding_scores:
            raise NotImplementedError(f"{MODEL_ID}: {self.cfg.model.name} predicts embeddings and has no token "
                                      "likelihood; embedding_scores=true scores choices by minus the cosine (argmin)")
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            context, target, _, doc_id, task, split = r.args
            groups.setdefault((context, doc_id, task, split), []).append(i)
        out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for (context, doc_id, task, split), idx in groups.items():
            doc = self._doc(task, split, doc_id)
            conts = [continuation(requests[i].args[1], doc) for i in idx]
            batch = self._batch([requests[idx[0]].args[2](doc)], [self._query(context, "classification")])
            scores = self.model.score(batch, [conts]).float().cpu()[0].tolist()
            greedy = self.model.generate(batch, self.max_tokens)[0].strip() if not self.writes_with_decoder else None
            for i, text, s in zip(idx, conts, scores):
                out[i] = (self._value(text, s), greedy is not None and greedy == text.strip())
        return out

    def _value(self, text: str, score: float) -> float:
        if self.writes_with_decoder:  # a cosine: lmms-eval's argmin picks the highest
            return -score
        if self.loglikelihood_as == "logprob":
            return score * self.token_count(text)
        return -score

    def token_count(self, text: str) -> int:
        """The tokens the VLM scores for a candidate: its target tokens and EOS, cut as its score cuts them."""
        tok = self.model.tokenizer
        ids = tok(text + tok.eos_token, truncation=True, max_length=self.cfg.model.lm.max_target_tokens,
                  add_special_tokens=False)["input_ids"]
        return max(1, len(ids))

def continuation(target: Any, doc: Any) -> str:
    """A request's continuation text (a string, or doc_to_target applied to the document), without the delimiter
    lmms-eval puts before it."""
    text = target(doc) if callable(target) else target
    return str(text).lstrip()


def cut_at(text: str, until: str | Iterable[str] | None) -> str:
    """The text up to the first of the stop strings."""
    stops = [until] if isinstance(until, str) else list(until or [])
    for stop in stops:
        if stop and stop in text:
            text = text[:text.index(stop)]
    return text
