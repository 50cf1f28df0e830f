"""A sentence-transformers folder, read without sentence-transformers: EmbeddingGemma as the paper uses it.

EmbeddingGemma ships as a sentence-transformers folder: modules.json lists a Transformer (the Gemma 3
backbone, in the folder's root), a mean Pooling, two bias-free Dense layers (768 -> 3,072 -> 768) and a
Normalize, and config_sentence_transformers.json holds its task prompts ("query": "task: search result |
query: ", "document": "title: none | text: ", ...). transformers' AutoModel loads the backbone alone and
drops the rest. This module reads the folder's description and the Dense weights itself, so that the
Y-encoder (models/encoders.TextEncoder) is the whole pipeline with every parameter in the suite's own
modules: trained at the Y-encoder's lr multiplier or frozen with it, and saved in its checkpoints.
sentence-transformers is needed only by the test that checks the two give the same embeddings
(tests/test_y_encoder_st.py).

Read: a Transformer, a Pooling (mean, with or without the prompt's tokens), any Dense layers, an optional
Normalize, in that order; anything else is refused with the file, key and value that says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from safetensors.torch import load_file

ORDER = "a Transformer, a Pooling, any Dense layers, then an optional Normalize"
LEGACY_MEAN = "pooling_mode_mean_tokens"  # sentence-transformers < 5 wrote one boolean per pooling mode
DENSE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


class FolderError(ValueError):
    """A sentence-transformers folder the Y-encoder cannot read as it is: the message names file, key and value."""


@dataclass(frozen=True)
class DenseSpec:
    """One Dense module: Linear(in, out, bias) then an activation (a torch.nn class name)."""

    in_features: int
    out_features: int
    bias: bool
    activation: str
    weights: Path


@dataclass(frozen=True)
class Pipeline:
    """What a folder's modules.json and configs say the embedder does after the backbone."""

    source: str
    transformer_path: str = ""
    include_prompt: bool = True
    dense: tuple[DenseSpec, ...] = ()
    normalize: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    max_seq_length: int | None = None

    def prompt(self, name: str) -> str:
        """The text of the prompt `name` ("" for none)."""
        if not name:
            return ""
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise FolderError(f"{self.source}/config_sentence_transformers.json: no prompt named {name!r} under "
                              f"'prompts' (model.y_encoder.prompt); the folder has: {known}")
        return self.prompts[name]

    def describe(self) -> list[str]:
        """The modules, one short name each, for the run's parity block."""
        pooling = "Pooling(mean)" if self.include_prompt else "Pooling(mean, prompt excluded)"
        dense = [f"Dense({d.in_features}->{d.out_features}, {d.activation})" for d in self.dense]
        return ["Transformer", pooling, *dense, *(["Normalize"] if self.normalize else [])]


def _file(source: str, rel: str, local_only: bool) -> Path | None:
    """`rel` inside the folder `source` (a directory, or a hub id read through the hub cache); None if absent."""
    if Path(source).is_dir():
        path = Path(source) / rel
        return path if path.is_file() else None
    try:
        return Path(hf_hub_download(source, rel, local_files_only=local_only))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def _json(source: str, rel: str, local_only: bool, required: bool = False) -> Any:
    path = _file(source, rel, local_only)
    if path is None:
        if required:
            where = "" if Path(source).is_dir() else f" (looked up in the Hugging Face hub{' cache' if local_only else ''})"
            raise FileNotFoundError(f"{source}: no {rel}{where}; model.y_encoder.pipeline=sentence_transformers reads "
                                    "a sentence-transformers folder (one with modules.json)")
        return {}
    return json.loads(path.read_text())


def _kind(entry: dict, source: str) -> str:
    """'sentence_transformers.models.Dense' (or any newer module path) -> 'Dense'."""
    kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
    if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
        raise FolderError(f"{source}/modules.json: module {entry.get('idx')} has type {entry.get('type')!r}; the "
                          f"Y-encoder reads {ORDER}")
    return kind


def _check_order(kinds: list[str], source: str) -> None:
    body = kinds[2:-1] if kinds[-1:] == ["Normalize"] and len(kinds) > 2 else kinds[2:]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Dense" for k in body):
        raise FolderError(f"{source}/modules.json: modules {kinds}; the Y-encoder reads {ORDER}")


