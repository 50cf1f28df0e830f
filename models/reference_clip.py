"""Off-the-shelf contrastive dual encoders (transformers CLIP, SigLIP, SigLIP2) behind the model protocol, evaluated
as they are, without training: the reference rows a trained baseline is read against (issue #37).

A video is embedded as the mean of its frames' image embeddings: each frame goes through the model's own image
processor (resize, crop, rescale, normalise: the preprocessing the weights were trained with) and image tower,
each frame's embedding is normalised, the mean over frames renormalised, so every frame weighs the same and the
video scores as a cosine (`video_pooling: frame_mean`). Texts go through the model's own tokenizer and text tower,
padded as the family was trained (SigLIP's text tower pools the last position, so its texts are padded to the
full length). score() is the cosine of the two: the logit scale (and SigLIP's bias) is one positive affine map
shared by every pair, so it changes no ranking and no argmax, and leaving it out keeps scores comparable with the
suite's other embedding models. A dual encoder writes no text: generate() says so (captioning and streaming are
not applicable, which the evaluation records as such).

Nothing here registers a name: a reference model is not built from a run config but loaded from its weights
(`load_hf`), by bench.tools.reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

from models.protocol import Batch, Candidates, count_parameters, score_by_embedding
from models.reference_base import EvaluatedAsIs, NotApplicable, ReferenceModelError, frame_mean

# config.model_type -> how its texts are padded: "longest" (CLIP pools its end-of-text token) or "max_length"
# (SigLIP and SigLIP2 pool the last position and were trained on texts padded to the full length)
TEXT_PADDING = {"clip": "longest", "siglip": "max_length", "siglip2": "max_length"}
VIDEO_POOLING = "frame_mean"
DEFAULT_FRAMES = 8


def _features(out: Any) -> torch.Tensor:
    """The projected embedding from get_image_features / get_text_features: a tensor in older transformers, an
    output whose pooler_output holds it in newer ones."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def image_size_of(processor: Any, vision_config: Any) -> int:
    """The side, in pixels, the model's images are read at: the processor's crop (or resize) size, SigLIP2's
    patch budget as a square, else the vision config's image_size. Clips are read at this size so that the
    processor's resize is (nearly) the identity and its crop keeps the whole frame."""
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = crop or getattr(processor, "size", None)
    if isinstance(size, dict):
        side = size.get("height") or size.get("shortest_edge") or size.get("width")
        if side:
            return int(side)
    patches, patch = getattr(processor, "max_num_patches", None), getattr(processor, "patch_size", None)
    if patches and patch:
        return int(math.isqrt(int(patches)) * int(patch))
    side = getattr(vision_config, "image_size", None)
    if side:
        return int(side)
    raise ReferenceModelError(f"cannot tell the image size of {type(processor).__name__}: no crop_size, size, "
                         "max_num_patches with patch_size, nor vision_config.image_size")


class HFDualEncoder(EvaluatedAsIs):
    """A transformers CLIP / SigLIP / SigLIP2 model with its tokenizer and image processor, frozen."""

    has_embedding = True
    generates_text = False  # captioning and streaming are not applicable

    def __init__(self, model: nn.Module, tokenizer: Any, processor: Any, spec: str, frames: int = DEFAULT_FRAMES,
                 image_batch: int = 256):
        super().__init__()
        self.model, self.tokenizer, self.processor, self.spec = model.eval(), tokenizer, processor, spec
        self.model_type = model.config.model_type
        if self.model_type not in TEXT_PADDING:
            raise ReferenceModelError(f"{spec}: model_type {self.model_type!r} is not a contrastive dual encoder this adapter "
                                 f"reads (expected one of {', '.join(TEXT_PADDING)})")
        if frames < 1:
            raise ReferenceModelError(f"{spec}: frames={frames}; expected at least 1 frame per clip")
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.x_encoder = self.model.vision_model  # the image tower: what reads the pixels
        self.frames, self.image_batch = frames, image_batch
        self.image_size = image_size_of(processor, model.config.vision_config)

    # ------------------------------------------------------------------ embeddings
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """(N, D) unit-norm embeddings of N uint8 frames (N, 3, H, W), image_batch at a time."""
        out = []
        for a in range(0, len(frames), self.image_batch):
            inputs = self.processor(images=list(frames[a:a + self.image_batch]), return_tensors="pt",
                                    input_data_format="channels_first")
            inputs = {k: v.to(self._device()) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
            out.append(F.normalize(_features(self.model.get_image_features(**inputs)).float(), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, D): each clip's frames embedded one by one, normalised, averaged and renormalised."""
        return frame_mean(batch, self.spec, self._image_embeddings)

    def _tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The texts as the family's text tower was trained on them (TEXT_PADDING), cut to its positions."""
        limit = self.model.config.text_config.max_position_embeddings
        longest = min(int(getattr(self.tokenizer, "model_max_length", limit) or limit), limit)
        tok = self.tokenizer(list(texts), padding=TEXT_PADDING[self.model_type], truncation=True, max_length=longest,
                             return_tensors="pt")
        keep = ("input_ids", "attention_mask", "position_ids")
        return {k: v.to(self._device()) for k, v in tok.items() if k in keep}

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """(N, D) unit-norm text embeddings."""
        return F.normalize(_features(self.model.get_text_features(**self._tokens(texts))).float(), dim=-1)

    @torch.no_grad()
    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        """(B, K) cosine of each clip's embedding with each candidate's (see the module's docstring on scale)."""
        return score_by_embedding(self.embed(batch), candidates, self.embed_text)

    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        raise NotApplicable(f"{self.spec}: a contrastive dual encoder ({self.model_type}) writes no text")

    # ------------------------------------------------------------------ training: none

    # ------------------------------------------------------------------ records

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        vision, text = count_parameters(self.model.vision_model), count_parameters(self.model.text_model)
        whole = count_parameters(self.model)
        return {"vision": vision, "text": text,
                "heads": {k: whole[k] - vision[k] - text[k] for k in whole}}  # projections, logit scale and bias

    def parity(self) -> dict[str, Any]:
        return {"weights_hash": self.weight_hash(), "model_type": self.model_type}

    def describe(self) -> dict[str, Any]:
        """How this adapter reads the model, for the run record: pooling, frames, size, scoring, preprocessing."""
        return {"video_pooling": VIDEO_POOLING, "frames": self.frames, "image_size": self.image_size, "score": "cosine",
                "model_type": self.model_type, "image_processor": type(self.processor).__name__,
                "tokenizer": type(self.tokenizer).__name__, "text_padding": TEXT_PADDING[self.model_type]}


def read_config(source: str, spec: str) -> Any:
    """The transformers config of a folder or hub id (its model_type says which adapter reads it); an error naming
    the spec where there is none."""
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ReferenceModelError(f"{spec}: no transformers config could be read from {source!r} ({e})") from None


def load_hf(source: str, spec: str, frames: int = DEFAULT_FRAMES) -> HFDualEncoder:
    """A transformers folder or hub id (resolved from the local cache when offline) -> the adapter; errors name the
    spec and what was expected of it."""
    config = read_config(source, spec)
    if config.model_type not in TEXT_PADDING:
        raise ReferenceModelError(f"{spec}: model_type {config.model_type!r} in its config.json; expected a contrastive "
                             f"dual encoder, one of {', '.join(TEXT_PADDING)}")
    try:
        model = AutoModel.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
        processor = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ReferenceModelError(f"{spec}: {source!r} lacks what a {config.model_type} model is read with (weights, "
                             f"tokenizer and image processor files): {e}") from None
    return HFDualEncoder(model, tokenizer, processor, spec, frames)
