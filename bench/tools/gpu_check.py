"""Re-measure the paper preset on one GPU in under 9 minutes: `bash scripts/gpu_check.sh` (docs/performance.md).

    python -m bench.tools.gpu_check [--out DIR] [--work DIR] [--only NAME ...]   the plan, on one GPU
    python -m bench.tools.gpu_check --dry-run [--cpu-smoke]                      print the plan, run nothing
    python -m bench.tools.gpu_check --cpu-smoke --out DIR                        the same steps on paper_micro, CPU

The plan, in order: probe the device (the precision, the process group's backend: NCCL on a GPU); export the
shapes world at the run's clip shape (16 frames at 256 px) as dataset folders; `python -m bench.perf` of each
twin as experiments/paper/jepa_vs_vlm.yaml configures it (the VLM with all 16 LM layers); the training step
alone (bench.tools.perf's prepare and time_steps, what bench.perf reports as samples/s, MFU and peak memory)
of each twin with each speed-up knob on (train.compile, train.activation_checkpointing,
train.encode_targets=step where the model encodes targets, train.optimizer_impl=fused); a 200-step
`python -m bench.train` of the preset as written (VL-JEPA) that evaluates every task from the exported files,
each task timed (the VLM's run is an extra step, outside the 9 minutes: --only train:vlm).
The paper preset builds with random weights from each backbone's `arch` and the built-in tokenizer's ids
(bench.tools.perf.PAPER_OFFLINE): nothing is downloaded.

Each step runs as a subprocess with its own time limit: its budget plus what the steps before it left unused,
so the whole never takes longer than the budgets' sum, and a step that fails or runs out of time loses only
itself. OUT/summary.json and OUT/summary.md are rewritten after every step (commit OUT to
results/example/perf/); OUT/perf/ holds bench.perf's reports, OUT/knobs/ the knob steps'. The runs, the
exported data and each step's log go to WORK, which is never committed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import yaml

from bench import dist as distenv
from bench.config import REPO_ROOT, load_run_config
from bench.configlib import to_dict
from bench.eval.sets.world_files import EXPORTED_TASKS
from bench.eval.tasks import TASK_FAILED
from bench.results import read_json, read_jsonl, write_atomic, write_json
from bench.run.provenance import git_commit, versions
from bench.sweep.config import load_sweep_config
from bench.sweep.plan import labelled_points
from bench.tools import perf
from models import registry
from models.protocol import offers_step_targets

TWINS_SWEEP = "experiments/paper/jepa_vs_vlm.yaml"
DEADLINE_S = 540  # the budgets of the GPU plan sum under this: 9 minutes
# the Y-encoder as random weights: a sentence-transformers folder (its Dense layers, its prompts) needs a folder
# on disk, so the offline preset mean-pools the Gemma3 backbone, as paper_micro does
Y_OFFLINE = ("model.y_encoder.pipeline=mean_pool", "model.y_encoder.prompt=")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
Kind = Literal["probe", "export", "perf", "knob", "train"]


@dataclass(frozen=True)
class Knob:
    """A speed-up measured against the twin's baseline step: its config overrides."""

    name: str
    overrides: tuple[str, ...]
    needs_step_targets: bool = False  # only a model with the step_targets hook encodes a step's targets at once


KNOBS = (
    Knob("fused_optimizer", ("train.optimizer_impl=fused",)),
    Knob("encode_targets_step", ("train.encode_targets=step",), needs_step_targets=True),
    Knob("activation_checkpointing", ("train.activation_checkpointing=true",)),
    Knob("compile", ("train.compile=true",)),  # last of a twin's knobs: the slowest to start, the likeliest to break
)


@dataclass(frozen=True)
class Scale:
    """What differs between the GPU plan and its CPU smoke: the preset, its sizes and the step budgets."""

    name: str
    preset: str
    device: Literal["cuda", "cpu"]
    model: tuple[str, ...]  # overrides that build the preset offline
    precision: Literal["bf16", "fp32"]
    frames: int
    size: int
    workers: int  # data.num_workers
    perf_batch: tuple[int, int]  # (global, micro) of bench.perf and the knob steps
    perf_steps: int  # timed steps, after `warmup` steps
    warmup: int
    perf_clips: int  # train clips of the shapes world bench.perf steps through
    train_batch: tuple[int, int]
    train_steps: int
    eval_items: int  # items per task, exported and evaluated
    train_clips: int  # clips of the exported training manifest
    streams: int
    decoder_steps: int
    budgets: dict[str, int]  # step kind, or kind:twin, or kind:twin:knob -> seconds (the most specific wins)

    def budget(self, kind: str, twin: str = "", knob: str = "") -> int:
        for key in (f"{kind}:{twin}:{knob}", f"{kind}:{twin}", f"{kind}::{knob}", kind):
            if key in self.budgets:
                return self.budgets[key]
        raise KeyError(f"scale {self.name} has no budget for step {kind} {twin} {knob}")


