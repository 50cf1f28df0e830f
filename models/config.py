"""Settings of the models: plain dataclasses, validated by bench/configlib.py.

One ModelConfig serves both twins and any added baseline: the twins read the sections they
use (the VLM ignores the Y-encoder and the loss), and `options` carries free-form settings of
a baseline added later, validated by that baseline's own builder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from models.losses import LossConfig  # beside the losses it names

LAYER_SLICE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*$")


class ModelConfigError(ValueError):
    pass


@dataclass
class BackboneConfig:
    """A transformers model: loaded from a hub id or local path, or built from `arch`."""

    pretrained: str = field(default="", metadata={"help": "hub id or local directory; empty = random init from arch"})
    arch: dict[str, Any] = field(default_factory=dict, metadata={"help": "transformers config kwargs, model_type included"})
    init_seed: int | None = field(default=0, metadata={"help": "seed of a random init; null = the run's seed"})
    overrides: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "config changes applied when loading pretrained weights, e.g. num_hidden_layers: 2 keeps the first 2 layers"})

    def check(self) -> None:
        if not self.pretrained and "model_type" not in self.arch:
            raise ModelConfigError("a backbone needs 'pretrained' (hub id or path) or 'arch' with a 'model_type'")


@dataclass
class XEncoderConfig:
    """The frozen video encoder (V-JEPA 2)."""

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch={"model_type": "vjepa2"}))
    pool: Literal["none", "frame_mean", "frame_concat"] = field(
        default="frame_concat",
        metadata={"help": "none: every patch token; frame_mean/frame_concat: one token per time step"},
    )
    normalize: Literal["none", "standardize"] = field(default="none", metadata={
        "identity": "unless_default",
        "help": "standardize: each feature dimension of the frozen encoder's output minus its mean, over its standard "
                "deviation, both measured once on the training clips (fixed buffers, the same for every run on "
                "the same encoder and data): removes the component every clip shares"})
    normalize_clips: int = field(default=2000, metadata={
        "identity": "unless_default", "ge": 1,
        "help": "training clips the standardization's statistics are measured on, spread evenly over the data"})


@dataclass
class TextPretrainingConfig:
    """A one-off causal-LM pretraining of a random LM backbone on the training data's own text (captions,
    queries, answers; no video), before any run: what Llama-3's pretraining is to the paper's twins, at the
    tiny scale. Done once per machine and cached (bench/run/textlm.py), keyed by the LM's architecture, its
    tokenizer, the data's text and this recipe; every run that names the same recipe starts from the same
    weights. samples 0 keeps the random initialisation."""

    samples: int = field(default=0, metadata={"ge": 0, "help": "texts to pretrain on; 0 = none (random LM)"})
    batch: int = field(default=64, metadata={"ge": 1})
    lr: float = field(default=1.0e-3, metadata={"gt": 0.0, "help": "peak LR (AdamW), linear warm-up then cosine to 0"})
    warmup: float = field(default=0.05, metadata={"ge": 0.0, "lt": 1.0, "help": "warm-up as a fraction of the steps"})
    weight_decay: float = field(default=0.1, metadata={"ge": 0.0})
    seed: int = field(default=0, metadata={"help": "the corpus order and the LM's dropout; not the run's seed"})


@dataclass
class LMConfig:
    """The causal LM whose layers form the VL-JEPA predictor, or the VLM's trunk."""

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch={"model_type": "llama"}, init_seed=None))
    tokenizer: str = field(default="", metadata={"help": "tokenizer directory or hub id; empty = backbone.pretrained"})
    layers: str = field(default="-8:", metadata={"help": "python slice of the LM's layers kept, e.g. '-8:' or '0:2'"})
    train_embeddings: bool = field(default=True, metadata={"help": "train the LM's token embeddings (and tied head)"})
    max_query_tokens: int = field(default=64, metadata={"ge": 1})
    max_target_tokens: int = field(default=48, metadata={"ge": 1})
    text_pretraining: TextPretrainingConfig = field(default_factory=TextPretrainingConfig, metadata={
        "identity": "unless_default", "help": "pretrain the random LM on the data's text first (tiny preset)"})

    def check(self) -> None:
        if not LAYER_SLICE.match(self.layers):
            raise ModelConfigError(f"lm.layers={self.layers!r} is not a slice like '-8:', '0:2' or ':'")
        if self.text_pretraining.samples and self.backbone.pretrained:
            raise ModelConfigError(f"lm.text_pretraining.samples={self.text_pretraining.samples} pretrains a random "
                                   f"LM, but lm.backbone.pretrained={self.backbone.pretrained!r} loads one: set one")

    def layer_slice(self) -> slice:
        m = LAYER_SLICE.match(self.layers)
        assert m is not None
        return slice(*(int(g) if g is not None else None for g in m.groups()))


