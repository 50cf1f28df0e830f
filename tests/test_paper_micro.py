"""experiments/base/paper_micro.yaml: the paper preset's classes, settings and data path, shrunk to run on CPU.

The fast tests hold the preset to the paper's structure (model types, GQA, llama3 rope scaling, tied
embeddings, Gemma3's bidirectional sliding-window attention, V-JEPA 2's tubelets, bf16, ZeRO-2, a two-dataset
mixture per stage, every task read from files) and its offline tokenizers to the paper's classes; the slow
ones run it as written from an empty cache: both twins, and two processes under ZeRO-3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.config import REPO_ROOT, load_run_config
from bench.data.datasets import DatasetError, resolve_name
from bench.results import EVALS, RUN_RECORD, read_json, read_jsonl
from tests.tinyrun import clean_env

PRESET = "experiments/base/paper_micro.yaml"
TASKS = {"captioning", "classification", "hardneg", "retrieval", "streaming", "vqa", "world"}
VLM = ["model.name=vlm", "model.lm.layers=:", "model.lm.train_embeddings=true"]  # jepa_vs_vlm.yaml's zip
VLM_TASKS = TASKS - {"hardneg", "streaming"}  # both need a text embedding, which the VLM has not


def test_the_preset_keeps_the_papers_structure():
    cfg, paper = load_run_config(PRESET), load_run_config("base/paper.yaml")
    lm, y, x = cfg.model.lm.backbone.arch, cfg.model.y_encoder.backbone.arch, cfg.model.x_encoder.backbone.arch
    assert lm["model_type"] == "llama" and lm["num_key_value_heads"] < lm["num_attention_heads"]
    assert lm["tie_word_embeddings"] and lm["rope_parameters"] == paper.model.lm.backbone.arch["rope_parameters"]
    assert y["model_type"] == "gemma3_text" and y["use_bidirectional_attention"]
    assert y["sliding_window"] < y["max_position_embeddings"]
    py = paper.model.y_encoder.backbone.arch  # EmbeddingGemma's layout: 3 query heads of an explicit head_dim, 1 KV head
    assert [y[k] for k in ("num_attention_heads", "num_key_value_heads")] == [py["num_attention_heads"], 1]
    assert y["head_dim"] * y["num_attention_heads"] == y["hidden_size"]
    assert (x["model_type"], x["tubelet_size"], x["patch_size"], x["frames_per_clip"]) == ("vjepa2", 2, 16, 16)
    assert cfg.model.x_encoder.pool == "none" and cfg.data.manifest.frames == 16
    assert not any(b.pretrained for b in (cfg.model.lm.backbone, cfg.model.y_encoder.backbone, cfg.model.x_encoder.backbone))
    assert (cfg.train.precision, cfg.train.zero_stage, cfg.data.source) == ("bf16", 2, "manifest")
    assert [len(s.datasets) for s in cfg.train.stages] == [2, 2] and cfg.train.stages[0].frames == 2
    assert set(cfg.eval.tasks) == TASKS and set(cfg.eval.sets) == TASKS


def test_offline_tokenizers_are_the_paper_classes(tmp_path):
    from transformers import AutoTokenizer, GemmaTokenizerFast, PreTrainedTokenizerFast

    from bench.data.tokenizer import build_gemma_bpe_tokenizer, build_llama_bpe_tokenizer

    cfg = load_run_config(PRESET)
    llama = AutoTokenizer.from_pretrained(build_llama_bpe_tokenizer(tmp_path))
    gemma = AutoTokenizer.from_pretrained(build_gemma_bpe_tokenizer(tmp_path))
    assert isinstance(llama, PreTrainedTokenizerFast) and isinstance(gemma, GemmaTokenizerFast)
    assert len(llama) == cfg.model.lm.backbone.arch["vocab_size"]  # the arch's vocabulary is the tokenizer's
    assert len(gemma) == cfg.model.y_encoder.backbone.arch["vocab_size"]
    text = "a small red circle moves left near a blue square"
    ids = llama(text)["input_ids"]
    assert ids[0] == llama.bos_token_id and llama.pad_token is None and 3 < len(ids) < 40
    assert llama.decode(ids, skip_special_tokens=True) == text
    ids = gemma(text + " ü")["input_ids"]  # a character it never saw: byte fallback, not <unk>
    assert ids[0] == gemma.bos_token_id and gemma.unk_token_id not in ids
    assert gemma.decode(ids, skip_special_tokens=True) == text + " ü"
    assert build_llama_bpe_tokenizer(tmp_path) == build_llama_bpe_tokenizer(tmp_path)  # built once


def test_the_export_writes_every_task():
    from bench.eval.sets.world_files import EXPORTED_TASKS
    from bench.eval.tasks import TASKS as REGISTERED

    assert set(EXPORTED_TASKS) == set(REGISTERED) == TASKS  # a new task needs its files (and a line in the preset)


def test_an_unknown_builtin_dataset_names_the_known_ones():
    import bench.eval.sets.resolve  # noqa: F401  registers the built-in datasets

    with pytest.raises(DatasetError, match=r"unknown built-in dataset 'builtin:micro_nope'; known: builtin:micro_val"):
        resolve_name("builtin:micro_nope", {})


def _train(out: Path, *overrides: str, processes: int = 1) -> Path:
    """`python -m bench.train` on the preset as written (torchrun for several processes); the run's folder."""
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", "29547"] \
        if processes > 1 else []
    args = [sys.executable, *launcher, "-m", "bench.train", PRESET, f"output_dir={out}", *overrides]
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, env=clean_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return next(out.iterdir())


def _check_run(rundir: Path, tasks: set[str], world_size: int) -> dict:
    rec = read_json(rundir / RUN_RECORD)
    assert (rec["status"], rec["samples_seen"], rec["world_size"]) == ("done", 32, world_size)
    mixture = rec["parity"]["data_mixture"]
    assert list(mixture) == ["pretrain_images", "pretrain_video"] and all(len(m) == 2 for m in mixture.values())
    evals = read_jsonl(rundir / EVALS)
    assert {r["task"] for r in evals} == tasks and not [r for r in evals if r.get("error")]
    assert {r["dataset"] for r in evals} == {"builtin:micro_val"}  # every task read from the exported files
    return rec


@pytest.mark.slow
@pytest.mark.parametrize("twin", ["vljepa", "vlm"])
def test_both_twins_train_and_evaluate_every_task_from_files(twin, tmp_path):
    from bench.eval.sets.micro import micro_root

    rundir = _train(tmp_path / "runs", *(VLM if twin == "vlm" else []))
    _check_run(rundir, VLM_TASKS if twin == "vlm" else TASKS, 1)
    registry = yaml.safe_load((micro_root() / "datasets.yaml").read_text())  # the export's own registry
    assert set(registry["datasets"]) == {"micro_val", "micro_videos", "micro_images"}


@pytest.mark.slow
def test_two_processes_under_zero3_finish(tmp_path):
    rundir = _train(tmp_path / "runs", "train.zero_stage=3", processes=2)
    rec = _check_run(rundir, TASKS, 2)
    assert rec["config"]["train"]["zero_stage"] == 3
