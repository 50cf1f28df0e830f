"""The layout of an optimizer step's samples over micro-batches and processes (no torch: the config checks it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchLayout:
    """One optimizer step's samples: global_batch = micro_batch x accumulation x processes, laid out as
    accumulation rounds of processes x micro_batch positions. The config, the engine and the loader all read
    it from here (the keys are train.global_batch, train.micro_batch and the process count)."""

    global_batch: int
    micro_batch: int
    processes: int = 1

    def __post_init__(self):
        if self.global_batch % (self.micro_batch * self.processes):
            raise ValueError(f"train.global_batch={self.global_batch} is not a multiple of train.micro_batch="
                             f"{self.micro_batch} x {self.processes} process(es)")

    @property
    def accumulation(self) -> int:
        """Micro-batches each process runs before one optimizer step."""
        return self.global_batch // (self.micro_batch * self.processes)
