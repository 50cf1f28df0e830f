"""Off-the-shelf generative VLMs (transformers AutoModelForImageTextToText: Idefics3, which SmolVLM's first checkpoints
are, and LLaVA) behind the model protocol, evaluated as they are, without training: the generative reference rows
(issue #37).

A clip's frames are passed as that many images of one prompt (`video_input: frames_as_images`; the families' own
video inputs need a video processor, which needs torchvision), each through the family's processor at the vision
tower's own size, Idefics3's image splitting off, so every frame costs the same image tokens. The prompt is the
processor's chat template (one user turn: the frames, then the task's query; the generation prompt after it), or,
for a processor without one, the plain prompt: the image tokens, a newline and the query.

The family's processor and forward pass turn the prompt and frames into what its language model reads (input
embeddings with the image features merged in); from there the token-space twin's own code runs: score() is its
length-normalised candidate log-likelihood (models/candidate_scoring.py), the prefix once and the candidates' tokens
on its KV cache a trie level at a time; generate() its greedy decoding with the KV cache (models/lm.py). A
candidate is scored as what the model writes after the prompt: its tokens as a continuation of the prompt's text (a
space between, where the prompt ends in a non-space character), then the token generation stops at (the generation
config's first end token), as the twin scores a target and its EOS.

Nothing here registers a name: a reference model is loaded from its weights (`load_hf`) by bench.tools.reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from transformers import AutoModelForImageTextToText, AutoProcessor

from models.candidate_scoring import score_candidates
from models.lm import greedy_decode
from models.protocol import Batch, Candidates, count_parameters
from models.reference_base import EvaluatedAsIs, NotApplicable, ReferenceModelError, video_of
from models.reference_clip import DEFAULT_FRAMES, image_size_of, read_config

VIDEO_INPUT = "frames_as_images"
SCORE = "mean_token_loglik"  # the twin's: the mean log-probability of a candidate's tokens, its end token included
ANCHOR_QUERY = "Q"  # the query of the text-only prompt a candidate's tokens are read as the continuation of


@dataclass(frozen=True)
class Family:
    """How the adapter reads one model_type: where its vision tower is (model.model.<vision>), and what its
    processor is told on every call."""

    model_type: str
    vision: str
    processor_kwargs: dict[str, Any] = field(default_factory=dict)


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    # each frame as one global image at the vision tower's size (SmolVLM reads video frames so), no tiles
    Family("idefics3", "vision_model", {"do_image_splitting": False}),
    Family("llava", "vision_tower"),
)}


class _Merged(Exception):
    """Raised from a hook on the language model with the input embeddings the family built: the prefix is then
    complete, and the language model runs on it from the twin's code, not here."""

    def __init__(self, embeds: torch.Tensor):
        super().__init__("merged input embeddings")
        self.embeds = embeds


@dataclass(frozen=True)
class LanguageModel:
    """The family's language model as candidate scoring and greedy decoding read it (models/candidate_scoring.py's
    CausalLM): its decoder stack, which takes the merged input embeddings, and its LM head."""

    model: nn.Module
    lm_head: nn.Module


