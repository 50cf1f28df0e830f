"""A run's checkpoint as a portable folder: safetensors weights, a config that rebuilds the model with no
hub, no suite cache and no DeepSpeed, and the tokenizers it needs.

    python -m bench.export results/runs/<run_id> --out exported/<name> [--checkpoint TAG] [--push-to-hub REPO]
    python -m bench.eval exported/<name>            # evaluates it like a run's checkpoint

The folder:
    model.safetensors       every weight in fp32, consolidated from any ZeRO stage (the frozen X-encoder too)
    config.json             format, run_id, samples_seen, stage, checkpoint, parity, and the run's config with
                            each pretrained backbone replaced by its architecture (`arch`) and each tokenizer
                            by a folder below: building the model reads nothing outside this folder
    tokenizers/lm/, tokenizers/y_encoder/   the tokenizers (save_pretrained)

In Python (the registry builds the model from the config, the weights fill it):

    from bench.tools.export import load_export
    cfg, model = load_export("exported/<name>")      # a RunConfig and the model, in eval mode
    scores = model.score(batch, candidates)           # the model protocol (models/protocol.py)

--push-to-hub uploads the folder with huggingface_hub (a thin call: it needs a network and a token, which
the machines this suite is tested on do not have).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from transformers import AutoConfig

from bench.config import RunConfig
from bench.configlib import from_dict, to_dict
from bench.results import RunDir, read_json, write_json
from bench.run.build import build_model
from bench.run.checkpoint import checkpoint_meta, load_weights, model_state, read_latest
from bench.run.resolve import resolve_model_config
from models.config import BackboneConfig, ModelConfig, TextPretrainingConfig
from models.encoders import load_tokenizer, resolve_source

FORMAT = "vljepa-bench-export/1"
CONFIG, WEIGHTS = "config.json", "model.safetensors"
TOKENIZERS = {"lm": "tokenizers/lm", "y_encoder": "tokenizers/y_encoder"}  # model section -> folder in the export


class ExportError(ValueError):
    pass


def is_export(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def portable_backbone(spec: BackboneConfig) -> BackboneConfig:
    """A pretrained backbone as its architecture alone (its weights come from model.safetensors)."""
    if not spec.pretrained:
        return spec
    arch = AutoConfig.from_pretrained(resolve_source(spec.pretrained), **spec.overrides).to_diff_dict()
    arch.pop("transformers_version", None)
    return dataclasses.replace(spec, pretrained="", arch=arch, overrides={})


def portable_model_config(model: ModelConfig, out: Path) -> ModelConfig:
    """The model config with architectures for pretrained backbones, and the tokenizers saved under out
    (their config entries relative to it)."""
    model = resolve_model_config(model)  # built-in tokenizers -> folders
    sections = {}
    for section, folder in TOKENIZERS.items():
        sub = getattr(model, section)
        source = sub.tokenizer or sub.backbone.pretrained
        if source:
            load_tokenizer(sub.tokenizer, sub.backbone.pretrained).save_pretrained(out / folder)
        sections[section] = dataclasses.replace(sub, backbone=portable_backbone(sub.backbone),
                                                tokenizer=folder if source else "")
    # a text-pretrained LM's weights are in the checkpoint too: the export never pretrains again
    sections["lm"] = dataclasses.replace(sections["lm"], text_pretraining=TextPretrainingConfig())
    x = dataclasses.replace(model.x_encoder, backbone=portable_backbone(model.x_encoder.backbone))
    return dataclasses.replace(model, x_encoder=x, **sections)


def x_encoder_mismatch(model: torch.nn.Module, parity: dict[str, Any]) -> str | None:
    """What differs between a loaded model's frozen X-encoder (its weights, its feature standardization) and
    the one its run recorded; None when nothing does."""
    have = model.parity()
    for key, what in (("x_encoder_hash", "weights"), ("x_feature_norm_hash", "feature standardization")):
        if parity.get(key) and have.get(key) != parity[key]:
            return f"the X-encoder's {what} do not match the run's (hash {have.get(key)} != {parity[key]})"
    return None


def _check_x_encoder(model: torch.nn.Module, parity: dict[str, Any], where: Path) -> None:
    problem = x_encoder_mismatch(model, parity)
    if problem:
        raise ExportError(f"{where}: {problem}")


def export(run: RunDir, ckpt: Path, out: Path) -> Path:
    """Write the portable folder of checkpoint ckpt of run into out; returns out."""
    record = run.read_record()
    cfg = from_dict(RunConfig, record["config"])
    meta = checkpoint_meta(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    portable = dataclasses.replace(cfg, model=portable_model_config(cfg.model, out))
    model = _build(portable, out)
    try:
        load_weights(model, model_state(ckpt), str(ckpt))
    except ValueError as e:
        raise ExportError(str(e)) from None
    _check_x_encoder(model, record.get("parity", {}), ckpt)
    tmp = out / f".{WEIGHTS}.tmp"
    save_model(model, str(tmp), metadata={"format": "pt", "run_id": record["run_id"]})
    os.replace(tmp, out / WEIGHTS)  # whole or absent: a killed export leaves no half-written weights
    write_json(out / CONFIG, {
        "format": FORMAT, "run_id": record["run_id"], "name": cfg.name, "checkpoint": ckpt.name,
        "samples_seen": meta["samples_seen"], "stage": meta["stage"], "parity": record.get("parity", {}),
        "git_commit": record.get("git_commit"), "exported": time.time(), "config": to_dict(portable),
    })
    for f in out.rglob("*"):  # one mode for every file: safetensors writes its file private (0600)
        if f.is_file():
            f.chmod(0o644)
    return out


def _build(cfg: RunConfig, folder: Path) -> torch.nn.Module:
    """The model of an export's config, its tokenizer folders read from inside `folder`."""
    sections = {s: dataclasses.replace(getattr(cfg.model, s), tokenizer=str(folder / getattr(cfg.model, s).tokenizer))
                for s in TOKENIZERS if getattr(cfg.model, s).tokenizer}
    return build_model(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **sections)))


