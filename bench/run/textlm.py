"""The tiny LM both twins start from: a random Llama pretrained on the training data's own text.

In the paper both twins are cut from the same pretrained Llama-3.2-1B: VL-JEPA's predictor is its last
layers, the VLM is all of it. The tiny preset has no pretrained LM of its vocabulary, so
`model.lm.text_pretraining` makes one: a causal-LM pretraining of the random backbone (its `arch` and
`init_seed`) on the text of training samples of both stages (captions; queries with their answers), with
no video. It runs once per machine and is cached like the feature caches, under
`<cache>/lms/<key>/` (save_pretrained weights and `pretraining.json`, the recipe and its losses), the key
hashing the architecture, the tokenizer's vocabulary, the data's text settings and the recipe. Runs then
load it through `backbone.pretrained`, the path the paper preset takes with a hub id.

    python -m bench.run.textlm experiments/base/tiny.yaml model.lm.text_pretraining.samples=64000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from bench.build_once import BuildOnce
from bench.cache import cache_dir, content_key
from bench.config import load_run_config
from bench.configlib import to_dict
from bench.data.config import DataConfig
from bench.data.shapes import ShapesWorld, TrainSamples
from bench.data.sources import source_of
from bench.dist import barrier
from bench.results import write_json
from bench.run.resolve import resolve_model_config
from models.config import LMConfig
from models.encoders import load_backbone, load_tokenizer, weight_hash

VERSION = "textlm/1"
RECORD = "pretraining.json"
VAL_TEXTS = 1000


def corpus(data: DataConfig, n: int, seed: int) -> list[str]:
    """n training texts, alternating the two stages' samples: a caption, then an SFT query with its answer.
    Drawn from the train split with the recipe's seed, so every run of every seed starts from one LM."""
    world = source_of(data).world(data)
    if world is None:
        raise ValueError(f"model.lm.text_pretraining reads the shapes world's text; data.source is {data.source!r}")
    stages = [TrainSamples(dataclasses.replace(data, stage=stage), seed, world) for stage in ("pretrain", "sft")]
    texts = []
    for i in range(n):
        s = stages[i % 2].describe(i // 2)
        texts.append(f"{s['query']} {s['target']}".strip())
    return texts


def held_out_texts(data: DataConfig, n: int = VAL_TEXTS) -> list[str]:
    """The canonical captions of validation clips: scenes the corpus never describes."""
    world = ShapesWorld(data.shapes)
    return [world.references("val", i)[0] for i in range(min(n, world.size("val")))]


def cache_key(lm: LMConfig, data: DataConfig, vocab: dict[str, int]) -> str:
    text = {"shapes": to_dict(data.shapes), "sft_mix": data.sft_mix}
    return content_key(VERSION, lm.backbone.arch, lm.backbone.init_seed, sorted(vocab.items()), text,
                to_dict(lm.text_pretraining))


def _batches(tokenizer, texts: list[str], batch: int, max_tokens: int):
    for s in range(0, len(texts), batch):
        tok = tokenizer([t + tokenizer.eos_token for t in texts[s:s + batch]], padding=True, truncation=True,
                        max_length=max_tokens, padding_side="right", add_special_tokens=False, return_tensors="pt")
        labels = tok["input_ids"].masked_fill(tok["attention_mask"] == 0, -100)
        yield tok["input_ids"], tok["attention_mask"], labels


@torch.no_grad()
def mean_loss(model, tokenizer, texts: list[str], max_tokens: int) -> float:
    """Token-weighted cross-entropy (nats per predicted token) over texts."""
    model.eval()
    total, count = 0.0, 0
    for ids, mask, labels in _batches(tokenizer, texts, 256, max_tokens):
        n = int((labels[:, 1:] != -100).sum())
        total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
        count += n
    return total / max(count, 1)


def pretrain(lm: LMConfig, data: DataConfig, tokenizer, log=print) -> tuple[Any, dict[str, Any]]:
    """The random LM of lm.backbone, trained for one pass over lm.text_pretraining.samples texts."""
    rec = lm.text_pretraining
    model = load_backbone(lm.backbone, 0, causal_lm=True, vocab_size=len(tokenizer))
    t0 = time.perf_counter()
    texts = corpus(data, rec.samples, rec.seed)
    val = held_out_texts(data)
    max_tokens = lm.max_query_tokens + lm.max_target_tokens
    before = mean_loss(model, tokenizer, val, max_tokens)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": rec.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=rec.lr, betas=(0.9, 0.95))
    steps = math.ceil(len(texts) / rec.batch)
    warm = max(1, round(rec.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min((i + 1) / warm, 0.5 * (1 + math.cos(
        math.pi * min(1.0, max(0, i + 1 - warm) / max(1, steps - warm))))))
    losses = []
    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout, if the architecture has any
        torch.manual_seed(rec.seed)
        for step, (ids, mask, labels) in enumerate(_batches(tokenizer, texts, rec.batch, max_tokens)):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if log and (step + 1) % max(1, steps // 10) == 0:
                rate = (step + 1) * rec.batch / (time.perf_counter() - t0)
                log(f"text pretraining of the LM: {(step + 1) * rec.batch:,}/{len(texts):,} texts, loss "
                    f"{sum(losses[-20:]) / len(losses[-20:]):.3f} ({rate:,.0f} texts/s, "
                    f"{(len(texts) - (step + 1) * rec.batch) / rate / 60:.1f} min left)")
    after = mean_loss(model, tokenizer, val, max_tokens)
    model.eval()
    info = {"version": VERSION, "recipe": to_dict(rec), "texts": len(texts), "steps": steps,
            "train_loss_first": losses[0], "train_loss_last_100": sum(losses[-100:]) / len(losses[-100:]),
            "held_out_loss_before": before, "held_out_loss_after": after, "held_out_texts": len(val),
            "seconds": round(time.perf_counter() - t0, 1), "weight_hash": weight_hash(model),
            "threads": torch.get_num_threads()}
    return model, info


def ensure(lm: LMConfig, data: DataConfig, cache_root: Path, rank: int = 0, log=print) -> Path:
    """The folder of the text-pretrained LM of this config, built by rank 0 if absent (the others wait).
    A folder appears whole or not at all: built under a temporary name, then renamed; when two runs
    build it at once the first rename wins and the other run loads the winner's weights."""
    tokenizer = load_tokenizer(lm.tokenizer, "")
    folder = cache_root / "lms" / cache_key(lm, data, tokenizer.get_vocab())
    done = (folder / RECORD).is_file
    if not done() and rank == 0:
        with BuildOnce(folder, done, "the text-pretrained LM", log) as build:
            if build:

                def said(message: str) -> None:  # the pretraining's progress, for jobs waiting on it too
                    build.progress(message)
                    if log:
                        log(message)

                _build_lm(lm, data, tokenizer, folder, said)
    barrier()
    return folder


def _build_lm(lm: LMConfig, data: DataConfig, tokenizer, folder: Path, log) -> None:
    if log:
        log(f"pretraining the LM on the data's text ({lm.text_pretraining.samples:,} texts) -> {folder}")
    model, info = pretrain(lm, data, tokenizer, log)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    write_json(tmp / RECORD, {"key": folder.name, **info})
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process put it there first (a build lock taken over from a live builder)
        shutil.rmtree(tmp, ignore_errors=True)
    if log:
        log(f"text pretraining done: held-out caption loss {info['held_out_loss_before']:.2f} -> "
            f"{info['held_out_loss_after']:.2f} nats/token in {info['seconds']:.0f} s")


def with_pretrained_lm(lm: LMConfig, data: DataConfig, rank: int = 0, log=print) -> LMConfig:
    """lm with its backbone loaded from the text-pretrained folder (unchanged when the recipe is off)."""
    if not lm.text_pretraining.samples:
        return lm
    folder = ensure(lm, data, cache_dir(), rank, log)
    return dataclasses.replace(lm, backbone=dataclasses.replace(lm.backbone, pretrained=str(folder)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run.textlm", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="a run config (experiments/...)")
    ap.add_argument("overrides", nargs="*", help="key=value")
    args = ap.parse_args(argv)
    cfg = load_run_config(args.config, args.overrides)
    if not cfg.model.lm.text_pretraining.samples:
        ap.error("model.lm.text_pretraining.samples is 0: nothing to pretrain (set it, e.g. =64000)")
    lm = resolve_model_config(cfg.model).lm
    folder = with_pretrained_lm(lm, cfg.data).backbone.pretrained
    print(json.dumps(json.loads((Path(folder) / RECORD).read_text()), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