GPU = Scale(
    name="gpu", preset="experiments/base/paper.yaml", device="cuda",
    model=(*(o for o in perf.PAPER_OFFLINE if o.startswith("model.")), *Y_OFFLINE),
    precision="bf16", frames=16, size=256, workers=8, perf_batch=(32, 8), perf_steps=2, warmup=2, perf_clips=128,
    train_batch=(4, 4), train_steps=200, eval_items=16, train_clips=32, streams=2, decoder_steps=50,
    # estimates (no GPU has run this yet), from the committed H100 records (results/example/perf/) and CPU timings;
    # train:vlm is an extra step (--only), outside the 9 minutes
    budgets={"probe": 15, "export": 20, "perf": 55, "train:vljepa": 140, "train:vlm": 100, "knob:vljepa": 25,
             "knob:vlm": 22, "knob:vljepa:compile": 75, "knob:vlm:compile": 55},
)
CPU_SMOKE = Scale(
    name="cpu-smoke", preset="experiments/base/paper_micro.yaml", device="cpu", model=(),
    precision="fp32", frames=16, size=32, workers=0, perf_batch=(4, 2), perf_steps=1, warmup=1, perf_clips=8,
    train_batch=(4, 4), train_steps=4, eval_items=4, train_clips=8, streams=1, decoder_steps=2,
    budgets={"probe": 60, "export": 90, "perf": 300, "knob": 120, "knob::compile": 420, "train": 300},
)


@dataclass(frozen=True)
class Step:
    """One subprocess of the plan: its command, its budget, and where it leaves what it measured."""

    name: str
    kind: Kind
    what: str
    argv: tuple[str, ...]
    budget_s: int
    twin: str = ""
    knob: str = ""
    report: str = ""  # the JSON it writes (probe, perf, knob) or the folder its run goes in (train)
    extra: bool = False  # outside the default plan and its 9 minutes: run when --only names it


@dataclass
class Outcome:
    """What one step did: passed, failed or timeout (or skipped by --only), its time, and its numbers."""

    name: str
    kind: Kind
    twin: str
    knob: str
    status: Literal["passed", "failed", "timeout", "not run"]
    budget_s: int
    limit_s: float = 0.0
    wall_s: float = 0.0
    returncode: int | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    log: str = ""


@dataclass(frozen=True)
class Folders:
    out: Path  # summary.json, summary.md, perf/: what is committed
    work: Path  # runs, exported data, sweeps, logs: never committed

    @property
    def data(self) -> Path:
        return self.work / "data"


# ---------------------------------------------------------------- the plan