@dataclass
class YEncoderConfig:
    """The text encoder that embeds targets (EmbeddingGemma at paper scale)."""

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch={"model_type": "bert"}))
    tokenizer: str = field(default="", metadata={"help": "tokenizer directory or hub id; empty = backbone.pretrained"})
    lr_multiplier: float = field(default=0.05, metadata={"ge": 0.0, "help": "Y-encoder lr = lr x this; 0 = frozen"})
    head: bool = field(default=True, metadata={"help": "a trainable linear head to embed_dim"})
    train_embeddings: bool = field(
        default=True, metadata={"help": "when fine-tuned (lr_multiplier > 0): train the token embedding table too"})
    max_tokens: int = field(default=48, metadata={
        "ge": 1, "help": "texts are cut to this many tokens (and to the folder's max_seq_length, if smaller)"})
    dropout: Literal["as_configured", "disabled"] = field(default="as_configured", metadata={
        "identity": "unless_default",
        "help": "as_configured: a fine-tuned Y-encoder (lr_multiplier > 0) trains with its backbone's own dropout "
                "(MiniLM: 0.1), so its targets are noisier than a frozen one's, which runs in eval mode; disabled: every "
                "dropout of the backbone and its sentence head set to 0, so a trained and a frozen encoder differ "
                "only in their weights (recorded in parity; not 'off', which YAML reads as false)"})
    pipeline: Literal["mean_pool", "sentence_transformers"] = field(default="mean_pool", metadata={
        "identity": "unless_default",
        "help": "mean_pool: the masked mean of the backbone's last hidden states, nothing more; "
                "sentence_transformers: backbone.pretrained is a sentence-transformers folder and the Y-encoder is "
                "the whole of its modules.json (mean pooling, its Dense layers, Normalize), as EmbeddingGemma "
                "is published (models/st_folder.py)"})
    prompt: str = field(default="", metadata={
        "identity": "unless_default",
        "help": "pipeline sentence_transformers: the name of a prompt in the folder's config_sentence_transformers.json "
                "(EmbeddingGemma: query, document, Classification, ...), put before every text the Y-encoder embeds, "
                "targets and candidates alike; empty = none (a folder's default_prompt_name is not applied)"})

    def check(self) -> None:
        if self.prompt and self.pipeline != "sentence_transformers":
            raise ModelConfigError(f"y_encoder.prompt={self.prompt!r} names a prompt of a sentence-transformers folder, "
                                   f"but y_encoder.pipeline={self.pipeline!r}: set pipeline: sentence_transformers")
        if self.pipeline == "sentence_transformers" and not self.backbone.pretrained:
            raise ModelConfigError("y_encoder.pipeline=sentence_transformers reads a sentence-transformers folder, but "
                                   "y_encoder.backbone.pretrained is empty: set it to the folder (path or hub id)")


@dataclass
class DecoderConfig:
    """The Y-decoder: embedding -> text (see models/decoder.py for the design)."""

    checkpoint: str = field(default="", metadata={"help": "a trained Y-decoder directory; empty = none (generate() unavailable)"})
    hidden: int = field(default=128, metadata={"ge": 8})
    layers: int = field(default=2, metadata={"ge": 1})
    heads: int = field(default=4, metadata={"ge": 1})
    prefix_tokens: int = field(default=4, metadata={"ge": 1})
    max_tokens: int = field(default=32, metadata={"ge": 2})
    noise: float = field(default=0.1, metadata={
        "ge": 0.0, "help": "training noise on the unit embedding (bridges predicted vs. encoded)"})
    train_on: Literal["targets", "predictions", "both"] = field(default="targets", metadata={
        "identity": "unless_default",
        "help": "what a decoder trained at evaluation learns to decode: the Y-encoded references of training "
                "clips, the model's own predictions for those clips (paired with each reference), or both"})
    decode_to: Literal["each_reference", "first_reference"] = field(default="each_reference", metadata={
        "identity": "unless_default",
        "help": "the text each decoder input is trained to give. each_reference: the reference it encodes (targets) "
                "or every reference of its clip (predictions); first_reference: its clip's first reference, for "
                "every input of the clip (the shapes world's canonical caption: one wording per clip, as a "
                "token-space model's likeliest caption is its training targets' mode). first_reference reads the "
                "training clips' references, so it needs clips even with train_on=targets"})


@dataclass
class ModelConfig:
    name: str = field(default="vljepa", metadata={"help": "a registered model name (models/registry.py)"})
    embed_dim: int = field(default=1536, metadata={"ge": 1, "help": "the shared embedding space"})
    attention: Literal["bidirectional", "causal"] = "bidirectional"
    visual_scale: Literal["none", "text_norm"] = field(default="none", metadata={
        "identity": "unless_default",
        "help": "none: the projected visual tokens enter the LM as the projection makes them; text_norm: each rescaled "
                "to the mean norm of the LM's token embeddings (models/visual_scale.py), the same for both masks "
                "and twins"})
    x_encoder: XEncoderConfig = field(default_factory=XEncoderConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    y_encoder: YEncoderConfig = field(default_factory=YEncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "free-form settings of an added baseline"})