class HFGenerativeVLM(EvaluatedAsIs):
    """A transformers image-text-to-text model of a family in FAMILIES, with its processor, frozen."""

    has_embedding = False  # retrieval, selective decoding and text-only hard negatives are not applicable
    generates_text = True
    query_stage = "sft"  # an instruction-tuned model is asked the instruction stage's queries ("describe the video")
    max_new_tokens = 64  # captions' length where the task gives none

    def __init__(self, model: nn.Module, processor: Any, spec: str, frames: int = DEFAULT_FRAMES,
                 max_candidate_tokens: int = 64):
        super().__init__()
        self.model, self.processor, self.spec = model.eval(), processor, spec
        self.model_type = model.config.model_type
        if self.model_type not in FAMILIES:
            raise ReferenceModelError(f"{spec}: model_type {self.model_type!r} is not a generative VLM this adapter reads "
                                      f"(expected one of {', '.join(FAMILIES)})")
        if frames < 1:
            raise ReferenceModelError(f"{spec}: frames={frames}; expected at least 1 frame per clip")
        self.family, self.frames, self.tokenizer = FAMILIES[self.model_type], frames, processor.tokenizer
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.x_encoder = getattr(self.model.model, self.family.vision)  # the vision tower: what reads the pixels
        self.lm = LanguageModel(self.model.get_decoder(), self.model.get_output_embeddings())
        self.max_candidate_tokens = max_candidate_tokens  # the most tokens of one candidate scored, its end token kept
        self.image_size = image_size_of(processor.image_processor, model.config.vision_config)
        self.image_token = getattr(processor, "image_token", None)
        if not self.image_token:
            raise ReferenceModelError(f"{spec}: its processor {type(processor).__name__} names no image_token; expected "
                                      "the text placeholder its images go in")
        self.end_id = end_token(model, self.tokenizer, spec)
        self.chat = bool(getattr(processor, "chat_template", None))
        anchor = self.prompt(ANCHOR_QUERY, images=0)
        self.separator = "" if anchor[-1:].isspace() else " "
        self._anchor, self._anchor_ids = anchor, self._ids(anchor)

    # ------------------------------------------------------------------ prompts and candidates
    def prompt(self, query: str, images: int) -> str:
        """The text of one sample: `images` image placeholders, then the query, as a chat's user turn with the
        generation prompt after it, or plainly (the image tokens, a newline, the query)."""
        if not self.chat:
            return self.image_token * images + ("\n" if images else "") + query
        content = [{"type": "image"}] * images + ([{"type": "text", "text": query}] if query else [])
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def continuation(self, text: str) -> list[int]:
        """A candidate's tokens as the model would write them after its prompt: those that follow the prompt's own
        tokens in the tokenization of prompt + separator + text (its own tokenization where the two merge)."""
        ids, n = self._ids(self._anchor + self.separator + text), len(self._anchor_ids)
        return ids[n:] if ids[:n] == self._anchor_ids else self._ids(self.separator + text)

    def _candidate_tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) of the texts as continuations, the end token after each, at most max_candidate_tokens tokens
        (the end token kept), right-padded: what candidate scoring reads."""
        rows = [self.continuation(t)[:self.max_candidate_tokens - 1] + [self.end_id] for t in texts]
        width = max((len(r) for r in rows), default=0)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r, dtype=torch.long), 1
        return ids.to(self._device()), mask.to(self._device())

    # ------------------------------------------------------------------ the prefix
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def inputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The processor's tensors for a batch: each clip's frames as images of its prompt, left-padded (all
        padding first, so every row's last position is its last real token)."""
        clips = video_of(batch, self.spec).cpu().numpy()
        prompts = [self.prompt(q, len(c)) for q, c in zip(batch["query"], clips)]
        out = self.processor(images=[list(np.ascontiguousarray(c)) for c in clips], text=prompts, return_tensors="pt",
                             padding=True, padding_side="left", input_data_format="channels_first",
                             **self.family.processor_kwargs)
        return {k: v.to(self._device()) for k, v in out.items() if isinstance(v, torch.Tensor)}

    def _prefix(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P, H) the input embeddings the family builds (its image features in place of the image tokens) and
        the (B, P) key mask: the model's own forward runs up to its language model, which a hook stops."""
        inputs = self.inputs(batch)

        def merged(module, args, kwargs):
            raise _Merged(kwargs.get("inputs_embeds"))

        hook = self.lm.model.register_forward_pre_hook(merged, with_kwargs=True)
        embeds = None
        try:
            self.model(**inputs, use_cache=False)
        except _Merged as m:
            embeds = m.embeds
        finally:
            hook.remove()
        if embeds is None:
            raise ReferenceModelError(f"{self.spec}: the {self.model_type} model did not call its language model with "
                                      "inputs_embeds; expected a LLaVA-like forward (image features merged into them)")
        return embeds, inputs["attention_mask"]

    # ------------------------------------------------------------------ the protocol
    @torch.no_grad()
    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        """(B, K) each candidate's mean token log-likelihood after the prompt, its end token included (the twin's)."""
        prefix, keep = self._prefix(batch)
        return score_candidates(self.lm, prefix, keep, candidates, self._candidate_tokens)

    @torch.no_grad()
    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        """Greedy decoding with the KV cache after the prefix, until the end token (the twin's decoding)."""
        prefix, keep = self._prefix(batch)
        rows = greedy_decode(self.lm, prefix, keep, self.end_id, max_tokens or self.max_new_tokens)
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

    def embed(self, batch: Batch) -> torch.Tensor:
        raise NotApplicable(f"{self.spec}: a generative VLM ({self.model_type}) has no embedding stream")


    # ------------------------------------------------------------------ records

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        vision, language = count_parameters(self.x_encoder), count_parameters(self.lm.model)
        whole = count_parameters(self.model)
        return {"vision": vision, "language": language,
                "heads": {k: whole[k] - vision[k] - language[k] for k in whole}}  # connector and LM head (untied)

    def parity(self) -> dict[str, Any]:
        return {"weights_hash": self.weight_hash(), "model_type": self.model_type}

    def describe(self) -> dict[str, Any]:
        """How this adapter reads the model, for the run record: frames, size, prompt, scoring, decoding."""
        return {"video_input": VIDEO_INPUT, "frames": self.frames, "image_size": self.image_size,
                "prompt": "chat_template" if self.chat else "plain", "prompt_example": self.prompt(ANCHOR_QUERY, 1),
                "query_stage": self.query_stage, "score": SCORE,
                "candidate_end": self.tokenizer.convert_ids_to_tokens(self.end_id), "answer_separator": self.separator,
                "generation": "greedy", "max_candidate_tokens": self.max_candidate_tokens,
                "processor_kwargs": dict(self.family.processor_kwargs), "model_type": self.model_type,
                "processor": type(self.processor).__name__, "image_processor": type(self.processor.image_processor).__name__,
                "tokenizer": type(self.tokenizer).__name__}


def end_token(model: nn.Module, tokenizer: Any, spec: str) -> int:
    """The token generation stops at: the generation config's (its first, where it lists several), else the
    tokenizer's EOS."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    eos = tokenizer.eos_token_id if eos is None else eos
    if eos is None:
        raise ReferenceModelError(f"{spec}: no end token: expected generation_config.eos_token_id or the tokenizer's "
                                  "eos_token")
    return int(eos)


def load_hf(source: str, spec: str, frames: int = DEFAULT_FRAMES) -> HFGenerativeVLM:
    """A transformers folder or hub id (resolved from the local cache when offline) -> the adapter; errors name the
    spec and what was expected of it."""
    config = read_config(source, spec)
    if config.model_type not in FAMILIES:
        raise ReferenceModelError(f"{spec}: model_type {config.model_type!r} in its config.json; expected a generative "
                                  f"VLM, one of {', '.join(FAMILIES)}")
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ReferenceModelError(f"{spec}: {source!r} lacks what a {config.model_type} model is read with (weights, "
                                  f"processor, tokenizer and image processor files): {e}") from None
    return HFGenerativeVLM(model, processor, spec, frames)
