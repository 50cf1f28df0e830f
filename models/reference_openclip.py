"""open_clip models (OpenAI CLIP, LAION, DFN, SigLIP ports, Perception Encoder-Core, ...) behind the model protocol,
evaluated as they are: the contrastive reference rows read through the library most of them are released in.

A spec is `open_clip:ARCH[:WEIGHTS]`:
- ARCH an open_clip model name (`ViT-B-32`, `PE-Core-B-16`) and WEIGHTS a pretrained tag (`openai`, read from the
  local Hugging Face cache when offline) or a checkpoint file;
- ARCH a folder holding `open_clip_config.json` and its checkpoint (open_clip's `local-dir:` layout; no WEIGHTS);
- ARCH `hf-hub:ORG/REPO` (open_clip's own hub form, read from the local cache offline; no WEIGHTS).

As for the transformers dual encoders (models/reference_clip.py), a clip is the mean of its frames' unit-norm image
embeddings, renormalised (`video_pooling: frame_mean`), and a score is the cosine with the text's embedding. Each
frame goes through the model's own evaluation transform (open_clip's, built from the model's preprocess config:
resize, crop, normalise), texts through its own tokenizer. open_clip needs torchvision, which this module imports
only when a spec asks for it (docs/peers.md says how to install both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.protocol import Batch, Candidates, count_parameters, score_by_embedding
from models.reference_base import EvaluatedAsIs, NotApplicable, ReferenceModelError, frame_mean

VIDEO_POOLING = "frame_mean"


def _open_clip(spec: str):
    try:
        import open_clip
    except ImportError as e:
        raise ReferenceModelError(f"{spec}: open_clip is not importable here ({e}); install open_clip_torch with a "
                                  "torchvision that matches the installed torch (docs/peers.md)") from None
    return open_clip


class OpenCLIPDualEncoder(EvaluatedAsIs):
    """An open_clip model with its tokenizer and evaluation transform, frozen."""

    has_embedding = True
    generates_text = False  # captioning and streaming are not applicable

    def __init__(self, model: nn.Module, tokenizer: Any, transform: Any, spec: str, name: str, frames: int,
                 image_size: int, image_batch: int = 256):
        super().__init__()
        if frames < 1:
            raise ReferenceModelError(f"{spec}: frames={frames}; expected at least 1 frame per clip")
        self.model, self.tokenizer, self.transform, self.spec, self.name = model.eval(), tokenizer, transform, spec, name
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.x_encoder = self.model.visual  # the image tower: what reads the pixels
        self.frames, self.image_size, self.image_batch = frames, image_size, image_batch

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """(N, D) unit-norm embeddings of N uint8 frames (N, 3, H, W), each through the model's own transform."""
        from PIL import Image

        out = []
        for a in range(0, len(frames), self.image_batch):
            pixels = torch.stack([self.transform(Image.fromarray(f.transpose(1, 2, 0)))
                                  for f in frames[a:a + self.image_batch]]).to(self._device())
            out.append(F.normalize(self.model.encode_image(pixels).float(), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, D): each clip's frames embedded one by one, normalised, averaged and renormalised."""
        return frame_mean(batch, self.spec, self._image_embeddings)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """(N, D) unit-norm text embeddings (the tokenizer pads and cuts to the model's context length)."""
        return F.normalize(self.model.encode_text(self.tokenizer(list(texts)).to(self._device())).float(), dim=-1)

    @torch.no_grad()
    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        """(B, K) cosine of each clip's embedding with each candidate's (the logit scale changes no ranking)."""
        return score_by_embedding(self.embed(batch), candidates, self.embed_text)

    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        raise NotApplicable(f"{self.spec}: a contrastive dual encoder (open_clip {self.name}) writes no text")

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        vision, whole = count_parameters(self.model.visual), count_parameters(self.model)
        return {"vision": vision, "text": {k: whole[k] - vision[k] for k in whole}}  # the rest: text tower, scale

    def parity(self) -> dict[str, Any]:
        return {"weights_hash": self.weight_hash(), "model_type": f"open_clip:{self.name}"}

    def describe(self) -> dict[str, Any]:
        """How this adapter reads the model, for the run record: pooling, frames, size, scoring, preprocessing."""
        return {"video_pooling": VIDEO_POOLING, "frames": self.frames, "image_size": self.image_size, "score": "cosine",
                "model_type": f"open_clip:{self.name}", "image_transform": repr(self.transform),
                "tokenizer": type(self.tokenizer).__name__,
                "context_length": int(getattr(self.tokenizer, "context_length", 0) or 0)}


def model_name_of(rest: str, spec: str) -> tuple[str, str | None]:
    """(open_clip's model name, its pretrained tag or file) from what follows `open_clip:` in a spec."""
    if rest.startswith("hf-hub:"):
        return rest, None
    arch, _, weights = rest.partition(":")
    if Path(arch).is_dir():
        if weights:
            raise ReferenceModelError(f"{spec}: {arch} is a folder (open_clip_config.json and its checkpoint); it takes "
                                      f"no weights after it, got {weights!r}")
        if not (Path(arch) / "open_clip_config.json").is_file():
            raise ReferenceModelError(f"{spec}: the folder {arch} has no open_clip_config.json; expected open_clip's "
                                      "local-dir layout (the config and one checkpoint)")
        return f"local-dir:{arch}", None
    return arch, weights or None


def load_open_clip(rest: str, spec: str, frames: int) -> OpenCLIPDualEncoder:
    """`open_clip:ARCH[:WEIGHTS]` -> the adapter; errors name the spec and what was expected."""
    open_clip = _open_clip(spec)
    name, pretrained = model_name_of(rest, spec)
    if not name.startswith(("local-dir:", "hf-hub:")) and name not in open_clip.list_models():
        raise ReferenceModelError(f"{spec}: {name!r} is neither an open_clip model name (open_clip.list_models()) nor a "
                                  "folder with open_clip_config.json")
    if pretrained is None and not name.startswith(("local-dir:", "hf-hub:")):  # never a random model by accident
        raise ReferenceModelError(f"{spec}: no weights; expected open_clip:{name}:TAG (one of "
                                  f"{', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'none listed'}) or "
                                  f"open_clip:{name}:CHECKPOINT_FILE")
    try:
        model, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(name)
    except (OSError, RuntimeError, ValueError) as e:
        raise ReferenceModelError(f"{spec}: open_clip could not load {name!r} with weights {pretrained!r}: {e}") from None
    size = open_clip.get_model_preprocess_cfg(model)["size"]
    side = int(size if isinstance(size, int) else max(size))
    return OpenCLIPDualEncoder(model, tokenizer, transform, spec, name.removeprefix("local-dir:"), frames, side)
