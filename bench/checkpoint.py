"""Checkpoints of a run: written atomically, kept last-N, resumed exactly.

A checkpoint is a DeepSpeed checkpoint (module, optimizer, scheduler) plus, per rank, a small
client file (RNG state and the run's position) saved with torch.save and loaded with
weights_only=True. It is written under a temporary name and renamed when every rank has finished,
then the LATEST.json pointer is replaced atomically: a reader (or a resumed run) sees the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from bench.results import read_json, write_json

LATEST = "LATEST.json"
MODEL_STATES = "mp_rank_00_model_states.pt"  # DeepSpeed's module weights (ZeRO 0-2; empty under ZeRO-3)


def client_file(rank: int) -> str:
    return f"client_rank{rank}.pt"


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class Checkpoints:
    def __init__(self, root: Path, keep: int, rank: int):
        self.root, self.keep, self.rank = root, keep, rank

    def latest(self) -> dict[str, Any] | None:
        """{"tag": ..., "meta": {...}} of the newest complete checkpoint, or None."""
        return read_latest(self.root)

    def save(self, engine, tag: str, meta: dict[str, Any]) -> None:
        tmp = f"{tag}.tmp"
        if self.rank == 0 and (self.root / tmp).exists():
            shutil.rmtree(self.root / tmp)  # left by a run killed while saving
        _barrier()
        engine.save_checkpoint(str(self.root), tag=tmp, save_latest=False)
        torch.save({"rng": torch.get_rng_state(), "meta": meta}, self.root / tmp / client_file(self.rank))
        _barrier()
        if self.rank == 0:
            if (self.root / tag).exists():
                shutil.rmtree(self.root / tag)
            (self.root / tmp).rename(self.root / tag)
            write_json(self.root / LATEST, {"tag": tag, "meta": meta})
            self._prune(tag)
        _barrier()

    def _prune(self, newest: str) -> None:
        tags = sorted((p for p in self.root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
                      key=lambda p: p.stat().st_mtime)
        for old in [p for p in tags if p.name != newest][: max(0, len(tags) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)

    def load(self, engine, tag: str, module_only: bool = False) -> dict[str, Any]:
        """Restore engine state (or only the module's weights) and this rank's RNG; return the meta."""
        engine.load_checkpoint(str(self.root), tag=tag, load_module_only=module_only,
                               load_optimizer_states=not module_only, load_lr_scheduler_states=not module_only)
        client = torch.load(self.root / tag / client_file(self.rank), weights_only=True)
        if not module_only:
            torch.set_rng_state(client["rng"])
        return client["meta"]


def read_latest(root: Path) -> dict[str, Any] | None:
    """{"tag": ..., "meta": {...}} of the newest complete checkpoint under root, or None."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    info = read_json(pointer)
    return info if (root / info["tag"]).is_dir() else None


def checkpoint_meta(folder: Path) -> dict[str, Any]:
    """The run position a checkpoint folder was saved at (stage, samples_seen, ...)."""
    return torch.load(folder / client_file(0), weights_only=True)["meta"]


def is_checkpoint(folder: Path) -> bool:
    return (folder / MODEL_STATES).is_file()