def _at(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def twins(sweep_path: str = TWINS_SWEEP) -> dict[str, dict[str, Any]]:
    """Twin name -> the keys its point of the sweep changes in the sweep's base (for jepa_vs_vlm.yaml: nothing
    for VL-JEPA, the model, all 16 LM layers and trained embeddings for the VLM). Applied to another preset
    (paper_micro), a twin keeps what that preset says where the sweep keeps the base's value."""
    sweep, file = load_sweep_config(REPO_ROOT / sweep_path)
    base = to_dict(load_run_config(sweep.base, relative_to=file.parent))
    out: dict[str, dict[str, Any]] = {}
    for point, _ in labelled_points(sweep):
        name = point.get("model.name", _at(base, "model.name"))
        if name in out:
            raise ValueError(f"{sweep_path}: two points of the sweep train model {name!r}; expected one point a twin")
        out[name] = {k: v for k, v in point.items() if _at(base, k) != v}
    return out


def _yaml_value(value: Any) -> str:
    """The value as a command-line override writes it (bench.config.parse_override reads it back): a string
    as it is where it reads back as itself (a slice such as ':' is not YAML, and reads back as the string)."""
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = True
        if plain and value:
            return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def overrides_of(changes: dict[str, Any]) -> list[str]:
    return [f"{k}={_yaml_value(v)}" for k, v in changes.items()]


def _python(*args: str) -> tuple[str, ...]:
    return (sys.executable, *args)


def perf_settings(scale: Scale) -> list[str]:
    """bench.perf's overrides, for the baseline and the knobs alike: the offline model, shapes-world clips at the
    run's shape, the batch, the precision; no eval sets checked (bench.perf evaluates nothing)."""
    g, m = scale.perf_batch
    return [*scale.model, "data.source=shapes", f"data.shapes.frames={scale.frames}", f"data.shapes.size={scale.size}",
            f"data.shapes.train_size={scale.perf_clips}", f"data.num_workers={scale.workers}", "train.stages=[]",
            f"train.global_batch={g}", f"train.micro_batch={m}", f"train.budget.samples={g}", "train.warmup_samples=0",
            f"train.precision={scale.precision}", "eval.tasks=[]", "eval.grid=[]"]


def train_settings(scale: Scale, folders: Folders, twin: str) -> list[str]:
    """bench.train's overrides: the offline model trained on the exported manifest for train_steps steps, then
    every task evaluated once, from the exported val split."""
    g, m = scale.train_batch
    budget = g * scale.train_steps
    val = folders.data / "shapes_val"
    return [*scale.model, "data.source=manifest", f"data.manifest.path={folders.data / 'train'}",
            f"data.manifest.frames={scale.frames}", f"data.manifest.size={scale.size}", "data.mixture=[]",
            f"data.num_workers={scale.workers}", "train.stages=[]", f"train.global_batch={g}", f"train.micro_batch={m}",
            f"train.budget.samples={budget}", "train.warmup_samples=0", "train.checkpoint_every=0",
            "train.keep_checkpoints=1", f"train.log_every={max(1, scale.train_steps // 10)}",
            f"train.precision={scale.precision}", f"eval.grid=[{budget}]", f"eval.tasks=[{', '.join(EXPORTED_TASKS)}]",
            *(f"eval.sets.{task}=[{val}]" for task in EXPORTED_TASKS), f"eval.size={scale.eval_items}",
            f"eval.batch={min(32, scale.eval_items)}", f"eval.decoder_steps={scale.decoder_steps}",
            f"eval.decoder_clips={scale.train_clips}", f"eval.streams={scale.streams}", "eval.stream_rates=[1.0, 0.5]",
            "eval.stream_bootstrap=10", "eval.caption_metrics=[CIDEr]", f"name=gpu_check/{twin}",
            f"output_dir={folders.work / 'runs' / twin}"]


def _encodes_targets(twin: str) -> bool:
    return offers_step_targets(registry.get(twin)) is not False


def _setup_steps(scale: Scale, folders: Folders) -> list[Step]:
    probe = str(folders.out / "probe.json")
    n = scale.eval_items
    export = ["--out", str(folders.data), "--config", scale.preset, "--size", str(n), "--train", str(scale.train_clips),
              "--streams", str(scale.streams), "data.source=shapes", f"data.shapes.frames={scale.frames}",
              f"data.shapes.size={scale.size}", f"data.shapes.train_size={scale.train_clips}",
              f"data.shapes.val_size={n}", f"data.shapes.test_size={n}", f"data.shapes.novel_size={n}"]
    return [
        Step("probe", "probe", f"the device, {scale.precision} and the process group's backend",
             _python("-m", "bench.tools.gpu_check", "probe", "--device", scale.device, "--precision", scale.precision,
                     "--json", probe), scale.budget("probe"), report=probe),
        Step("export", "export", f"the shapes world as dataset folders, {scale.frames} frames at {scale.size} px: "
             f"{n} items a task, {scale.train_clips} training clips",
             _python("-m", "bench.tools.export_world", *export), scale.budget("export"), report=str(folders.data)),
    ]


def _twin_steps(scale: Scale, folders: Folders, twin: str) -> list[Step]:
    sweep = str(folders.work / "sweeps" / f"{twin}.yaml")
    settings = perf_settings(scale)
    perf_out = folders.out / "perf" / twin
    steps = [Step(f"perf:{twin}", "perf", f"python -m bench.perf of {twin}, {scale.perf_steps} timed steps",
                  _python("-m", "bench.perf", "--sweep", sweep, "--steps", str(scale.perf_steps), "--out", str(perf_out),
                          "--set", *settings), scale.budget("perf", twin), twin, report=str(perf_out / "latest.json"))]
    for knob in KNOBS:
        if knob.needs_step_targets and not _encodes_targets(twin):
            continue
        report = str(folders.out / "knobs" / f"{twin}_{knob.name}.json")
        steps.append(Step(
            f"knob:{twin}:{knob.name}", "knob", f"{twin}'s training step with {' '.join(knob.overrides)}",
            _python("-m", "bench.tools.gpu_check", "time-step", "--sweep", sweep, "--steps", str(scale.perf_steps),
                    "--warmup", str(scale.warmup), "--json", report, "--set", *settings, *knob.overrides),
            scale.budget("knob", twin, knob.name), twin, knob.name, report))
    return steps


def plan(scale: Scale, folders: Folders) -> list[Step]:
    """Every step in order: the probe and the export, each twin's bench.perf, the 200-step run of the preset as
    written (VL-JEPA) with its evaluation, then the knobs (compile last): what matters most gets its time first.
    The other twin's run comes last, an extra step (--only train:vlm): with it the check takes longer than 9 min."""
    changes = twins()
    steps = _setup_steps(scale, folders)
    by_twin = {t: _twin_steps(scale, folders, t) for t in changes}
    steps += [by_twin[t][0] for t in changes]
    runs = []
    for t, change in changes.items():
        argv = _python("-m", "bench.train", scale.preset, *overrides_of(change), *train_settings(scale, folders, t))
        runs.append(Step(f"train:{t}", "train", f"python -m bench.train of {t}: {scale.train_steps} steps of "
                         f"{scale.train_batch[0]}, then every task on {scale.eval_items} items each", argv,
                         scale.budget("train", t), t, report=str(folders.work / "runs" / t), extra=bool(change)))
    knobs = [s for t in changes for s in by_twin[t][1:]]
    ordered = steps + [r for r in runs if not r.extra] + sorted(knobs, key=lambda s: s.knob == "compile")
    return ordered + [r for r in runs if r.extra]


def select(steps: list[Step], only: list[str]) -> list[Step]:
    """The steps whose names match any of the patterns (fnmatch: an extra step too); without patterns, every
    step but the extra ones."""
    if not only:
        return [s for s in steps if not s.extra]
    chosen = [s for s in steps if any(fnmatch.fnmatch(s.name, p) for p in only)]
    if not chosen:
        raise SystemExit(f"error: --only {' '.join(only)} matches no step; the steps: {', '.join(s.name for s in steps)}")
    return chosen


def describe(scale: Scale, steps: list[Step], extra: list[Step]) -> str:
    """The plan as printed: the twins, then each step's budget, what it does and its command; the extra steps."""
    total = sum(s.budget_s for s in steps)
    twin_lines = [f"  {t}: {' '.join(overrides_of(c)) or '(the preset as written)'}" for t, c in twins().items()]
    within = f", under the {DEADLINE_S // 60} min of a GPU loan" if scale is GPU and total < DEADLINE_S else ""
    lines = [f"GPU check, {scale.name}: {scale.preset}, {scale.precision}, {scale.frames} frames at {scale.size} px, "
             f"on {scale.device}; the twins as {TWINS_SWEEP} configures them:", *twin_lines,
             f"{len(steps)} steps; their budgets sum to {total} s ({total / 60:.1f} min{within}):"]
    for i, s in enumerate(steps, 1):
        lines += [f"{i:3d}. {s.name:<40} {s.budget_s:4d} s  {s.what}", "     " + shlex.join(s.argv)]
    if extra:
        lines.append("Extra steps, run when --only names them (with the export step): "
                     + ", ".join(f"{s.name} ({s.budget_s} s)" for s in extra))
    return "\n".join(lines)


# ---------------------------------------------------------------- running a step


@dataclass
class TaskClock:
    """Each task's evaluation time, read off the run's folder while it runs. The run's heartbeat says
    "evaluating at N samples" as its evaluation starts and "evaluated TASK at N samples" as each task ends, with
    the time; then it appends the task's records to evals.jsonl. A task's time runs from the end of the one
    before it (the first's from the start). A look that finds several tasks' new records cannot tell when the
    earlier ones ended: they have no time of their own (None), and the last is timed from the file's change."""

    runs: Path
    start: float | None = None
    lines: int = 0
    last: float | None = None
    seconds: dict[str, float | None] = field(default_factory=dict)

    def poll(self) -> None:
        found = sorted(self.runs.glob("*/run.json"))
        if not found:
            return
        folder = found[0].parent
        beat = _read_json_quietly(folder / "heartbeat.json") or {}
        phase = str(beat.get("phase", ""))
        if self.start is None and phase.startswith("evaluating"):
            self.start = float(beat["time"])
        tasks, end = self._finished(folder / "evals.jsonl", phase, beat.get("time"))
        begin = self.last if self.last is not None else self.start
        for task in tasks:
            self.seconds[task] = round(end - begin, 2) if len(tasks) == 1 and begin is not None else None
        if tasks:
            self.last = end

    def _finished(self, evals: Path, phase: str, beat_time: float | None) -> tuple[list[str], float]:
        """The tasks whose first records appeared since the last look, and when the last of them ended."""
        if not evals.is_file():
            return [], 0.0
        stamp = evals.stat().st_mtime
        text = evals.read_text()
        whole = text[:text.rfind("\n") + 1].splitlines()  # a line being appended is read at the next look
        new = [json.loads(line)["task"] for line in whole[self.lines:]]
        self.lines = len(whole)
        tasks = [t for t in dict.fromkeys(new) if t not in self.seconds]
        exact = tasks and beat_time and phase.startswith(f"evaluated {tasks[-1]} ")
        return tasks, float(beat_time) if exact else stamp


def _read_json_quietly(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def step_env(scale: Scale) -> dict[str, str]:
    env = {**os.environ, **OFFLINE_ENV}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # each step is its own single-process run
    if scale.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the smoke runs on the CPU, also on a machine with a GPU
    return env


def execute(step: Step, limit_s: float, log: Path, env: dict[str, str]) -> tuple[int | None, float, TaskClock | None]:
    """Run the step's command in its own process group until it exits or its limit passes (then the group is
    killed: SIGKILL, so that a run does not start writing a checkpoint); (returncode or None, seconds, clock)."""
    clock = TaskClock(Path(step.report)) if step.kind == "train" else None
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(step.argv, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while proc.poll() is None and time.monotonic() - t0 < limit_s:
                if clock:
                    clock.poll()
                time.sleep(0.05 if clock else 0.2)  # often enough to see each task's records arrive alone
        finally:  # past its limit, or the check itself interrupted (Ctrl-C): the step's whole group goes
            timed_out = proc.poll() is None
            if timed_out:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if clock:
        clock.poll()
    return None if timed_out else proc.returncode, time.monotonic() - t0, clock


# ---------------------------------------------------------------- what each step measured


def perf_numbers(report: Path) -> dict[str, Any]:
    """bench.perf's record of the twin: throughput, MFU, the step's phases, scoring and memory."""
    rep = read_json(report)
    if not rep.get("records"):
        raise ValueError(f"{report} holds no record: bench.perf stopped before it measured the twin")
    r = rep["records"][0]
    keep = ("model", "precision", "global_batch", "micro_batch", "samples_per_s", "mfu", "flops_per_sample",
            "cache_speedup", "score_K10_ms_per_sample", "score_K100_ms_per_sample", "generate_ms_per_sample",
            "cuda_max_allocated_gb", "trainable_params")
    out = {k: r[k] for k in keep if k in r}
    out["step_ms"] = {k: round(1e3 * v, 1) for k, v in r["step_cached"].items() if isinstance(v, float)}
    out.update(device=rep["device"], matmul_peak_flops=rep["matmul_peak_flops"], peak_rss_gb=rep.get("peak_rss_gb"))
    return out


def train_numbers(runs: Path, clock: TaskClock | None) -> dict[str, Any]:
    """The run's status, its training throughput, and each task's headline (its first metric), items and time."""
    found = sorted(runs.glob("*/run.json"))
    if not found:
        raise ValueError(f"{runs} holds no run folder: the run stopped before it started")
    folder = found[0].parent
    rec = read_json(folder / "run.json")
    metrics = read_jsonl(folder / "metrics.jsonl") if (folder / "metrics.jsonl").is_file() else []
    evals = read_jsonl(folder / "evals.jsonl") if (folder / "evals.jsonl").is_file() else []
    tasks: dict[str, dict[str, Any]] = {}
    for r in evals:
        task = tasks.setdefault(r["task"], {"metric": r["metric"], "value": r["value"], "items": r.get("n"),
                                            "seconds": (clock.seconds if clock else {}).get(r["task"])})
        if r["metric"] == TASK_FAILED:
            task["error"] = r.get("error", "")
    train_s = rec.get("train_s") or 0
    return {"run": str(folder), "status": rec.get("status"), "samples_seen": rec.get("samples_seen"),
            "setup_s": rec.get("setup_s"), "train_s": train_s,
            "samples_per_s": rec["samples_seen"] / train_s if train_s and rec.get("samples_seen") else None,
            "final_loss": metrics[-1]["loss"] if metrics else None,
            "eval_start_seen": clock is not None and clock.start is not None, "tasks": tasks}


def numbers_of(step: Step, clock: TaskClock | None) -> dict[str, Any]:
    if step.kind == "perf":
        return perf_numbers(Path(step.report))
    if step.kind == "train":
        return train_numbers(Path(step.report), clock)
    if step.kind in ("probe", "knob"):
        return read_json(Path(step.report))
    return {"folder": step.report}


def verdict(step: Step, rc: int | None, numbers: dict[str, Any]) -> tuple[str, str]:
    """(status, error): a train step passes when its run is done and no task failed."""
    if rc is None:
        return "timeout", f"stopped at its time limit (budget {step.budget_s} s plus what earlier steps left)"
    if rc != 0:
        return "failed", f"exit status {rc}"
    if step.kind == "train":
        failed = [t for t, r in numbers.get("tasks", {}).items() if "error" in r]
        if numbers.get("status") != "done":
            return "failed", f"the run's status is {numbers.get('status')!r}, not 'done'"
        if failed:
            return "failed", f"tasks failed: {', '.join(failed)}"
    return "passed", ""


def run_step(step: Step, limit_s: float, folders: Folders, env: dict[str, str]) -> Outcome:
    log = folders.work / "logs" / f"{step.name.replace(':', '_')}.log"
    rc, wall, clock = execute(step, limit_s, log, env)
    out = Outcome(step.name, step.kind, step.twin, step.knob, "passed", step.budget_s, round(limit_s, 1),
                  round(wall, 1), rc, log=str(log))
    try:
        out.numbers = numbers_of(step, clock)
    except (OSError, ValueError, KeyError) as e:  # nothing (readable) written: the step's log says why
        out.error = f"no numbers: {e}"
    if step.kind == "train":  # random weights: its checkpoint (12 GB at paper scale) is of no use, and fills the disk
        for folder in Path(step.report).glob("*/checkpoints"):
            shutil.rmtree(folder, ignore_errors=True)
    out.status, error = verdict(step, rc, out.numbers)
    out.error = "; ".join(e for e in (error, out.error) if e)
    if out.status != "passed" or out.error:
        out.error += f"\n--- the last lines of {log} ---\n{_tail(log)}"
    return out


# ---------------------------------------------------------------- the summary


def _fmt(value: Any, spec: str = ".1f", scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _memory(n: dict[str, Any]) -> str:
    if n.get("cuda_max_allocated_gb") is not None:
        return f"{n['cuda_max_allocated_gb']:.1f} GB"
    return f"{n['peak_rss_gb']:.2f} GB RSS" if n.get("peak_rss_gb") is not None else "-"


def _steps_table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| step | status | wall s (limit) | samples/s | MFU | peak memory | note |", "|---|---|---:|---:|---:|---:|---|"]
    for o in outcomes:
        n = o.numbers
        note = o.error.splitlines()[0] if o.error else ""
        mfu = _fmt(n.get("mfu"), ".1f", 100) + "%" if n.get("mfu") is not None else "-"
        lines.append(f"| {o.name} | {o.status} | {o.wall_s:.0f} ({o.limit_s:.0f}) | {_fmt(n.get('samples_per_s'))} | "
                     f"{mfu} | {_memory(n) if o.kind in ('perf', 'knob') else '-'} | {note} |")
    return lines


def _knob_row(o: Outcome, baseline: dict[str, Any]) -> str:
    name = o.knob or "baseline (bench.perf)"
    n = o.numbers
    if o.status != "passed" or not n.get("samples_per_s"):
        return f"| {o.twin} | {name} | {o.status} | - | - | - | - |"
    sps = n["samples_per_s"]
    ratio = f"{sps / baseline['samples_per_s']:.2f}x" if baseline.get("samples_per_s") else "-"
    ms = n.get("step_ms", {})
    parts = " / ".join(_fmt(ms.get(k), ".0f") for k in ("data", "forward", "backward", "optimizer"))
    return f"| {o.twin} | {name} | {sps:.1f} | {ratio} | {100 * n['mfu']:.1f}% | {parts} | {_memory(n)} |"


def _knob_table(outcomes: list[Outcome]) -> list[str]:
    baseline = {o.twin: o.numbers for o in outcomes if o.kind == "perf" and o.status == "passed"}
    rows = sorted((o for o in outcomes if o.kind in ("perf", "knob")), key=lambda o: o.twin)  # stable: perf first
    return ["| twin | knob | samples/s | against the baseline | MFU | step ms (data / fwd / bwd / opt) | peak memory |",
            "|---|---|---:|---:|---:|---|---:|", *(_knob_row(o, baseline.get(o.twin, {})) for o in rows)]


def _train_table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| twin | status | training samples/s | final loss | task | metric | value | items | seconds |",
             "|---|---|---:|---:|---|---|---:|---:|---:|"]
    for o in (o for o in outcomes if o.kind == "train"):
        n = o.numbers
        head = f"| {o.twin} | {o.status} | {_fmt(n.get('samples_per_s'))} | {_fmt(n.get('final_loss'), '.3f')}"
        tasks = n.get("tasks") or {"-": {}}
        for task, r in tasks.items():
            value = "failed" if "error" in r else _fmt(r.get("value"), ".2f")
            lines.append(f"{head} | {task} | {r.get('metric', '-')} | {value} | {r.get('items') or '-'} | "
                         f"{_fmt(r.get('seconds'))} |")
            head = "| | | |"
    return lines


def markdown(summary: dict[str, Any], outcomes: list[Outcome]) -> str:
    s = summary
    counts = ", ".join(f"{sum(o.status == k for o in outcomes)} {k}" for k in ("passed", "failed", "timeout", "not run")
                       if any(o.status == k for o in outcomes))
    g, m = s["perf_batch"]
    return "\n".join([
        f"# GPU check ({s['mode']}): {s['device']}", "",
        f"`{s['command']}` at {s['commit']}, {s['started']}: "
        f"{s['preset']} with random weights, {s['precision']}, {s['frames']} frames at {s['size']} px; "
        f"{s['wall_s']:.0f} s of a {s['budget_s']} s budget; {counts}.", "",
        "## Steps", "", *_steps_table(outcomes), "",
        f"## The training step with each speed-up (global batch {g}, micro-batch {m}; {s['perf_steps']} timed steps "
        f"after {s['warmup']} warm-up steps)", "", *_knob_table(outcomes), "",
        f"## {s['train_steps']} training steps, then every task from the exported files (seconds: each task's "
        "evaluation, its clips' encoding included)", "", *_train_table(outcomes), ""])


def write_summary(scale: Scale, steps: list[Step], outcomes: list[Outcome], folders: Folders, started: float) -> dict:
    probe = next((o.numbers for o in outcomes if o.kind == "probe" and o.numbers), {})
    summary = {
        "mode": scale.name, "device": probe.get("name", "unknown (the probe did not run)"), "probe": probe,
        "command": " ".join(["python -m bench.tools.gpu_check", shlex.join(sys.argv[1:])]).strip(),
        "commit": git_commit(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "wall_s": round(time.time() - started, 1), "budget_s": sum(s.budget_s for s in steps),
        "preset": scale.preset, "precision": scale.precision, "frames": scale.frames, "size": scale.size,
        "perf_batch": scale.perf_batch, "perf_steps": scale.perf_steps, "warmup": scale.warmup,
        "train_batch": scale.train_batch, "train_steps": scale.train_steps, "twins": twins(),
        "plan": [{"name": s.name, "budget_s": s.budget_s, "command": shlex.join(s.argv)} for s in steps],
        "steps": [asdict(o) for o in outcomes],
    }
    write_json(folders.out / "summary.json", summary)
    write_atomic(folders.out / "summary.md", markdown(summary, outcomes))
    return summary


def run_plan(scale: Scale, steps: list[Step], folders: Folders, log=print) -> list[Outcome]:
    """Every step in order, each limited to its budget plus what the steps before it left unused; the summary
    is rewritten after each (a killed check keeps what it measured)."""
    env = step_env(scale)
    started = time.time()
    outcomes = [Outcome(s.name, s.kind, s.twin, s.knob, "not run", s.budget_s) for s in steps]
    spare = 0.0
    for i, step in enumerate(steps):
        limit = step.budget_s + spare
        log(f"[{i + 1}/{len(steps)}] {step.name}: up to {limit:.0f} s")
        outcomes[i] = run_step(step, limit, folders, env)
        spare = max(0.0, limit - outcomes[i].wall_s)
        first = outcomes[i].error.splitlines()[0] if outcomes[i].error else ""
        log(f"    {outcomes[i].status} in {outcomes[i].wall_s:.0f} s" + (f": {first} (log: {outcomes[i].log})" if first else ""))
        write_summary(scale, steps, outcomes, folders, started)
    return outcomes


def write_sweeps(scale: Scale, folders: Folders) -> None:
    """One sweep file a twin, of one point: the preset, then what the twin's point of jepa_vs_vlm.yaml changes.
    bench.perf and the knob steps read them (--sweep), so both configure a twin alike."""
    for twin, changes in twins().items():
        body = {"name": f"gpu_check/{scale.name}/{twin}", "base": [str(REPO_ROOT / scale.preset)], "set": changes,
                "seeds": [0], "results": str(folders.work / "results")}
        path = folders.work / "sweeps" / f"{twin}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {twin} as {TWINS_SWEEP} configures it, on {scale.preset} (bench/tools/gpu_check.py)\n"
                        + yaml.safe_dump(body, sort_keys=False))


def check_folders(folders: Folders) -> None:
    """Both folders new or empty: a summary is never overwritten, and a run left in WORK would resume, not train."""
    for what, path in (("--out", folders.out), ("--work", folders.work)):
        if path.exists() and any(path.iterdir()):
            raise SystemExit(f"error: {what} {path} already holds files; pass a new folder (a check never writes over "
                             "an earlier one, and runs left there would resume instead of training)")
        path.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------- the two commands a step runs


def probe(device_kind: str, precision: str, out: Path) -> int:
    """The device a check runs on: visible, its precision computes, its process group's backend reduces."""
    if device_kind == "cuda" and not torch.cuda.is_available():
        print(f"error: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU; check nvidia-smi and "
              "CUDA_VISIBLE_DEVICES, or run the same steps on the CPU with --cpu-smoke", file=sys.stderr)
        return 2
    device = distenv.setup(distenv.detect())
    cuda = device.type == "cuda"
    if cuda and precision == "bf16" and not torch.cuda.is_bf16_supported():
        print(f"error: {torch.cuda.get_device_name(device)} does not compute in bf16; the paper preset trains in bf16 "
              "(an A100, H100 or newer does)", file=sys.stderr)
        return 2
    x = torch.randn(512, 512, device=device, dtype={"bf16": torch.bfloat16, "fp32": torch.float32}[precision])
    ones = torch.ones(1, device=device)
    dist.all_reduce(ones)
    info = {"name": torch.cuda.get_device_name(device) if cuda else f"CPU, {os.cpu_count()} cores",
            "device": str(device), "backend": dist.get_backend(), "all_reduce": ones.item(),
            "matmul_finite": bool(torch.isfinite(x @ x).all()), "precision": precision, "cpus": os.cpu_count(),
            "cuda": torch.version.cuda, **versions()}
    if cuda:
        free, total = torch.cuda.mem_get_info(device)
        info.update(memory_gb=round(total / 1e9, 1), free_gb=round(free / 1e9, 1),
                    nccl=".".join(map(str, torch.cuda.nccl.version())))
    distenv.teardown()
    write_json(out, info)
    print(json.dumps(info, indent=1))
    return 0 if info["matmul_finite"] and info["all_reduce"] == 1.0 else 1


def time_step(sweep: str, steps: int, warmup: int, overrides: list[str], out: Path) -> int:
    """The twin's training step alone, as bench.perf times it (prepare: the model, its caches, the engine, the
    speed-ups; time_steps: optimizer_step with a synchronising clock): samples/s, MFU, phases, peak memory."""
    device = distenv.setup(distenv.detect())
    [(label, cfg)] = perf.sweep_configs(sweep, overrides, offline=False)
    peak = perf.matmul_peak(device, perf.DTYPES[cfg.train.precision])
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    _, _, _, cached, engine, flops = perf.prepare(cfg, device, log=print)
    built = time.perf_counter() - t0
    phases = perf.time_steps(engine, cfg, cached, steps, device, warmup=warmup)
    g = cfg.train.global_batch
    rec = {"label": label, "model": cfg.model.name, "overrides": overrides, "precision": cfg.train.precision,
           "global_batch": g, "micro_batch": cfg.train.micro_batch, "steps": steps, "warmup": warmup,
           "build_s": round(built, 1), "flops_per_sample": flops, "matmul_peak_flops": peak,
           "samples_per_s": g / phases["total"], "mfu": flops * g / phases["total"] / peak,
           "step_ms": {k: round(1e3 * v, 1) for k, v in phases.items() if isinstance(v, float)},
           "losses": phases["losses"], "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
           "device": torch.cuda.get_device_name(device) if cuda else "cpu"}
    if cuda:
        rec["cuda_max_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
    distenv.teardown()
    write_json(out, rec)
    print(f"{label} {' '.join(overrides[-1:])}: {rec['samples_per_s']:.1f} samples/s, MFU {100 * rec['mfu']:.1f}%")
    return 0


# ---------------------------------------------------------------- the command


def _step_command(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"python -m bench.tools.gpu_check {argv[0]}")
    p.add_argument("--json", type=Path, required=True, help="where the step writes what it measured")
    if argv[0] == "probe":
        p.add_argument("--device", choices=["cuda", "cpu"], required=True)
        p.add_argument("--precision", choices=["bf16", "fp32"], required=True)
        args = p.parse_args(argv[1:])
        return probe(args.device, args.precision, args.json)
    p.add_argument("--sweep", required=True, help="a sweep file of one point: the twin")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv[1:])
    return time_step(args.sweep, args.steps, args.warmup, args.set, args.json)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["probe"], ["time-step"]):
        return _step_command(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true",
                   help="the same steps on experiments/base/paper_micro.yaml on the CPU (fp32, gloo), in minutes")
    p.add_argument("--dry-run", action="store_true", help="print the plan (each step's command and budget) and stop")
    p.add_argument("--out", type=Path, help="summary.json, summary.md and bench.perf's reports "
                                            "(default results/perf/gpu_check/<time>/)")
    p.add_argument("--work", type=Path, help="the runs, the exported data and the logs (default "
                                             "results/perf/gpu_check/work-<time>/)")
    p.add_argument("--only", nargs="+", default=[], metavar="NAME",
                   help="run only the steps whose names match (fnmatch: 'perf:*', 'knob:vljepa:*'); the export step "
                        "is needed by the train steps")
    args = p.parse_args(argv)
    scale = CPU_SMOKE if args.cpu_smoke else GPU
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = REPO_ROOT / "results" / "perf" / "gpu_check"
    folders = Folders((args.out or root / stamp).resolve(), (args.work or root / f"work-{stamp}").resolve())
    planned = plan(scale, folders)
    steps = select(planned, args.only)
    print(describe(scale, steps, [s for s in planned if s.extra and s not in steps]), flush=True)
    if args.dry_run:
        return 0
    check_folders(folders)
    write_sweeps(scale, folders)
    outcomes = run_plan(scale, steps, folders, log=lambda m: print(m, flush=True))
    print(f"\n{folders.out / 'summary.md'}:\n" + (folders.out / "summary.md").read_text())
    return 0 if all(o.status == "passed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
