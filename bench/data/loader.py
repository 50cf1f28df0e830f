"""The one loader every model reads: the same samples, in the same order, whatever the model.

Samples are a pure function of their global position k (see TrainSamples). An optimizer step
consumes one global batch of G = micro x accumulation x world samples, laid out as
accumulation rounds of world x micro positions; rank r takes the r-th micro slice of each
round. So ranks are disjoint, together they cover every global batch exactly once, and the
loader's whole state is one number: the global position reached. Worker processes only
prefetch the positions the sampler lists, in that order, so they never change the order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.data.layout import BatchLayout


class PositionalSamples(Protocol):
    def __getitem__(self, k: int) -> dict[str, Any]: ...


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Videos (T, H, W, 3) uint8 -> one (B, T, 3, H, W) uint8 tensor; cached X features (N, dim) -> one
    (B, N, dim) tensor; numbers -> tensors; strings stay lists."""
    out: dict[str, Any] = {}
    if "video" in samples[0]:
        out["video"] = torch.from_numpy(np.stack([s["video"] for s in samples])).permute(0, 1, 4, 2, 3)
    if "x_features" in samples[0]:
        out["x_features"] = torch.from_numpy(np.stack([s["x_features"] for s in samples]))
    replaced = [s["replaced"] for s in samples if s.get("replaced")]
    if replaced:  # per replaced sample (on_error: skip), the files it could not read, from any sample of the batch
        out["replaced"] = replaced
    for key in samples[0]:
        if key in ("video", "x_features", "replaced"):
            continue
        values = [s[key] for s in samples]
        out[key] = torch.tensor(values) if isinstance(values[0], (int, np.integer)) else values
    return out


class _Positions(Dataset):
    def __init__(self, samples: PositionalSamples):
        self.samples = samples

    def __getitem__(self, k: int) -> dict[str, Any]:
        return self.samples[k]

    def __len__(self) -> int:  # positions are unbounded; the sampler decides which are read
        return 2**62


class _RankBatches(Sampler[list[int]]):
    def __init__(self, start: int, stop: int, micro: int, world: int, rank: int):
        self.start, self.stop, self.micro, self.world, self.rank = start, stop, micro, world, rank

    def __iter__(self) -> Iterator[list[int]]:
        round_size = self.micro * self.world
        for base in range(self.start, self.stop, round_size):
            first = base + self.rank * self.micro
            yield list(range(first, first + self.micro))

    def __len__(self) -> int:
        return max(0, -(-(self.stop - self.start) // (self.micro * self.world)))


class SharedLoader:
    """Micro-batches of one rank, from the current global position up to the budget."""

    def __init__(self, samples: PositionalSamples, global_batch: int, micro_batch: int, budget: int,
                 world_size: int = 1, rank: int = 0, num_workers: int = 0):
        self.layout = BatchLayout(global_batch, micro_batch, world_size)
        if budget % global_batch:
            raise ValueError(f"budget {budget} is not a multiple of the global batch {global_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.samples = samples
        self.global_batch, self.micro, self.budget = global_batch, micro_batch, budget
        self.world, self.rank, self.num_workers = world_size, rank, num_workers
        self.accumulation = self.layout.accumulation
        self.position = 0  # global samples consumed by all ranks together

    def __iter__(self) -> Iterator[dict[str, Any]]:
        sampler = _RankBatches(self.position, self.budget, self.micro, self.world, self.rank)
        # its own generator: starting an iterator must not draw from the global RNG (a resumed run
        # restores that RNG and must then consume it exactly as the uninterrupted run did)
        loader = DataLoader(_Positions(self.samples), batch_sampler=sampler, collate_fn=collate,
                            num_workers=self.num_workers, persistent_workers=False,
                            pin_memory=torch.cuda.is_available(),  # page-locked: faster copies to the GPU
                            prefetch_factor=4 if self.num_workers else None,
                            generator=torch.Generator().manual_seed(self.position))
        for batch in loader:
            self.position += self.micro * self.world
            yield batch

    def __len__(self) -> int:
        return (self.budget - self.position) // (self.micro * self.world)

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        pos = int(state["position"])
        if pos % (self.micro * self.world) or not 0 <= pos <= self.budget:
            raise ValueError(f"loader position {pos} does not fall on a round of {self.micro * self.world} "
                             f"samples inside the budget {self.budget}")
        self.position = pos


def fingerprint(samples: PositionalSamples, n: int = 64) -> str:
    """A hash of the first n samples (pixels and texts): equal for two runs that read the same data."""
    h = hashlib.sha256()
    for k in range(n):
        s = samples[k]
        h.update(np.ascontiguousarray(s["video"]).tobytes())
        h.update(f"\x00{s.get('query', '')}\x00{s.get('target', '')}\x00".encode())
    return h.hexdigest()[:16]
