"""A sweep's `tune` block: one key tuned per arm on a validation set, the verdict read on a held-out set.

    tune:
      key: train.lr
      values: [3.0e-4, 1.0e-3, 3.0e-3]
      metric: classification/top1     # task/metric, as evals.jsonl names them
      select: shapes:val              # the eval set each arm's value is chosen on
      report: shapes:test             # the eval set its verdict is read on

Every arm (a point of the grid and zip groups) runs at every value, for every seed; each arm's value is the
one with the best mean over seeds of `metric` on `select` at the full budget (the first in `values` order on a
tie), and the arms are compared at their chosen values on `report` (analysis/tuning.py chooses, from the
records). Every task of a run is evaluated on both sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bench.configlib import ConfigError

PREFIX = "tune"  # where errors point


@dataclass
class TuneConfig:
    key: str = field(default="", metadata={"help": "the dotted config key tuned per arm, e.g. train.lr"})
    values: list[Any] = field(default_factory=list, metadata={"help": "the values each arm runs at"})
    metric: str = field(default="", metadata={"help": "task/metric chosen on, e.g. classification/top1"})
    select: str = field(default="shapes:val", metadata={"help": "the eval set the value is chosen on"})
    report: str = field(default="shapes:test", metadata={"help": "the eval set the verdict is read on"})
    goal: Literal["max", "min"] = field(default="max", metadata={"help": "max: higher is better (min: lower)"})

    @property
    def task(self) -> str:
        return self.metric.partition("/")[0]

    @property
    def metric_name(self) -> str:
        return self.metric.partition("/")[2]

    def check(self) -> None:
        """Errors name the key, the value and what was expected."""
        if not self.key:
            raise ValueError(f"{PREFIX}.key: expected the dotted config key to tune (e.g. train.lr)")
        if len(self.values) < 2:
            raise ValueError(f"{PREFIX}.values: {self.values!r}; expected at least two values to choose from")
        if len({repr(v) for v in self.values}) != len(self.values):
            raise ValueError(f"{PREFIX}.values: {self.values!r} repeats a value")
        task, _, metric = self.metric.partition("/")
        if not task or not metric:
            raise ValueError(f"{PREFIX}.metric: {self.metric!r}; expected task/metric, e.g. classification/top1")
        if self.select == self.report:
            raise ValueError(f"{PREFIX}.select and {PREFIX}.report are both {self.select!r}: a value chosen on the "
                             "set its verdict is read on overstates it; expected two sets (e.g. shapes:val, shapes:test)")
        if self.key == "seed":
            raise ValueError(f"{PREFIX}.key: seed; a seed is not a value to choose (list seeds under 'seeds')")

    def check_in(self, swept: list[str], set_keys: list[str]) -> None:
        """The tuned key is set in one place only."""
        if self.key in swept:
            raise ValueError(f"{PREFIX}.key: {self.key} is also swept by the grid or a zip group; expected it in one place")
        if self.key in set_keys:
            raise ValueError(f"{PREFIX}.key: {self.key} is also fixed by 'set'; drop it there")

    def record(self) -> dict[str, Any]:
        """What the sweep record keeps of it (analysis/tuning.py reads it)."""
        return {"key": self.key, "values": list(self.values), "metric": self.metric, "select": self.select,
                "report": self.report, "goal": self.goal}


def eval_sets(tune: TuneConfig, tasks: list[str], given: dict[str, list[str]], where: str) -> dict[str, list[str]]:
    """Each task's eval sets for a tuned run: both sets, where the sweep names none; where it names them (eval.sets),
    they must hold both for every task evaluated (else an error naming the task)."""
    if tune.task not in tasks:
        raise ConfigError(f"{PREFIX}.metric: {tune.metric!r}, but {where} does not evaluate {tune.task!r} "
                         f"(eval.tasks: {tasks})")
    if not given:
        return {task: [tune.select, tune.report] for task in tasks}
    for task in tasks:
        missing = [s for s in (tune.select, tune.report) if s not in given.get(task, ["shapes"])]
        if missing:
            raise ConfigError(f"eval.sets.{task}: {given.get(task, ['shapes'])}; a tuned sweep evaluates every task on "
                             f"{PREFIX}.select and {PREFIX}.report, missing {missing} ({where})")
    return given
