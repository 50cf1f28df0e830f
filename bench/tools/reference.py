"""Off-the-shelf reference models evaluated without training, their records in the results store like a run's.

    python -m bench.eval hf:openai/clip-vit-base-patch32 --tasks classification retrieval
    python -m bench.eval hf:/models/siglip2-base --sets classification=kinetics400 --frames 16
    python -m bench.eval hf:HuggingFaceTB/SmolVLM-256M-Instruct --tasks captioning classification vqa

A reference spec is `hf:PATH_OR_ID`, a transformers folder or hub id (read offline from the local cache when
HF_HUB_OFFLINE=1), read by the adapter its config's model_type names (ADAPTERS): a contrastive dual encoder
(CLIP, SigLIP, SigLIP2: models/reference_clip.py) or a generative VLM (Idefics3/SmolVLM, LLaVA:
models/reference_vlm.py). `open_clip:ARCH[:WEIGHTS]` is an open_clip model (models/reference_openclip.py), where
open_clip_torch and a torchvision matching the installed torch are installed (docs/peers.md).

The evaluation settings ride on a run config: experiments/base/tiny.yaml (CARRIER) with the shapes world read at
the model's own clip shape (its frames, its processor's image size: data.shapes.frames, data.shapes.size, which
also set the size dataset folders are decoded at), no feature cache (a reference model reads pixels), no VQA
kinds excluded (the tiny preset excludes shape because its random encoder cannot see it), and the command line's
--tasks, --sets, --split and --size applied as for a run. The records go to <output_dir>/<id> (results/runs by
default), id a hash of the spec, the weights' hash, the adapter's reading (pooling, frames, size, scoring) and
the evaluation settings: run.json (`reference: true`, the spec, the weights' hash, the adapter's reading and the
queries it was asked, the code's commit and the libraries' versions, and the sections of the config the
evaluation read, with a training budget of 0 samples so that analysis reads the records as the model's final
values) and evals.jsonl, records as a run's at samples_seen 0. The queries are those of the data stage the model
names (`query_stage`: a generative VLM is asked the instruction stage's, "describe the video"; a dual encoder
none). Tasks the model cannot do get one `not_applicable` record each, with the reason, not a failure: a dual
encoder writes no text (captioning, streaming), a generative VLM has no embedding (retrieval, streaming, hardneg).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import PIL
import tokenizers
import torch

from bench.config import REPO_ROOT, RunConfig, load_run_config
from bench.configlib import to_dict
from bench.eval.sets.resolve import load_sets
from bench.eval.tasks import TASK_FAILED, evaluate
from bench.eval.tasks.common import EvalContext, stage_queries
from bench.results import DONE, FAILED, RUNNING, RunDir, append_jsonl, prediction_writer, write_json
from bench.run.provenance import git_commit, versions
from models import reference_clip, reference_openclip, reference_vlm
from models.reference_base import ReferenceModelError
from models.reference_clip import DEFAULT_FRAMES, HFDualEncoder, read_config
from models.reference_vlm import HFGenerativeVLM

PREFIXES = ("hf:", "open_clip:")
CARRIER = REPO_ROOT / "experiments" / "base" / "tiny.yaml"
STAGE = "reference"  # the records' stage: no training stage produced them
NOT_APPLICABLE = "not_applicable"  # the metric of a task the model cannot do
ReferenceModel = HFDualEncoder | HFGenerativeVLM  # or models/reference_openclip.py's OpenCLIPDualEncoder
# config.model_type -> the adapter's loader (source, spec, frames): one registry, each adapter's families
ADAPTERS: dict[str, Callable[[str, str, int], ReferenceModel]] = {
    **{t: reference_clip.load_hf for t in reference_clip.TEXT_PADDING},
    **{t: reference_vlm.load_hf for t in reference_vlm.FAMILIES},
}
# what of the adapter's description changes the numbers (its class names vary with the library's version)
READING = ("video_pooling", "frames", "image_size", "score", "text_padding", "video_input", "prompt", "query_stage",
           "candidate_end", "answer_separator", "generation", "max_candidate_tokens", "processor_kwargs")
# the tasks a model cannot do, and why: those that need text it does not write, or an embedding it does not have
TEXT_TASKS = {"captioning": "the model writes no text (a contrastive dual encoder)",
              "streaming": "selective decoding turns embeddings into text; the model writes none"}
EMBEDDING_TASKS = {"retrieval": "a reference model's retrieval ranks clips and texts by their embeddings; the model has "
                                "none (a generative VLM: the likelihood of every text on every clip is N x N prefix passes)",
                   "streaming": "selective decoding clusters a stream of clip embeddings; the model has none",
                   "hardneg": "text-only hard negatives compare text embeddings; the model has none"}


def is_reference(text: str) -> bool:
    """Whether a bench.eval argument is a reference spec rather than a run, checkpoint or export folder."""
    return text.startswith(PREFIXES)


def load_reference(spec: str, frames: int = DEFAULT_FRAMES) -> ReferenceModel:
    """The adapter of a reference spec, chosen by its config's model_type (ADAPTERS); errors name the spec and the
    forms a spec takes."""
    kind, _, rest = spec.partition(":")
    if not rest:
        raise ReferenceModelError(f"reference spec {spec!r}: nothing after '{kind}:'; expected hf:PATH_OR_ID")
    if kind == "open_clip":  # the adapter imports open_clip (and torchvision) only now
        return reference_openclip.load_open_clip(rest, spec, frames)
    model_type = read_config(rest, spec).model_type
    if model_type not in ADAPTERS:
        raise ReferenceModelError(
            f"{spec}: model_type {model_type!r} in its config.json; expected a contrastive dual encoder "
            f"({', '.join(reference_clip.TEXT_PADDING)}) or a generative VLM ({', '.join(reference_vlm.FAMILIES)})")
    return ADAPTERS[model_type](rest, spec, frames)


def queries_of(model: ReferenceModel) -> dict[str, str]:
    """The query each task asks the model: those of the data stage it names (an instruction-tuned VLM: the
    instruction stage's), else none (pretraining's)."""
    return stage_queries(getattr(model, "query_stage", "pretrain"))


def carrier_config(model: ReferenceModel, output_dir: str | None = None) -> RunConfig:
    """The run config that carries a reference model's evaluation settings (see the module's docstring)."""
    overrides: dict[str, Any] = {"name": f"reference {model.spec}", "data.cache": False,
                                 "data.shapes.frames": model.frames, "data.shapes.size": model.image_size,
                                 "eval.vqa_exclude": []}
    if output_dir:
        overrides["output_dir"] = output_dir
    return load_run_config(CARRIER, overrides, source=f"reference {model.spec}")


def applicable(cfg: RunConfig, model: Any) -> tuple[RunConfig, dict[str, str]]:
    """(cfg with only the tasks the model can do, {task: why not} for the others)."""
    cannot = {**(EMBEDDING_TASKS if not getattr(model, "has_embedding", True) else {}),
              **(TEXT_TASKS if not getattr(model, "generates_text", True) else {})}
    skipped = {t: why for t, why in cannot.items() if t in cfg.eval.tasks}
    tasks = [t for t in cfg.eval.tasks if t not in skipped]
    return replace(cfg, eval=replace(cfg.eval, tasks=tasks, sets={t: s for t, s in cfg.eval.sets.items() if t in tasks})), skipped


def evaluated_config(cfg: RunConfig) -> dict[str, Any]:
    """The sections of the config the evaluation read (run.json's "config"), with a training budget of 0."""
    return {"seed": cfg.seed, "data": to_dict(cfg.data), "eval": to_dict(cfg.eval), "train": {"budget": {"samples": 0}}}


def reference_id(spec: str, model: ReferenceModel, cfg: RunConfig, skipped: dict[str, str]) -> str:
    """A hash of the spec, the weights, the adapter's reading and the evaluation settings (tasks included)."""
    reading = {k: v for k, v in model.describe().items() if k in READING}
    blob = {"spec": spec, "weights": model.weight_hash(), "adapter": reading, "seed": cfg.seed,
            "data": to_dict(cfg.data, identity_only=True), "eval": to_dict(cfg.eval, identity_only=True),
            "not_applicable": sorted(skipped)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def library_versions() -> dict[str, str]:
    """The run record's versions, and those of what reads a reference model's inputs (tokenizers, Pillow)."""
    return {**versions(), "tokenizers": tokenizers.__version__, "pillow": PIL.__version__}


def start_record(spec: str, rid: str, model: ReferenceModel, cfg: RunConfig, skipped: dict[str, str]) -> dict[str, Any]:
    """run.json as the evaluation starts: a run's keys (analysis reads them alike) and the reference's provenance."""
    now = time.time()
    return {"run_id": rid, "name": cfg.name, "model": spec, "seed": cfg.seed, "reference": True, "spec": spec,
            "weights_hash": model.weight_hash(), "adapter": {**model.describe(), "queries": queries_of(model)},
            "not_applicable": skipped,
            "config": evaluated_config(cfg), "git_commit": git_commit(), "versions": library_versions(),
            "parity": {**model.parity(), "parameters": model.parameter_counts()}, "grid": [0], "samples_seen": 0,
            "train_flops": 0, "train_s": 0.0, "started": now, "updated": now, "status": RUNNING}


def device_of() -> torch.device:
    """A GPU where there is one: a reference model is as large as the paper's encoders, and nothing trains."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def not_applicable_records(skipped: dict[str, str]) -> list[dict[str, Any]]:
    """One record per task the model cannot do: no value, the reason; a metric of its own, not a failure."""
    return [{"task": t, "metric": NOT_APPLICABLE, "value": None, "chance": None, "reason": why}
            for t, why in skipped.items()]


def evaluate_reference(cfg: RunConfig, model: ReferenceModel, skipped: dict[str, str]) -> tuple[list[dict], RunDir]:
    """Every applicable task of cfg.eval on the model, each task's records appended to the reference's evals.jsonl
    as it finishes, per-item outputs under predictions/ as a run's at 0 samples; run.json says how it ended."""
    spec = model.spec
    rid = reference_id(spec, model, cfg, skipped)
    run = RunDir.of(cfg.output_dir, rid)
    record = start_record(spec, rid, model, cfg, skipped)
    write_json(run.record, record)
    run.evals.unlink(missing_ok=True)  # the same spec and settings again: this evaluation's records only
    device = device_of()
    model.to(device)
    commit = record["git_commit"]

    def write(task: str, recs: list[dict]) -> None:
        append_jsonl(run.evals, [{**r, "run_id": rid, "samples_seen": 0, "stage": STAGE, "split": cfg.eval.split,
                                  "train_flops": 0, "train_s": 0.0, "git_commit": commit} for r in recs])

    try:
        recs: list[dict] = []
        if cfg.eval.tasks:
            ctx = EvalContext.from_config(cfg, load_sets(cfg), queries_of(model), device)
            ctx.predictions = prediction_writer(run.predictions(0))
            ctx.log = lambda line: print(f"note: {line}", file=sys.stderr)
            recs = evaluate(model, ctx, cfg.eval.tasks, on_task=write)
        extra = not_applicable_records(skipped)
        write("", extra)
    except BaseException:
        write_json(run.record, {**record, "status": FAILED, "updated": time.time()})
        raise
    failures = [{"task": r["task"], "error": r["error"]} for r in recs if r["metric"] == TASK_FAILED]
    write_json(run.record, {**record, "status": DONE, "finished": time.time(), "updated": time.time(),
                            **({"eval_failures": failures} if failures else {})})
    return recs + extra, run
