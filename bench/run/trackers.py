"""Experiment trackers: where a run's scalars go besides its own records (metrics.jsonl, evals.jsonl).

`tracking.trackers` names them (default: tensorboard):

    tensorboard  event files in <results>/tensorboard/<run name>/<run_id>: a sweep's runs are named
                 sweep/condition/seedN, so `tensorboard --logdir results/tensorboard` shows the twins
                 side by side, live, grouped by sweep
    csv          scalars.csv in the run folder: samples_seen, tag, value, wall_time (long format: pandas
                 pivots it)
    wandb        a Weights & Biases run with the run_id as its id, grouped by sweep, the resolved config
                 attached; offline by default (files under the run folder; `wandb sync` uploads them)

Every scalar is logged against samples_seen, the x axis of every figure here (twins with other batch
layouts stay comparable). Tags: train/<loss key>, train/lr, train/grad_norm, train/samples_per_s from each
logged window of steps; <task>/<metric>[@<rate>Hz]/<eval set> from each evaluation.

A resumed run logs again what it logged after the checkpoint it resumes from: TensorBoard's purge step
and the CSV's truncation drop the earlier copies, so every tag has one value per samples_seen. Only the
main process tracks. A tracker is one class with `log(scalars, samples_seen)` and `close()`, registered
by name in TRACKERS.
"""

from __future__ import annotations

import csv
import importlib.util
import time
from collections.abc import Callable
from typing import Any, Protocol

from bench.config import TrackingConfig, feature_check
from bench.configlib import to_dict
from bench.results import RunDir, read_csv_rows, write_atomic


class Tracker(Protocol):
    def log(self, scalars: dict[str, float], samples_seen: int) -> None: ...

    def close(self) -> None: ...


# name -> (constructor(cfg, run folder, resumed_at), the module it needs, how to get it)
TRACKERS: dict[str, tuple[Callable[[Any, RunDir, int], Tracker], str | None]] = {}


def register(name: str, needs: str | None = None):
    def add(cls):
        TRACKERS[name] = (cls, needs)
        return cls

    return add


@feature_check("tracking")
def check_installed(cfg: TrackingConfig) -> None:
    """tracking.trackers names trackers whose packages are installed."""
    missing = missing_packages(cfg.trackers)
    if missing:
        raise ValueError("; ".join(missing))


def missing_packages(names: list[str]) -> list[str]:
    """The trackers among names whose package is not installed, each with the command that installs it."""
    out = []
    for name in names:
        needs = TRACKERS[name][1] if name in TRACKERS else None
        if needs and importlib.util.find_spec(needs) is None:
            out.append(f"tracking.trackers has {name!r}, but the {needs} package is not installed "
                       f"(pip install 'vljepa-bench[{name}]', or pip install {needs})")
    return out


@register("tensorboard", needs="tensorboard")
class TensorBoardTracker:
    def __init__(self, cfg, run: RunDir, resumed_at: int):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = run.tensorboard(cfg.name)
        # the purge step: what an earlier attempt logged after resumed_at is dropped by every reader
        self.writer = SummaryWriter(str(self.folder), purge_step=resumed_at + 1, flush_secs=10)

    def log(self, scalars: dict[str, float], samples_seen: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step=samples_seen)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


CSV_COLUMNS = ("samples_seen", "tag", "value", "wall_time")


@register("csv")
class CsvTracker:
    def __init__(self, cfg, run: RunDir, resumed_at: int):
        self.path = run.scalars
        kept = [r for r in read_csv_rows(self.path) if int(r["samples_seen"]) <= resumed_at]
        rows = [",".join(CSV_COLUMNS)] + [",".join(r[c] for c in CSV_COLUMNS) for r in kept]
        write_atomic(self.path, "\n".join(rows) + "\n")
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)

    def log(self, scalars: dict[str, float], samples_seen: int) -> None:
        now = round(time.time(), 3)
        self.writer.writerows([samples_seen, tag, repr(float(v)), now] for tag, v in scalars.items())
        self.file.flush()

    def close(self) -> None:
        self.file.close()


@register("wandb", needs="wandb")
class WandbTracker:
    """samples_seen is logged as a metric and declared every other metric's x axis (W&B's own step must
    only grow; a resumed run logs again from its checkpoint)."""

    def __init__(self, cfg, run: RunDir, resumed_at: int):
        import wandb

        run.wandb.mkdir(parents=True, exist_ok=True)
        t = cfg.tracking
        self.run = wandb.init(project=t.wandb_project, mode=t.wandb_mode, dir=str(run.path), id=run.path.name,
                              name=cfg.name, group=cfg.name.split("/")[0], config=to_dict(cfg), resume="allow",
                              settings=wandb.Settings(console="off", quiet=True))
        self.run.define_metric("samples_seen")
        self.run.define_metric("*", step_metric="samples_seen")

    def log(self, scalars: dict[str, float], samples_seen: int) -> None:
        self.run.log({**scalars, "samples_seen": samples_seen})

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The run's trackers (none on processes other than the main one)."""

    def __init__(self, cfg, run: RunDir, resumed_at: int, enabled: bool = True):
        self.open: list[Tracker] = [TRACKERS[n][0](cfg, run, resumed_at) for n in cfg.tracking.trackers] if enabled else []

    def log(self, scalars: dict[str, float], samples_seen: int) -> None:
        finite = {k: float(v) for k, v in scalars.items() if isinstance(v, int | float) and v == v}
        for t in self.open:
            t.log(finite, samples_seen)

    def log_train(self, row: dict[str, Any]) -> None:
        """A metrics.jsonl row: its losses, lr, grad norm and samples/s."""
        skip = ("step", "samples_seen", "stage", "time")
        self.log({f"train/{k}": v for k, v in row.items() if k not in skip and v is not None}, row["samples_seen"])

    def log_evals(self, records: list[dict[str, Any]], samples_seen: int) -> None:
        self.log({eval_tag(r): r["value"] for r in records}, samples_seen)

    def close(self) -> None:
        for t in self.open:
            t.close()
        self.open = []


def eval_tag(record: dict[str, Any]) -> str:
    """<task>/<metric>[@<rate>Hz][/<eval set>]: TensorBoard groups a task's metrics under its name."""
    rate = f"@{record['rate_hz']:g}Hz" if "rate_hz" in record else ""
    dataset = "/" + str(record["dataset"]).strip("/").replace("/", "_") if record.get("dataset") else ""
    return f"{record['task']}/{record['metric']}{rate}{dataset}"
