"""A sweep file: matched runs from one base config (the grid, zip groups and seeds that bench/sweep/plan.py
expands into run configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.config import read_yaml, resolve_path
from bench.configlib import from_dict
from bench.sweep.tune import TuneConfig

ZIP_LABEL = "label"  # a zip group's readable names for its points (tables and figures), not a config key
# what seed_scope: all sets to each run's seed: every random initialisation the training scope leaves fixed
SEED_SCOPE_ALL = ("model.x_encoder.backbone.init_seed", "model.lm.backbone.init_seed",
                  "model.lm.text_pretraining.seed", "model.y_encoder.backbone.init_seed")


@dataclass
class SweepConfig:
    """A sweep: matched runs from one base config. Every run = base, then `set`, then one point of the
    grid (the cartesian product of `grid` and of each `zip` group, whose lists vary together), then a
    seed. Runs of one seed form a comparison group: they may differ only in the swept keys."""

    name: str = ""
    base: list[str] = field(default_factory=list, metadata={"help": "run config file(s)"})
    set: dict[str, Any] = field(default_factory=dict, metadata={"help": "dotted key -> value, for every run"})
    grid: dict[str, list[Any]] = field(default_factory=dict, metadata={"help": "dotted key -> values (cartesian)"})
    zip: list[dict[str, list[Any]]] = field(default_factory=list, metadata={
        "help": "groups of keys varying together; a group's optional 'label' list names its points in tables"})
    seeds: list[int] = field(default_factory=lambda: [0])
    seed_scope: Literal["training", "all"] = field(default="training", metadata={
        "help": "what a seed varies. training: the data order, the trained modules' initialisation and dropout; "
                "the frozen X-encoder, the LM's initialisation and its text pretraining stay the same for every "
                "seed (their init_seed). all: a seed also sets those (SEED_SCOPE_ALL's keys), so that a verdict "
                "holds over encoders and LMs, not one draw of them. The evaluation items are the same in both"})
    tune: TuneConfig | None = field(default=None, metadata={
        "help": "one key chosen per arm on a validation set, the verdict read on a held-out set (bench/sweep/tune.py)"})
    launch: dict[str, Any] = field(default_factory=dict, metadata={"help": "launch.* settings for every run"})
    results: str = field(default="results", metadata={"help": "the results store (runs/ and sweeps/ inside)"})

    def check(self) -> None:
        if not self.name:
            raise ValueError("a sweep needs a 'name'")
        if not self.base:
            raise ValueError("a sweep needs a 'base' run config file")
        for i, group in enumerate(self.zip):
            lengths = {k: len(v) for k, v in group.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"zip[{i}]: the lists must have one length, got {lengths}")
            if ZIP_LABEL in group and not all(isinstance(x, str) and x for x in group[ZIP_LABEL]):
                raise ValueError(f"zip[{i}].{ZIP_LABEL}: expected a non-empty name for each point, got {group[ZIP_LABEL]}")
            if set(group) == {ZIP_LABEL}:
                raise ValueError(f"zip[{i}] has a '{ZIP_LABEL}' list and no key to vary")
        keys = self.arm_keys()
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"keys swept twice (grid and zip): {sorted(dup)}")
        if not self.seeds:
            raise ValueError("seeds is empty")
        if self.tune is not None:
            self.tune.check_in(keys, list(self.set))
        if self.seed_scope == "all":
            clash = sorted(k for k in SEED_SCOPE_ALL if k in self.set or k in self.swept())
            if clash:
                raise ValueError(f"seed_scope: all sets {', '.join(clash)} to each run's seed; the sweep also sets or "
                                 "sweeps them: drop one or the other")

    def seed_settings(self, seed: int) -> dict[str, Any]:
        """The keys a seed sets beyond `seed` itself (seed_scope)."""
        return {k: seed for k in SEED_SCOPE_ALL} if self.seed_scope == "all" else {}

    def swept(self) -> list[str]:
        """The config keys the sweep varies (a zip group's 'label' names points; it is not a key), the tuned
        key last."""
        return self.arm_keys() + ([self.tune.key] if self.tune else [])

    def arm_keys(self) -> list[str]:
        """The keys whose points are the sweep's arms (what its verdicts compare): the grid's and the zip groups'."""
        return list(self.grid) + [k for g in self.zip for k in g if k != ZIP_LABEL]


def load_sweep_config(path: str | Path) -> tuple[SweepConfig, Path]:
    """The sweep config and its resolved file (base paths resolve next to it, then under experiments/)."""
    resolved = resolve_path(path)
    data = read_yaml(resolved)
    if isinstance(data.get("base"), str):
        data["base"] = [data["base"]]
    return from_dict(SweepConfig, data, {"": str(resolved)}), resolved
