"""One run: data -> model -> DeepSpeed engine -> steps, evaluations on the sample grid, checkpoints.

    python -m bench.train experiments/base/tiny.yaml [section.key=value ...] [--results DIR]
    torchrun --nproc_per_node 2 -m bench.train experiments/base/tiny.yaml   # several processes

The run stops at exactly train.budget.samples samples seen (all processes together). It resumes
from its latest checkpoint by itself; on SIGUSR1, SIGUSR2 or SIGTERM it finishes the current
step, checkpoints and exits (status "preempted") so that a launcher can requeue it. One process writes a
run: while another holds it (bench/run/lease.py), a second one stops at once in one line (--force takes over).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from bench import dist as distenv
from bench.cache import fit_feature_norm, training_samples
from bench.config import RunConfig, run_id
from bench.configcli import parse_config_command
from bench.configlib import to_dict
from bench.data.loader import SharedLoader, fingerprint
from bench.data.manifest import ManifestError
from bench.data.sources import source_of, stage_data, train_samples, training_data_problems
from bench.eval.sets.resolve import EvalSetError, load_sets, validate
from bench.eval.tasks import TASK_FAILED, evaluate
from bench.eval.tasks.common import EvalContext
from bench.results import DONE, FAILED, PREEMPTED, RUNNING, RunDir, append_jsonl, prediction_writer, truncate_jsonl, write_json
from bench.run import speedups
from bench.run.build import build_prepared, prepare_model
from bench.run.checkpoint import Checkpoints
from bench.run.data_errors import ReplacedSamples
from bench.run.engine import StagePlan, make_engine, plan_stages
from bench.run.flops import flops_per_sample
from bench.run.lease import Lease, RunBusy
from bench.run.liveness import Heartbeat, Watchdog
from bench.run.progress import Console, StepLog
from bench.run.provenance import git_commit, versions
from bench.run.signals import Preempted, StopFlag
from bench.run.state import RunState
from bench.run.step import NonFiniteLoss, optimizer_step, seed_process, to_device
from bench.run.trackers import Trackers


class Run:
    """One run: its config, its folder, its state, and its collaborators, declared here and set up by
    `execute` in order (environment, heartbeat, model, record, trackers), which then trains every stage."""

    def __init__(self, cfg: RunConfig, log=print, force: bool = False):
        self.cfg, self.force = cfg, force  # force: take the run over from a live writer (its lease)
        self.id = run_id(cfg)
        self.dir = RunDir.of(cfg.output_dir, self.id)
        self.console = Console(log)
        self.stages = plan_stages(cfg)
        self.grid = cfg.eval_grid()
        self.state = RunState()
        self.t_start = time.time()  # this process's start: a run's wall time counts its start-up and one-off work
        self.resumed_from: dict[str, Any] | None = None  # {"tag", "meta"} of the checkpoint this process resumed
        self.env = distenv.detect()
        self.device: torch.device | None = None
        self.heartbeat: Heartbeat | None = None
        self.lease = Lease(self.dir.lease, cfg.train.lease_s)  # one writer per run: taken by the main process
        self.record: dict[str, Any] = {}
        self.trackers: Trackers | None = None
        self.step_log: StepLog | None = None  # the current stage's
        self.world = source_of(cfg.data).world(cfg.data)  # the shapes world, when the data is
        self.eval_sets: dict[str, list] | None = None  # task -> its eval sets, read at the first evaluation
        self.replaced = ReplacedSamples(self.log)  # unreadable training samples replaced, for run.json
        self._sources: dict[int, Any] = {}  # stage index -> its training samples
        self._loader_sources: dict[int, Any] = {}  # stage index -> what its loader reads (cached or not)

    def log(self, msg: str) -> None:
        if self.env.is_main:
            line = f"[{self.id}] {msg}"
            self.console.write(line)
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

        def done(task: str, recs: list[dict]) -> None:  # each task's records as it finishes: a later failure keeps them
            self.heartbeat.beat(f"evaluated {task} at {samples_seen:,} samples")
            self._write_evals(recs, samples_seen, stage)

        recs = evaluate(model, ctx, self.cfg.eval.tasks, on_task=done)
        if self.env.is_main:
            several = {t for t, sets in self.eval_sets.items() if len(sets) > 1}
            shown = ", ".join(f"{r['task']}/{r['metric']} {r['value']:.1f}"
                              + (f" [{r['dataset']}]" if r["task"] in several else "")
                              for r in recs if r["metric"] in ("top1", "top5", "t2v_R@1", "accuracy", "CIDEr"))
            self.log(f"eval at {samples_seen:,} samples ({time.perf_counter() - t0:.1f}s): {shown}")

    def _write_evals(self, recs: list[dict], samples_seen: int, stage: StagePlan) -> None:
        """One task's records into evals.jsonl and the trackers; a failed task also into run.json."""
        failed = [r for r in recs if r["metric"] == TASK_FAILED]
        for r in failed:
            self.log(f"eval at {samples_seen:,} samples: task {r['task']} failed ({r['error']}); the other tasks' "
                     "records are kept and the run goes on (eval.on_task_error=continue)")
        if not self.env.is_main:
            return
        append_jsonl(self.dir.evals, [{**r, "run_id": self.id, "samples_seen": samples_seen, "stage": stage.name,
                                       "train_flops": self._train_flops(samples_seen),
                                       "train_s": round(self.state.train_s, 3)} for r in recs])
        self.trackers.log_evals(recs, samples_seen)
        if failed:
            self.record.setdefault("eval_failures", []).extend(
                {"samples_seen": samples_seen, "task": r["task"], "error": r["error"]} for r in failed)
            self._record(self.record["status"])

    # ------------------------------------------------------------------ the run
    def execute(self) -> dict[str, Any]:
        # every eval set and training dataset there and readable, before anything is built or written
        validate(self.cfg, f"run {self.cfg.name}")
        problems = training_data_problems(self.cfg)
        if problems:
            raise ManifestError(f"run {self.cfg.name}: training data: " + "; ".join(problems))
        self.device = distenv.setup(self.env)
        self.dir.path.mkdir(parents=True, exist_ok=True)
        if self.dir.status() == DONE:
            self.log("already done; nothing to do")
            return self.dir.read_record()
        if self.env.is_main:
            self.lease.acquire(self.force)  # before anything is written: a live writer's run is left alone
        try:
            self.heartbeat = Heartbeat(self.dir.heartbeat, enabled=self.env.is_main)
            self.heartbeat.beat("starting")
            with Watchdog(self.heartbeat, self.cfg.train.stall_after_s, self.log):
                return self._execute()
        finally:
            self.lease.release()

    def _execute(self) -> dict[str, Any]:
        seed_process(self.cfg.seed, self.env.rank)
        model = self._build()
        ckpts = Checkpoints(self.dir.checkpoints, self.cfg.train.keep_checkpoints, self.env.rank, self.log)
        self.resumed_from = ckpts.latest()
        first_samples = self._samples(self.stages[0])
        fit_feature_norm(model, first_samples, self.env.rank, self.log, self.device)  # a checkpoint restores the same values
        self._start_record(model, first_samples)
        try:
            self._restore()
            self.trackers = Trackers(self.cfg, self.dir, self._resumed_samples(), enabled=self.env.is_main)
            self._count_flops(model)  # the model's own FLOPs: before recomputation or compilation
            for done in speedups.apply(model, self.cfg.train.activation_checkpointing, self.cfg.train.compile):
                self.log(done)
            with StopFlag() as stop:
                for stage in self.stages:
                    self._run_stage(model, stage, ckpts, stop)
        except (Preempted, SystemExit, RunBusy):  # checkpointed on a signal (submitit's requeue exits the process),
            raise  # or another process took the run over: this one writes nothing more
        except BaseException as e:  # from here on a failure, start-up included, marks the run failed in run.json
            try:
                self._record(FAILED, error=f"{type(e).__name__}: {e}")
            except OSError as unwritable:  # a full disk: run.json cannot say so either; the log line may
                self.log(f"failed ({type(e).__name__}: {e}), and run.json could not be updated ({unwritable})")
            raise
        finally:
            if self.trackers is not None:
                self.trackers.close()
        return self._finish()

    def _build(self):
        """The model, after the run's one-off preparation: the suite's built-in resources, and the text-pretrained
        LM when the recipe asks for one (built once per machine, then read from the cache)."""
        def said(message: str) -> None:  # pretraining's progress (or another job's, waited for) is the run's phase
            self.heartbeat.beat(f"pretraining the LM, once per machine: {message}")
            self.log(message)

        return build_prepared(prepare_model(self.cfg, rank=self.env.rank, log=said), self.cfg.seed)

    def _start_record(self, model, first_samples) -> None:
        """run.json as the run starts (or resumes): config, code, versions and the twins' parity block."""
        self.record = {
            "run_id": self.id, "name": self.cfg.name, "model": self.cfg.model.name, "seed": self.cfg.seed,
            "config": to_dict(self.cfg), "git_commit": git_commit(), "versions": versions(),
            "threads": torch.get_num_threads(),
            "world_size": self.env.world_size, "started": self.t_start, "grid": self.grid,
            "parity": {**model.parity(), "loader_fingerprint": fingerprint(first_samples),
                       **self._mixtures(first_samples),
                       "budget_samples": self.cfg.train.budget.samples, "global_batch": self.cfg.train.global_batch,
                       "eval_grid": self.grid, "parameters": model.parameter_counts()},
        }
        if self.env.is_main and self.dir.exists():
            old = self.dir.read_record()
            self.record["started"] = old.get("started", self.record["started"])
            self.record["resumes"] = old.get("resumes", 0) + (1 if self.resumed_from else 0)
        self._record(RUNNING)

    def _resumed_samples(self) -> int:
        """Samples seen at the checkpoint resumed from; -1 when the run starts over."""
        return self.state.samples_seen if self.resumed_from else -1

    def _restore(self) -> None:
        """The run's state as of its checkpoint. Lines written after it are written again; with none (a run
        killed before its first checkpoint, possibly after evaluating at 0 samples) the run starts over: all."""
        if self.resumed_from:
            self.state = RunState.from_state_dict(self.resumed_from["meta"])
        seen = self._resumed_samples()
        if self.env.is_main:
            truncate_jsonl(self.dir.metrics, lambda r: r["samples_seen"] <= seen)
            truncate_jsonl(self.dir.evals, lambda r: r["samples_seen"] <= seen)
        if self.resumed_from:
            self.log(f"resuming from checkpoint {self.resumed_from['tag']} at {seen:,} samples")

    def _finish(self) -> dict[str, Any]:
        budget = self.cfg.train.budget.samples
        self.heartbeat.beat("done", budget)
        self._record(DONE, finished=time.time(), samples_seen=budget, train_flops=self._train_flops(budget),
                     train_s=round(self.state.train_s, 3), skipped_microbatches=self.state.skipped)
        self.log(f"done: {budget:,} samples")
        return self.record

    def _count_flops(self, model) -> None:
        """Each stage's training FLOPs per sample, counted once per run (bench/run/flops.py) on a copy of the
        model before any engine wraps it, on the stage's first micro-batch."""
        t = self.cfg.train
        for stage in self.stages:
            if stage.index not in self.state.flops_per_sample:
                loader = SharedLoader(self._training_source(model, stage), t.global_batch, t.micro_batch, t.global_batch)
                batch = to_device(next(iter(loader)), self.device)
                self.state.flops_per_sample[stage.index] = flops_per_sample(model, batch, self.device)

    def _train_flops(self, samples_seen: int) -> float:
        """Training FLOPs of the first samples_seen samples: each stage's FLOPs per sample (counted on its
        first micro-batch) times the samples trained in it."""
        return float(sum(self.state.flops_per_sample.get(s.index, 0.0) * min(max(samples_seen - s.start, 0), s.samples)
                         for s in self.stages))

    def _mixtures(self, first_samples) -> dict[str, Any]:
        """Each stage's training mixture (names, weights, shares, record counts and hashes): twins must match."""
        if not hasattr(first_samples, "mixture_summary"):
            return {}
        return {"data_mixture": {s.name: self._samples(s).mixture_summary() for s in self.stages}}

    def _training_source(self, model, stage: StagePlan):
        """What the stage's loader reads, built once per stage (the FLOP count and the loop share it): with
        data.cache on the shapes world, the frozen X-encoder's cached features and the frozen Y-encoder's
        cached targets (bench/cache.py: built once per machine, shared by every run); otherwise the samples."""
        if stage.index not in self._loader_sources:
            samples = self._samples(stage)
            if self.cfg.data.cache and source_of(self.cfg.data).cacheable:

                def log(message: str) -> None:  # a cache build is progress: the heartbeat moves with it, saying it
                    self.heartbeat.beat(f"building caches, once per machine: {message}")
                    self.log(message)

                samples = training_samples(model, samples, self.world, self.env.rank, log)
            self._loader_sources[stage.index] = samples
        return self._loader_sources[stage.index]

    def _samples(self, stage: StagePlan):
        """The stage's training samples, built once (a manifest is parsed once, not at every evaluation)."""
        if stage.index not in self._sources:
            self._sources[stage.index] = train_samples(stage_data(self.cfg.data, stage), self.cfg.seed)
        return self._sources[stage.index]

    def _run_stage(self, model, stage: StagePlan, ckpts: Checkpoints, stop: StopFlag) -> None:
        resumed = self.state if self.resumed_from else None
        if resumed and resumed.stage > stage.index:
            return  # finished before the resume
        if resumed and resumed.stage == stage.index and resumed.stage_position == stage.samples:
            return
        t = self.cfg.train
        engine, optimizer, _ = make_engine(model, self.cfg, stage, self.env.world_size)
        loader = SharedLoader(self._training_source(model, stage), t.global_batch, t.micro_batch, stage.samples,
                              self.env.world_size, self.env.rank, self.cfg.data.num_workers)
        if resumed and resumed.stage == stage.index:
            ckpts.load(engine, self.resumed_from["tag"])
            loader.load_state_dict({"position": resumed.stage_position})
        elif resumed and resumed.stage == stage.index - 1:  # the previous stage's final weights
            ckpts.load(engine, self.resumed_from["tag"], module_only=True)
        self.log(f"stage {stage.name} ({stage.data_stage}): {stage.samples:,} samples, "
                 f"{self.env.world_size} process(es), accumulation {loader.accumulation}")
        self._maybe_evaluate(engine, stage, stage.start + loader.position)
        engine.train()
        window = self.state.log_window if resumed and resumed.stage == stage.index else {}  # resumed inside it
        progress = self.step_log = StepLog(t, stage, loader.position, is_main=self.env.is_main, metrics=self.dir.metrics,
                                           heartbeat=self.heartbeat, trackers=self.trackers, console=self.console,
                                           log=self.log, window=window)
        batches = self._micro_batches(loader, stage)
        next_ckpt = (loader.position // t.checkpoint_every + 1) * t.checkpoint_every if t.checkpoint_every else None
        while loader.position < stage.samples:
            step = (stage.start + loader.position) // t.global_batch  # the step being taken, from 0
            where = f"optimizer step {step + 1} ({stage.start + loader.position + t.global_batch:,} samples)"
            t0 = time.perf_counter()
            result = optimizer_step(engine, batches, loader.accumulation, self.device, t.nonfinite,
                                    flags=(float(stop.signum is not None), float(self.lease.lost is not None)),
                                    where=lambda w=where: w,
                                    encode_targets=t.encode_targets)
            step_s = time.perf_counter() - t0
            self.state.train_s += step_s
            if "setup_s" not in self.record and not self.resumed_from:  # the start-up, one-off work included
                self._record(RUNNING, setup_s=round(time.time() - self.t_start - step_s, 3))
            seen = stage.start + loader.position
            self._count_skipped(result.skipped, step + 1)
            progress.step(step + 1, seen, result, optimizer.param_groups[0]["lr"], loader.position == stage.samples,
                          step_s)
            self._maybe_evaluate(engine, stage, seen)
            engine.train()
            if result.flags[1]:  # the main process's lease was taken over: every process stops, writing nothing
                self.lease.lost = self.lease.lost or {"host": "another process"}
                self.lease.check()
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
                step = (stage.start + loader.position) // self.cfg.train.global_batch
                self.state.replaced += self.replaced.note(batch, step)
            yield batch

    def _count_skipped(self, skipped: int, step: int) -> None:
        """train.nonfinite=skip: log every skipped micro-batch, and fail past train.max_skipped_fraction."""
        if not skipped:
            return
        self.state.skipped += skipped
        self.log(f"step {step}: skipped {skipped} micro-batch(es) with a non-finite loss ({self.state.skipped} in all)")
        t = self.cfg.train
        micro_so_far = step * t.global_batch // t.micro_batch
        if self.state.skipped > t.max_skipped_fraction * micro_so_far:
            raise NonFiniteLoss(f"{self.state.skipped} of {micro_so_far} micro-batches had a non-finite loss by optimizer "
                                f"step {step}, more than train.max_skipped_fraction={t.max_skipped_fraction}")

    def _maybe_evaluate(self, engine, stage: StagePlan, now: int) -> None:
        """Evaluate at every grid point of this stage reached by `now` and not yet evaluated."""
        for point in self.grid:
            if point <= now and point not in self.state.evaluated and stage.start <= point <= stage.start + stage.samples:
                self._evaluate(engine.module, now, stage)
                self.state.evaluated.add(point)

    def _save(self, ckpts: Checkpoints, engine, stage: StagePlan, position: int) -> None:
        self.state.stage, self.state.stage_position, self.state.samples_seen = stage.index, position, stage.start + position
        self.state.log_window = self.step_log.window if self.step_log else {}  # metrics rows identical across a resume
        self.heartbeat.beat("checkpointing", stage.start + position)
        ckpts.save(engine, f"s{stage.index}_{position:012d}", self.state.state_dict())
        self.record["data_errors"] = self.replaced.record(self.state.replaced, self.device)
        self._record(self.record["status"])  # data_errors as of this checkpoint


def run(cfg: RunConfig, log=print, force: bool = False) -> dict[str, Any]:
    """Run (or resume, or skip if done) one run; return its run record. force: take the run over from another
    process that holds it (RunBusy otherwise)."""
    return Run(cfg, log, force).execute()


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_config_command("python -m bench.train", __doc__, argv, flags={
        "force": "take the run over from the process that holds it (its lease), live or not"})
    is_main = distenv.detect().is_main  # read before teardown puts the environment back
    try:
        record = run(cfg, force=args.force)
    except Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        return 3
    except (EvalSetError, ManifestError, RunBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distenv.teardown()
    if is_main:
        print(f"run {record['run_id']}: {record['status']} -> {Path(cfg.output_dir) / record['run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