def read_export(folder: Path) -> dict[str, Any]:
    info = read_json(folder / CONFIG)
    if info.get("format") != FORMAT:
        raise ExportError(f"{folder / CONFIG}: format {info.get('format')!r}, expected {FORMAT!r}")
    return info


def load_export(folder: str | Path) -> tuple[RunConfig, torch.nn.Module]:
    """(the run's config, its model in eval mode with the exported weights) from an export folder."""
    folder = Path(folder)
    info = read_export(folder)
    cfg = from_dict(RunConfig, info["config"])
    model = _build(cfg, folder)
    load_model(model, str(folder / WEIGHTS), strict=True)
    _check_x_encoder(model, info.get("parity", {}), folder)
    return cfg, model.eval()


def push_to_hub(folder: Path, repo: str) -> str:
    """Upload an export folder to a Hugging Face model repository (created if missing); returns its URL."""
    from huggingface_hub import HfApi  # lazy: only this option uses it

    api = HfApi()
    api.create_repo(repo, repo_type="model", exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model")
    return f"https://huggingface.co/{repo}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run folder (its latest intact checkpoint) or one checkpoint folder")
    p.add_argument("--out", type=Path, required=True, help="the folder to write")
    p.add_argument("--checkpoint", help="a checkpoint tag under the run's checkpoints/ (default: the latest)")
    p.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to this Hugging Face repository")
    args = p.parse_args(argv)
    run = RunDir(args.run)
    if run.exists():
        if args.checkpoint:
            ckpt = run.checkpoints / args.checkpoint
        else:
            latest = read_latest(run.checkpoints, log=lambda m: print(f"note: {m}", file=sys.stderr))
            ckpt = run.checkpoints / latest["tag"] if latest else None
    else:
        run, ckpt = RunDir(args.run.parent.parent), args.run
    if not run.exists():
        print(f"error: {args.run} is neither a run folder (with run.json) nor a checkpoint folder inside one", file=sys.stderr)
        return 2
    if ckpt is None or not ckpt.is_dir():
        print(f"error: {run.path}: no checkpoint {args.checkpoint or ''} under {run.checkpoints}".replace("  ", " "),
              file=sys.stderr)
        return 2
    try:
        out = export(run, ckpt, args.out)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = read_export(out)
    print(f"exported {run.path.name} at {info['samples_seen']:,} samples ({ckpt.name}) -> {out}")
    if args.push_to_hub:
        print(f"uploaded: {push_to_hub(out, args.push_to_hub)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
