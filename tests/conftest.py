"""Shared fixtures: tiny run configs that build in a second and train in a few."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# a tiny random BERT over the shapes vocabulary: a Y-encoder that trains in milliseconds
FAST_Y = [
    "model.y_encoder.backbone.pretrained=",
    "model.y_encoder.backbone.arch={model_type: bert, hidden_size: 64, num_hidden_layers: 1, "
    "num_attention_heads: 2, intermediate_size: 128, max_position_embeddings: 64}",
    "model.y_encoder.tokenizer=builtin:shapes",
    "model.y_encoder.lr_multiplier=0.05",
]
SMALL_DATA = ["data.shapes.train_size=512", "data.shapes.val_size=64", "data.shapes.test_size=64",
              "data.shapes.novel_size=32"]


def tiny_overrides(*extra: str) -> list[str]:
    return [*FAST_Y, *SMALL_DATA, "model.embed_dim=64", *extra]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VLJEPA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _no_leaked_rank():
    """A test that trains in this process keeps its process group (the next one reuses it), but the rank
    and port it exported must not reach the processes later tests start: they would bind the same port."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    before = {k: os.environ.get(k) for k in names}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """The tests' tiny world on disk (python -m bench.tools.export_world): its whole val split for every task, a
    training manifest of 64 clips (5 reference captions each), and a dataset registry naming them."""
    from bench.tools.export_world import main

    out = tmp_path_factory.mktemp("export")
    data = [o for o in tiny_overrides() if o.startswith("data.")]
    assert main(["--out", str(out), "--train", "64", "--streams", "2", *data]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_rundir(tmp_path_factory):
    """A tiny VL-JEPA run of 32 samples, no evaluation: a checkpoint for python -m bench.eval on other sets."""
    from bench.config import load_run_config
    from bench.run.train import run

    out = tmp_path_factory.mktemp("tinyrun")
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        f"output_dir={out}", "train.global_batch=32", "train.micro_batch=32", "train.budget.samples=32",
        "train.warmup_samples=0", "eval.grid=[]", "eval.tasks=[]", "eval.batch=16", "eval.decoder_steps=5",
        "eval.decoder_clips=16", "eval.caption_metrics=[CIDEr]"))
    rec = run(cfg, log=lambda m: None)
    return out / rec["run_id"]


# sweeps: a tiny run's settings, a sweep file from text, and a two-loss tiny sweep (test_sweep, test_slurm)
TINY_RUN = [*FAST_Y, *SMALL_DATA, "model.embed_dim=64", "train.global_batch=32", "train.micro_batch=32",
            "train.warmup_samples=64", "train.log_every=1", "eval.size=16", "eval.batch=16",
            "eval.tasks=[classification, vqa]"]


def sweep_file(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).replace("RESULTS", str(tmp_path / "results")))
    return path


def tiny_sweep(tmp_path: Path, budget: int = 128, losses=("infonce", "cosine"), seeds=(0,)) -> Path:
    import yaml

    from bench.config import parse_override

    body = {"name": "tinyloss", "base": "base/tiny.yaml", "results": str(tmp_path / "results"),
            "set": {**dict(parse_override(o) for o in TINY_RUN), "train.budget.samples": budget,
                    "eval.grid": [budget]},
            "grid": {"model.loss.name": list(losses)}, "seeds": list(seeds)}
    path = tmp_path / "tinyloss.yaml"
    path.write_text(yaml.safe_dump(body))
    return path