def _pooling(source: str, path: str, local_only: bool) -> bool:
    """Whether the mean includes the prompt's tokens; refuses any other pooling than the mean."""
    rel = f"{path}/config.json"
    cfg = _json(source, rel, local_only, required=True)
    if "pooling_mode" in cfg:
        mode = cfg["pooling_mode"]
        modes = [mode] if isinstance(mode, str) else list(mode)
    else:
        modes = [k[len("pooling_mode_"):] for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
        modes = ["mean" if m == LEGACY_MEAN[len("pooling_mode_"):] else m for m in modes]
    if modes != ["mean"]:
        raise FolderError(f"{source}/{rel}: pooling_mode is {modes}; the Y-encoder pools by the mean only")
    return bool(cfg.get("include_prompt", True))


def _dense(source: str, path: str, local_only: bool) -> DenseSpec:
    rel = f"{path}/config.json"
    cfg = _json(source, rel, local_only, required=True)
    for key, value in (("use_residual", False), ("module_input_name", "sentence_embedding")):
        if cfg.get(key, value) != value:
            raise FolderError(f"{source}/{rel}: {key} is {cfg[key]!r}; the Y-encoder reads Dense layers with {value!r}")
    weights = next((p for w in DENSE_WEIGHTS if (p := _file(source, f"{path}/{w}", local_only)) is not None), None)
    if weights is None:
        raise FileNotFoundError(f"{source}/{path}: no {' or '.join(DENSE_WEIGHTS)} (the Dense layer's weights)")
    activation = str(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")).rsplit(".", 1)[-1]
    if not isinstance(getattr(nn, activation, None), type) or not issubclass(getattr(nn, activation), nn.Module):
        raise FolderError(f"{source}/{rel}: activation_function is {cfg.get('activation_function')!r}; the Y-encoder "
                          "reads a torch.nn module class (Identity, Tanh, ...)")
    return DenseSpec(int(cfg["in_features"]), int(cfg["out_features"]), bool(cfg.get("bias", True)), activation, weights)


def _transformer_settings(source: str, path: str, local_only: bool) -> int | None:
    """The Transformer module's max_seq_length (None where unset); refuses settings the Y-encoder does not apply."""
    rel = f"{path}/sentence_bert_config.json".lstrip("/")
    cfg = _json(source, rel, local_only)
    if cfg.get("do_lower_case"):
        raise FolderError(f"{source}/{rel}: do_lower_case is true; the Y-encoder passes texts as they are")
    output = cfg.get("modality_config", {}).get("text", {}).get("method_output_name", "last_hidden_state")
    if output != "last_hidden_state":
        raise FolderError(f"{source}/{rel}: modality_config.text.method_output_name is {output!r}; the Y-encoder "
                          "pools the backbone's last_hidden_state")
    return int(cfg["max_seq_length"]) if cfg.get("max_seq_length") else None


def read_pipeline(source: str, local_only: bool = False) -> Pipeline:
    """The folder `source` (a directory or hub id) as a Pipeline; local_only reads the hub cache only."""
    entries = _json(source, "modules.json", local_only, required=True)
    kinds = [_kind(e, source) for e in entries]
    _check_order(kinds, source)
    paths = [str(e.get("path", "")) for e in entries]
    prompts = _json(source, "config_sentence_transformers.json", local_only).get("prompts") or {}
    return Pipeline(source=source, transformer_path=paths[0], include_prompt=_pooling(source, paths[1], local_only),
                    dense=tuple(_dense(source, p, local_only) for k, p in zip(kinds, paths) if k == "Dense"),
                    normalize=kinds[-1] == "Normalize", prompts=dict(prompts),
                    max_seq_length=_transformer_settings(source, paths[0], local_only))


def prompt_tokens(tokenizer, prompt: str) -> int:
    """How many leading tokens of a prompted text are the prompt's: the prompt tokenized alone, less a trailing
    special token (EOS, SEP) that the full text has only at its end."""
    ids = tokenizer(prompt)["input_ids"]
    return len(ids) - (1 if ids and ids[-1] in tokenizer.all_special_ids else 0)


def _load_linear(linear: nn.Linear, spec: DenseSpec) -> None:
    if spec.weights.suffix == ".safetensors":
        state = load_file(str(spec.weights))
    else:
        state = torch.load(spec.weights, map_location="cpu", weights_only=True)
    state = {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
    try:
        linear.load_state_dict(state)
    except RuntimeError as e:
        raise FolderError(f"{spec.weights}: the weights do not fit Linear({spec.in_features}, {spec.out_features}, "
                          f"bias={spec.bias}) of its config.json: {e}") from e


class SentenceHead(nn.Module):
    """The folder's modules after pooling: each Dense (Linear, then its activation), then Normalize."""

    def __init__(self, pipe: Pipeline, meta: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        for spec in pipe.dense:
            linear = nn.Linear(spec.in_features, spec.out_features, bias=spec.bias, device="meta" if meta else None)
            if not meta:
                _load_linear(linear, spec)
            layers += [linear, getattr(nn, spec.activation)()]
        self.layers = nn.Sequential(*layers)
        self.normalize = pipe.normalize
        self.out_features = pipe.dense[-1].out_features if pipe.dense else None

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = self.layers(pooled)
        return F.normalize(x, p=2, dim=-1) if self.normalize else x
