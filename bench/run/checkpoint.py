"""Checkpoints of a run: written atomically, kept last-N, resumed exactly.

A checkpoint is a DeepSpeed checkpoint (module, optimizer, scheduler) plus, per rank, a small
client file (RNG state and the run's position) saved with torch.save and loaded with
weights_only=True. It is written under a temporary name; when every rank has finished, a manifest of
its files (sizes, and hashes of the small ones) is written last, the folder renamed, and the LATEST.json
pointer replaced atomically: a reader (or a resumed run) sees the previous checkpoint or the new one,
never half of one.

A resumed run takes the newest checkpoint that matches its manifest: one damaged after it was written
(a truncated or deleted file, a garbled client file) or a cut-off LATEST.json is reported by path and
passed over for the newest intact one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from bench.dist import barrier
from bench.results import read_json, write_json

LATEST = "LATEST.json"
MANIFEST = "MANIFEST.json"  # written last into a checkpoint: its files, sizes and (small files) hashes
HASH_BELOW = 64 << 20  # files smaller than this are hashed too (client files, small model states)
MODEL_STATES = "mp_rank_00_model_states.pt"  # DeepSpeed's module weights (ZeRO 0-2; ZeRO-3 writes one per rank)


def client_file(rank: int) -> str:
    return f"client_rank{rank}.pt"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    """List every file of a checkpoint folder with its size (and hash, when small) in MANIFEST.json."""
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        size = f.stat().st_size
        files[str(f.relative_to(folder))] = {"size": size, **({"sha256": _sha256(f)} if size < HASH_BELOW else {})}
    write_json(folder / MANIFEST, {"files": files})


def damage(folder: Path) -> str | None:
    """What is wrong with a checkpoint folder against its manifest, or None when it is intact. A folder
    without a manifest (written before manifests existed) counts as intact when its files are there."""
    if not (folder / MANIFEST).is_file():
        return None if (folder / client_file(0)).is_file() else f"no {MANIFEST} and no {client_file(0)}"
    try:
        files = read_json(folder / MANIFEST)["files"]
    except (json.JSONDecodeError, KeyError, OSError) as e:
        return f"{MANIFEST} unreadable ({e})"
    for name, want in files.items():
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        size = f.stat().st_size
        if size != want["size"]:
            return f"{name} has {size:,} bytes, {want['size']:,} when written"
        if "sha256" in want and _sha256(f) != want["sha256"]:
            return f"{name} differs from what was written (sha256)"
    return None


class Checkpoints:
    def __init__(self, root: Path, keep: int, rank: int, log=None):
        self.root, self.keep, self.rank, self.log = root, keep, rank, log

    def latest(self) -> dict[str, Any] | None:
        """{"tag": ..., "meta": {...}} of the newest intact checkpoint, or None (damaged ones are logged)."""
        return read_latest(self.root, self.log)

    def save(self, engine, tag: str, meta: dict[str, Any]) -> None:
        """Write checkpoint `tag`; a write that fails (a full disk, a quota) raises an error naming the folder,
        the space left there and the newest intact checkpoint, which stays as it was."""
        try:
            self._save(engine, tag, meta)
        except OSError as e:
            kept = read_latest(self.root)
            raise OSError(e.errno, f"checkpoint {tag} could not be written under {self.root} ({e.strerror or e}; "
                                   f"{_free_space(self.root)} free there); the newest intact checkpoint is "
                                   f"{kept['tag'] if kept else 'none'}, and a run started again resumes from it") from e

    def _save(self, engine, tag: str, meta: dict[str, Any]) -> None:
        tmp = f"{tag}.tmp"
        if self.rank == 0 and (self.root / tmp).exists():
            shutil.rmtree(self.root / tmp)  # left by a run killed while saving
        barrier()
        # frozen parameters (the X-encoder, a frozen Y-encoder, the LM's token table) are rebuilt from the config,
        # which the run's parity hashes check: a tiny run's checkpoint is its trained weights, not 100 MB of copies
        engine.save_checkpoint(str(self.root), tag=tmp, save_latest=False,
                               exclude_frozen_parameters=engine.zero_optimization_stage() < 3)
        torch.save({"rng": torch.get_rng_state(), "meta": meta}, self.root / tmp / client_file(self.rank))
        barrier()
        if self.rank == 0:
            write_manifest(self.root / tmp)  # last: a folder that matches it was written whole
            if (self.root / tag).exists():
                shutil.rmtree(self.root / tag)
            (self.root / tmp).rename(self.root / tag)
            write_json(self.root / LATEST, {"tag": tag, "meta": meta})
            self._prune(tag)
        barrier()

    def _prune(self, newest: str) -> None:
        tags = sorted((p for p in self.root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
                      key=lambda p: p.stat().st_mtime)
        for old in [p for p in tags if p.name != newest][: max(0, len(tags) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)

    def load(self, engine, tag: str, module_only: bool = False) -> dict[str, Any]:
        """Restore engine state (or only the module's weights) and this rank's RNG; return the meta."""
        if engine.zero_optimization_stage() < 3:
            check_fits(engine.module, module_keys(self.root / tag), f"checkpoint {self.root / tag}")
        engine.load_checkpoint(str(self.root), tag=tag, load_module_only=module_only, load_module_strict=False,
                               load_optimizer_states=not module_only, load_lr_scheduler_states=not module_only)
        client = torch.load(self.root / tag / client_file(self.rank), weights_only=True)
        if not module_only:
            torch.set_rng_state(client["rng"])
        return client["meta"]


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**30:.1f} GiB"
    except OSError:
        return "unknown space"


def read_latest(root: Path, log=None, verify: bool = True) -> dict[str, Any] | None:
    """{"tag": ..., "meta": {...}} of the newest intact checkpoint under root, or None. LATEST.json names the
    newest; when it is unreadable, or its checkpoint is damaged, the other checkpoint folders are tried,
    newest first (tags sort by stage and position), and each damaged one is logged with its path.
    verify=False trusts the pointer (a quick look at a run's position, as bench.sweep.plan --status takes)."""
    pointer = root / LATEST
    named = None
    if pointer.is_file():
        try:
            named = read_json(pointer)
        except (json.JSONDecodeError, OSError) as e:
            _say(log, f"checkpoint pointer {pointer} is unreadable ({e}); looking for the newest intact checkpoint")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
                     key=lambda p: p.name, reverse=True) if root.is_dir() else []
    if named and (root / named.get("tag", "")).is_dir():  # the pointer's first (it may name an older tag)
        folders.sort(key=lambda p: p.name != named["tag"])
    for folder in folders:
        problem = damage(folder) if verify else None
        if problem:
            _say(log, f"checkpoint {folder} is damaged: {problem}; passing over it")
            continue
        if named and folder.name == named.get("tag"):
            return named
        try:
            return {"tag": folder.name, "meta": checkpoint_meta(folder)}
        except Exception as e:  # an unreadable client file in a folder without a manifest
            _say(log, f"checkpoint {folder} is damaged: {client_file(0)} unreadable ({e}); passing over it")
    return None


def _say(log, message: str) -> None:
    if log:
        log(message)


def checkpoint_meta(folder: Path) -> dict[str, Any]:
    """The run position a checkpoint folder was saved at (stage, samples_seen, ...)."""
    return torch.load(folder / client_file(0), weights_only=True)["meta"]


def module_keys(folder: Path) -> set[str]:
    return set(torch.load(folder / MODEL_STATES, map_location="cpu", weights_only=True)["module"])


def check_fits(model: torch.nn.Module, saved: set[str], where: str) -> None:
    """A checkpoint's module states fit the model: every key the model has, but frozen parameters (rebuilt from
    the config, not saved), and nothing else; raises ValueError naming what does not fit."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    wanted = set(model.state_dict())
    missing = sorted(wanted - saved - frozen)
    unexpected = sorted(saved - wanted)
    if missing or unexpected:
        raise ValueError(f"{where} does not fit the model its config builds (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """A checkpoint's weights (model_state) into the model its config built: the frozen parameters it does not
    hold are the ones the config built."""
    check_fits(model, set(state), where)
    model.load_state_dict(state, strict=False)


def model_state(folder: Path) -> dict[str, torch.Tensor]:
    """The whole model's weights from a checkpoint folder, in fp32, whatever its ZeRO stage: the module
    states DeepSpeed keeps whole (ZeRO 0), or the fp32 master weights merged from every rank's optimizer
    partitions (ZeRO 1-3: DeepSpeed's zero_to_fp32). Frozen parameters are not in a checkpoint (but those
    written before December 2026): the config rebuilds them (load_weights)."""
    if not any(f.name.endswith("_optim_states.pt") and "zero" in f.name for f in folder.iterdir()):
        state = torch.load(folder / MODEL_STATES, map_location="cpu", weights_only=True)["module"]
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    # lazy: DeepSpeed takes seconds to import, and bench.sweep.plan --status reads checkpoints through this module
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    merged = get_fp32_state_dict_from_zero_checkpoint(str(folder.parent), tag=folder.name)
    return {k: v.float() if v.is_floating_point() else v for k, v in merged.items()}


def is_checkpoint(folder: Path) -> bool:
    """A DeepSpeed checkpoint folder: ZeRO 0-2's model states, or ZeRO-3's per-rank ones."""
    return (folder / MODEL_STATES).is_file() or any(folder.glob("zero_pp_rank_*_model_states.pt"))
