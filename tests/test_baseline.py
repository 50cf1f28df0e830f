"""A baseline added as one file (models/dual_encoder.py) gets training and every task unchanged."""

from __future__ import annotations

from dataclasses import replace

import torch

from bench.config import load_run_config, run_id
from bench.data.shapes import TrainSamples
from bench.eval.sets.resolve import load_sets
from bench.eval.tasks import evaluate
from bench.eval.tasks.common import EvalContext
from bench.results import EVALS, read_jsonl
from bench.run.build import build_model
from bench.run.train import run
from models import registry
from models.protocol import Model
from tests.conftest import tiny_overrides


def test_a_registered_baseline_trains_and_runs_tasks(tmp_path):
    assert "dual_encoder" in registry.names()
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        "model.name=dual_encoder", f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=32",
        "train.budget.samples=128", "eval.grid=[0, 128]", "eval.size=16", "eval.batch=16",
        "eval.tasks=[classification, retrieval]"))
    record = run(cfg, log=lambda m: None)
    assert record["status"] == "done" and record["model"] == "dual_encoder"
    evals = read_jsonl(tmp_path / run_id(cfg) / EVALS)
    assert {(r["samples_seen"], r["task"]) for r in evals} >= {(0, "classification"), (128, "retrieval")}

    model = build_model(cfg)
    assert isinstance(model, Model)
    tasks = ["captioning", "hardneg", "world", "vqa"]
    cfg = replace(cfg, eval=replace(cfg.eval, tasks=tasks, size=12, batch=12, decoder_steps=5, decoder_clips=10))
    ctx = EvalContext.for_run(cfg, model, "pretrain", torch.device("cpu"), load_sets(cfg),
                              TrainSamples(cfg.data, cfg.seed))
    tasks = {r["task"] for r in evaluate(model, ctx, tasks)}
    assert tasks == {"captioning", "hardneg", "world", "vqa"}


class MeanPoolRegressor(torch.nn.Module):
    """A baseline written from models/protocol.py alone, as a new user would: the X-encoder's tokens,
    averaged and mapped to a hashed bag-of-words embedding of the target (no Y-encoder, no decoder hook)."""

    has_embedding = True

    def __init__(self, cfg, seed: int = 0, meta: bool = False):
        super().__init__()
        from models.encoders import XEncoder

        self.x_encoder = XEncoder(cfg.x_encoder, seed, meta)
        self.head = torch.nn.Linear(self.x_encoder.dim, 32)

    def _words(self, texts) -> torch.Tensor:
        out = torch.zeros(len(texts), 32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w)) % 32] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)

    def embed(self, batch):
        return torch.nn.functional.normalize(self.head(self.x_encoder.tokens(batch).float().mean(1)), dim=-1)

    def loss(self, batch):
        return {"loss": ((self.embed(batch) - self._words(batch["target"])) ** 2).sum(-1).mean()}

    forward = loss

    def param_groups(self, lr, weight_decay):
        return [{"params": list(self.head.parameters()), "lr": lr, "weight_decay": weight_decay}]

    @torch.no_grad()
    def score(self, batch, candidates):
        from models.protocol import score_by_embedding

        return score_by_embedding(self.embed(batch), candidates, self._words)

    def generate(self, batch, max_tokens=None):
        return ["a shape moves"] * len(batch["query"])

    def parameter_counts(self):
        from models.protocol import count_parameters

        return {"x_encoder": count_parameters(self.x_encoder), "head": count_parameters(self.head)}

    def parity(self):
        return {"x_encoder_hash": self.x_encoder.weight_hash(), "query_tokenizer": None}


def test_a_baseline_from_the_protocol_alone_trains_and_runs_every_task(tmp_path):
    """Nothing beyond models/protocol.py's required members: training, every task (captioning through its
    own generate(); the tasks that need an optional member skip it)."""
    from bench.eval.tasks import TASKS

    if "test_mean_pool" not in registry.names():
        registry.register("test_mean_pool")(MeanPoolRegressor)
    cfg = load_run_config("base/tiny.yaml", tiny_overrides(
        "model.name=test_mean_pool", f"output_dir={tmp_path}", "train.global_batch=32", "train.micro_batch=32",
        "train.budget.samples=64", "eval.grid=[64]", "eval.size=12", "eval.batch=12", "eval.streams=2",
        f"eval.tasks={sorted(TASKS)}"))
    record = run(cfg, log=lambda m: None)
    assert record["status"] == "done"
    evals = read_jsonl(tmp_path / run_id(cfg) / EVALS)
    # no decoding hook: nothing turns its embedding stream into text; no embed_text: no text-only test
    assert {r["task"] for r in evals} == set(TASKS) - {"streaming", "hardneg"}
    assert isinstance(build_model(cfg), Model)
