"""One run: data -> model -> DeepSpeed engine -> steps, evaluations on the sample grid, checkpoints.

    python -m bench.train experiments/base/tiny.yaml [section.key=value ...] [--results DIR]
    torchrun --nproc_per_node 2 -m bench.train experiments/base/tiny.yaml   # several processes

The run stops at exactly train.budget.samples samples seen (all processes together). It resumes
from its latest checkpoint by itself; on SIGUSR1, SIGUSR2 or SIGTERM it finishes the current
step, checkpoints and exits (status "preempted") so that a launcher can requeue it.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from bench import dist as distenv
from bench import speedups
from bench.build import build_model
from bench.cache import fit_feature_norm, training_samples
from bench.checkpoint import Checkpoints
from bench.config import RunConfig, config_from_argv, run_id
from bench.configlib import to_dict
from bench.data.loader import SharedLoader, fingerprint
from bench.data.manifest import ManifestError
from bench.data.shapes import ShapesWorld
from bench.data.sources import stage_data, train_samples, training_data_problems
from bench.engine import StagePlan, make_engine, plan_stages
from bench.evalsets.registry import EvalSetError, load_sets, validate
from bench.flops import flops_per_sample
from bench.liveness import Heartbeat, Watchdog
from bench.progress import StepLog
from bench.provenance import git_commit, versions
from bench.results import DONE, FAILED, PREEMPTED, RUNNING, RunDir, append_jsonl, prediction_writer, truncate_jsonl, write_json
from bench.step import NonFiniteLoss, optimizer_step, seed_process, to_device
from bench.tasks import evaluate
from bench.tasks.common import EvalContext
from bench.trackers import Trackers

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class Preempted(Exception):
    """The run checkpointed on a signal and stopped; running it again resumes it."""


class _StopFlag:
    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in STOP_SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: the launcher handles signals
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def forward(self) -> None:
        """After our checkpoint: hand the signal to the handler that was there before (submitit's
        requeue on SIGUSR2, its bypass on SIGTERM), if there was one."""
        old = self._old.get(self.signum)
        if callable(old):
            old(self.signum, None)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


class Run:
    """State and records of one run; `execute` does the work."""

    def __init__(self, cfg: RunConfig, log=print):
        self.cfg = cfg
        self.id = run_id(cfg)
        self.dir = RunDir.of(cfg.output_dir, self.id)
        self.log_fn = log
        self.stages = plan_stages(cfg)
        self.grid = cfg.eval_grid()
        self.eval_sets = None
        self._sources: dict[int, Any] = {}  # stage index -> its training samples
        self._loader_sources: dict[int, Any] = {}  # stage index -> what its loader reads (cached or not)

    def log(self, msg: str) -> None:
        if self.env.is_main:
            line = f"[{self.id}] {msg}"
            self.log_fn(line)
            with open(self.dir.log, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    # ------------------------------------------------------------------ records
    def _record(self, status: str, **extra: Any) -> None:
        self.record.update(status=status, updated=time.time(), **extra)
        if self.env.is_main:
            write_json(self.dir.record, self.record)

    def _evaluate(self, model, samples_seen: int, stage: StagePlan) -> None:
        if not self.cfg.eval.tasks:
            return
        t0 = time.perf_counter()
        if self.eval_sets is None:
            self.eval_sets = load_sets(self.cfg, self.world)
        source = self._samples(stage)
        kept = prediction_writer(self.dir.predictions(samples_seen)) if self.env.is_main else None
        ctx = EvalContext.for_run(self.cfg, model, stage.data_stage, self.device, self.eval_sets, source,
                                  self.env.rank, self.log, kept)
        self.heartbeat.beat(f"evaluating at {samples_seen:,} samples", samples_seen)
        recs = evaluate(model, ctx, self.cfg.eval.tasks,
                        on_task=lambda task, _: self.heartbeat.beat(f"evaluated {task} at {samples_seen:,} samples"))
        if self.env.is_main:
            rows = [{**r, "run_id": self.id, "samples_seen": samples_seen, "stage": stage.name,
                     "train_flops": self._train_flops(samples_seen), "train_s": round(self.train_s, 3)} for r in recs]
            append_jsonl(self.dir.evals, rows)
            self.trackers.log_evals(recs, samples_seen)
            several = {t for t, sets in self.eval_sets.items() if len(sets) > 1}
            shown = ", ".join(f"{r['task']}/{r['metric']} {r['value']:.1f}"
                              + (f" [{r['dataset']}]" if r["task"] in several else "")
                              for r in recs if r["metric"] in ("top1", "top5", "t2v_R@1", "accuracy", "CIDEr"))
            self.log(f"eval at {samples_seen:,} samples ({time.perf_counter() - t0:.1f}s): {shown}")

    # ------------------------------------------------------------------ the run
    def execute(self) -> dict[str, Any]:
        # every eval set and training dataset there and readable, before anything is built or written
        validate(self.cfg, f"run {self.cfg.name}")
        problems = training_data_problems(self.cfg)
        if problems:
            raise ManifestError(f"run {self.cfg.name}: training data: " + "; ".join(problems))
        self.env = distenv.detect()
        self.device = distenv.setup(self.env)
        self.dir.path.mkdir(parents=True, exist_ok=True)
        if self.dir.status() == DONE:
            self.log("already done; nothing to do")
            return self.dir.read_record()
        self.heartbeat = Heartbeat(self.dir.heartbeat, enabled=self.env.is_main)
        self.heartbeat.beat("starting")
        with Watchdog(self.heartbeat, self.cfg.train.stall_after_s, self.log):
            return self._execute()

    def _execute(self) -> dict[str, Any]:
        self.replaced_examples = []
        seed_process(self.cfg.seed, self.env.rank)
        model = build_model(self.cfg, rank=self.env.rank, log=self.log)
        self.world = ShapesWorld(self.cfg.data.shapes) if self.cfg.data.source == "shapes" else None
        ckpts = Checkpoints(self.dir.checkpoints, self.cfg.train.keep_checkpoints, self.env.rank, self.log)
        latest = ckpts.latest()
        first_samples = self._samples(self.stages[0])
        fit_feature_norm(model, first_samples, self.env.rank, self.log, self.device)  # a checkpoint restores the same values
        self.record = {
            "run_id": self.id, "name": self.cfg.name, "model": self.cfg.model.name, "seed": self.cfg.seed,
            "config": to_dict(self.cfg), "git_commit": git_commit(), "versions": versions(),
            "threads": torch.get_num_threads(),
            "world_size": self.env.world_size, "started": time.time(), "grid": self.grid,
            "parity": {**model.parity(), "loader_fingerprint": fingerprint(first_samples),
                       **self._mixtures(first_samples),
                       "budget_samples": self.cfg.train.budget.samples, "global_batch": self.cfg.train.global_batch,
                       "eval_grid": self.grid, "parameters": model.parameter_counts()},
        }
        if self.env.is_main and self.dir.exists():
            old = self.dir.read_record()
            self.record["started"] = old.get("started", self.record["started"])
            self.record["resumes"] = old.get("resumes", 0) + (1 if latest else 0)
        self._record(RUNNING)
        self.trackers = None  # from here on a failure, start-up included, marks the run failed in run.json
        try:
            meta = latest["meta"] if latest else {}  # the run's counters as of its checkpoint
            self.skipped, self.replaced = meta.get("skipped", 0), meta.get("replaced", 0)
            self.evaluated = set(meta.get("evaluated", []))
            self.flops_per_sample = {int(k): v for k, v in meta.get("flops_per_sample", {}).items()}  # per stage
            self.train_s = meta.get("train_s", 0.0)  # seconds spent in optimizer steps, across resumes
            # lines written after the checkpoint resumed from are written again; with none (a run killed before
            # its first checkpoint, possibly after evaluating at 0 samples) the run starts over: all of them
            seen = latest["meta"]["samples_seen"] if latest else -1
            if self.env.is_main:
                truncate_jsonl(self.dir.metrics, lambda r: r["samples_seen"] <= seen)
                truncate_jsonl(self.dir.evals, lambda r: r["samples_seen"] <= seen)
            if latest:
                self.log(f"resuming from checkpoint {latest['tag']} at {seen:,} samples")
            self.trackers = Trackers(self.cfg, self.dir, seen, enabled=self.env.is_main)
            self._count_flops(model)  # the model's own FLOPs: before recomputation or compilation
            for done in speedups.apply(model, self.cfg.train.activation_checkpointing, self.cfg.train.compile):
                self.log(done)
            with _StopFlag() as stop:
                for stage in self.stages:
                    self._run_stage(model, stage, ckpts, latest, stop)
        except (Preempted, SystemExit):  # checkpointed on a signal (submitit's requeue exits the process)
            raise
        except BaseException as e:
            try:
                self._record(FAILED, error=f"{type(e).__name__}: {e}")
            except OSError as unwritable:  # a full disk: run.json cannot say so either; the log line may
                self.log(f"failed ({type(e).__name__}: {e}), and run.json could not be updated ({unwritable})")
            raise
        finally:
            if self.trackers is not None:
                self.trackers.close()
        self.heartbeat.beat("done", self.cfg.train.budget.samples)
        self._record(DONE, finished=time.time(), samples_seen=self.cfg.train.budget.samples,
                     train_flops=self._train_flops(self.cfg.train.budget.samples), train_s=round(self.train_s, 3),
                     skipped_microbatches=self.skipped)
        self.log(f"done: {self.cfg.train.budget.samples:,} samples")
        return self.record

    def _count_flops(self, model) -> None:
        """Each stage's training FLOPs per sample, counted once per run (bench/flops.py) on a copy of the
        model before any engine wraps it, on the stage's first micro-batch."""
        t = self.cfg.train
        for stage in self.stages:
            if stage.index not in self.flops_per_sample:
                loader = SharedLoader(self._training_source(model, stage), t.global_batch, t.micro_batch, t.global_batch)
                batch = to_device(next(iter(loader)), self.device)
                self.flops_per_sample[stage.index] = flops_per_sample(model, batch, self.device)

    def _train_flops(self, samples_seen: int) -> float:
        """Training FLOPs of the first samples_seen samples: each stage's FLOPs per sample (counted on its
        first micro-batch) times the samples trained in it."""
        return float(sum(self.flops_per_sample.get(s.index, 0.0) * min(max(samples_seen - s.start, 0), s.samples)
                         for s in self.stages))

    def _mixtures(self, first_samples) -> dict[str, Any]:
        """Each stage's training mixture (names, weights, shares, record counts and hashes): twins must match."""
        if not hasattr(first_samples, "mixture_summary"):
            return {}
        return {"data_mixture": {s.name: self._samples(s).mixture_summary() for s in self.stages}}

    def _count_replaced(self, batch: dict, step: int) -> None:
        """Samples whose file could not be read (on_error: skip) were replaced: log each, count them all."""
        for failures in batch.get("replaced", ()):
            self.replaced += 1
            msg = failures[0] + (f" (and {len(failures) - 1} more unreadable records tried)" if len(failures) > 1 else "")
            if len(self.replaced_examples) < 20:
                self.replaced_examples.append(msg)
                self.log(f"step {step}: replaced an unreadable sample: {msg}")
            elif len(self.replaced_examples) == 20:
                self.replaced_examples.append("...")  # the first 20, then this marker: said once
                self.log("more unreadable samples replaced: counted in run.json (data_errors), not logged")

    def _record_data_errors(self) -> None:
        total = self.replaced
        if dist.is_initialized() and dist.get_world_size() > 1:
            t = torch.tensor([float(self.replaced)], device=self.device)
            dist.all_reduce(t)
            total = int(t.item())
        self.record["data_errors"] = {"replaced_samples": total, "examples": self.replaced_examples[:20]}

    def _training_source(self, model, stage: StagePlan):
        """What the stage's loader reads, built once per stage (the FLOP count and the loop share it): with
        data.cache on the shapes world, the frozen X-encoder's cached features and the frozen Y-encoder's
        cached targets (bench/cache.py: built once per machine, shared by every run); otherwise the samples."""
        if stage.index not in self._loader_sources:
            samples = self._samples(stage)
            if self.cfg.data.cache and self.cfg.data.source == "shapes":

                def log(message: str) -> None:  # a cache build is progress: the heartbeat moves with it
                    self.heartbeat.beat("building caches")
                    self.log(message)

                samples = training_samples(model, samples, self.world, self.env.rank, log)
            self._loader_sources[stage.index] = samples
        return self._loader_sources[stage.index]

    def _samples(self, stage: StagePlan):
        """The stage's training samples, built once (a manifest is parsed once, not at every evaluation)."""
        if stage.index not in self._sources:
            self._sources[stage.index] = train_samples(stage_data(self.cfg.data, stage), self.cfg.seed)
        return self._sources[stage.index]

    def _run_stage(self, model, stage: StagePlan, ckpts: Checkpoints, latest, stop: _StopFlag) -> None:
        meta = latest["meta"] if latest else None
        if meta and meta["stage"] > stage.index:
            return  # finished before the resume
        if meta and meta["stage"] == stage.index and meta["stage_position"] == stage.samples:
            return
        t = self.cfg.train
        engine, optimizer, _ = make_engine(model, self.cfg, stage, self.env.world_size)
        loader = SharedLoader(self._training_source(model, stage), t.global_batch, t.micro_batch, stage.samples,
                              self.env.world_size, self.env.rank, self.cfg.data.num_workers)
        if meta and meta["stage"] == stage.index:
            ckpts.load(engine, latest["tag"])
            loader.load_state_dict({"position": meta["stage_position"]})
        elif meta and meta["stage"] == stage.index - 1:  # the previous stage's final weights
            ckpts.load(engine, latest["tag"], module_only=True)
        self.log(f"stage {stage.name} ({stage.data_stage}): {stage.samples:,} samples, "
                 f"{self.env.world_size} process(es), accumulation {loader.accumulation}")
        self._maybe_evaluate(engine, stage, stage.start + loader.position)
        engine.train()
        progress = StepLog(self, stage, loader.position)
        batches = self._micro_batches(loader, stage)
        next_ckpt = (loader.position // t.checkpoint_every + 1) * t.checkpoint_every if t.checkpoint_every else None
        while loader.position < stage.samples:
            step = (stage.start + loader.position) // t.global_batch  # the step being taken, from 0
            where = f"optimizer step {step + 1} ({stage.start + loader.position + t.global_batch:,} samples)"
            t0 = time.perf_counter()
            result = optimizer_step(engine, batches, loader.accumulation, self.device, t.nonfinite,
                                    flags=(float(stop.signum is not None),), where=lambda w=where: w,
                                    encode_targets=t.encode_targets)
            self.train_s += time.perf_counter() - t0
            seen = stage.start + loader.position
            self._count_skipped(result.skipped, step + 1)
            progress.step(step + 1, seen, result, optimizer.param_groups[0]["lr"], loader.position == stage.samples)
            self._maybe_evaluate(engine, stage, seen)
            engine.train()
            if result.flags[0]:  # a stop signal on any process
                self._save(ckpts, engine, stage, loader.position)
                self._record(PREEMPTED, samples_seen=seen)
                self.log(f"signal received: checkpointed at {seen:,} samples; run again to resume")
                stop.forward()
                raise Preempted(f"checkpointed at {seen:,} samples")
            if next_ckpt is not None and next_ckpt <= loader.position < stage.samples:
                self._save(ckpts, engine, stage, loader.position)
                next_ckpt += t.checkpoint_every
        progress.close()
        self._maybe_evaluate(engine, stage, stage.start + stage.samples)
        self._save(ckpts, engine, stage, stage.samples)

    def _micro_batches(self, loader: SharedLoader, stage: StagePlan) -> Iterator[dict]:
        """The loader's micro-batches, with the samples it had to replace (unreadable files) counted."""
        for batch in loader:
            if "replaced" in batch:
                self._count_replaced(batch, (stage.start + loader.position) // self.cfg.train.global_batch)
            yield batch

    def _count_skipped(self, skipped: int, step: int) -> None:
        """train.nonfinite=skip: log every skipped micro-batch, and fail past train.max_skipped_fraction."""
        if not skipped:
            return
        self.skipped += skipped
        self.log(f"step {step}: skipped {skipped} micro-batch(es) with a non-finite loss ({self.skipped} in all)")
        t = self.cfg.train
        micro_so_far = step * t.global_batch // t.micro_batch
        if self.skipped > t.max_skipped_fraction * micro_so_far:
            raise NonFiniteLoss(f"{self.skipped} of {micro_so_far} micro-batches had a non-finite loss by optimizer "
                                f"step {step}, more than train.max_skipped_fraction={t.max_skipped_fraction}")

    def _maybe_evaluate(self, engine, stage: StagePlan, now: int) -> None:
        """Evaluate at every grid point of this stage reached by `now` and not yet evaluated."""
        for point in self.grid:
            if point <= now and point not in self.evaluated and stage.start <= point <= stage.start + stage.samples:
                self._evaluate(engine.module, now, stage)
                self.evaluated.add(point)

    def _save(self, ckpts: Checkpoints, engine, stage: StagePlan, position: int) -> None:
        meta = {"stage": stage.index, "stage_position": position, "samples_seen": stage.start + position,
                "evaluated": sorted(self.evaluated), "skipped": self.skipped, "replaced": self.replaced,
                "flops_per_sample": {str(k): v for k, v in self.flops_per_sample.items()}, "train_s": self.train_s}
        self.heartbeat.beat("checkpointing", stage.start + position)
        ckpts.save(engine, f"s{stage.index}_{position:012d}", meta)
        self._record_data_errors()
        self._record(self.record["status"])  # data_errors as of this checkpoint


def run(cfg: RunConfig, log=print) -> dict[str, Any]:
    """Run (or resume, or skip if done) one run; return its run record."""
    return Run(cfg, log).execute()


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_argv(argv, __doc__)
    if isinstance(cfg, int):
        return cfg
    is_main = distenv.detect().is_main  # read before teardown puts the environment back
    try:
        record = run(cfg)
    except Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        return 3
    except (EvalSetError, ManifestError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distenv.teardown()
    if is_main:
        print(f"run {record['run_id']}: {record['status']} -> {Path(cfg.output_dir) / record['run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
