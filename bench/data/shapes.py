"""The shapes world as a data set: splits of clips with references, and the training samples of
the paper's two stages (query-free captions; the query-conditioned SFT mix).

    python -m bench.data.shapes --show 8 --out results/shapes   # a contact sheet to look at
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.data.clips import CaptionClips
from bench.data.config import DataConfig, ShapesConfig
from bench.data.items import class_names, vqa_item
from bench.data.render import render
from bench.data.text import (
    CAPTION_QUERY,
    CLASSIFY_QUERY,
    COLOUR_WORDS,
    MOTION_WORDS,
    NUMBER_WORDS,
    YES_NO,
    class_name,
    paraphrases,
)
from bench.data.world import MOTIONS, SHAPES, SPLITS, Scene, held_out_combos, sample_scene


class ShapesWorld:
    """Clips, scenes and reference texts of every split, each a pure function of (world_seed, split, index)."""

    def __init__(self, cfg: ShapesConfig):
        self.cfg = cfg
        self.held_out = held_out_combos(cfg.world_seed, cfg.held_out_combos)

    def size(self, split: str) -> int:
        return {"train": self.cfg.train_size, "val": self.cfg.val_size, "test": self.cfg.test_size,
                "novel": self.cfg.novel_size}[split]

    def _rng(self, split: str, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.world_seed, SPLITS[split], index, stream])

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (a world lives as long as its run)
    def scene(self, split: str, index: int) -> Scene:
        if not 0 <= index < self.size(split):
            raise IndexError(f"{split} index {index} outside 0..{self.size(split) - 1}")
        c = self.cfg
        if split == "novel":
            return sample_scene(self._rng(split, index, 0), c.min_objects, c.max_objects, c.event_prob,
                                excluded=frozenset(), required=self.held_out)
        return sample_scene(self._rng(split, index, 0), c.min_objects, c.max_objects, c.event_prob,
                            excluded=self.held_out)

    def clip(self, split: str, index: int) -> np.ndarray:
        """(T, H, W, 3) uint8."""
        return render(self.scene(split, index), self.cfg.frames, self.cfg.size)

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (a world lives as long as its run)
    def references(self, split: str, index: int) -> tuple[str, ...]:
        """The canonical caption, then the paraphrases: every correct description of the clip."""
        return tuple(paraphrases(self.scene(split, index), self.cfg.paraphrases, self._rng(split, index, 1)))


# what a split's clips depend on: not the texts, not the other splits' sizes
_NOT_PIXELS = ("paraphrases", "fps", "train_size", "val_size", "test_size", "novel_size")


class WorldClips:
    """Every clip of one split of the world, rendered on demand."""

    def __init__(self, world: ShapesWorld, split: str):
        self.world, self.split = world, split

    def __len__(self) -> int:
        return self.world.size(self.split)

    def clip(self, i: int) -> np.ndarray:
        return self.world.clip(self.split, i)

    def identity(self) -> tuple:
        pixels = {k: v for k, v in asdict(self.world.cfg).items() if k not in _NOT_PIXELS}
        return pixels, self.split, len(self)


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, 31]).permutation(n)


class TrainSamples:
    """Global sample position k -> one training sample, the same for every model and every rank.

    The clip order is a fresh permutation of the train split each epoch (from the run's seed);
    the target text (which paraphrase; which SFT item) is drawn from (seed, k).
    """

    def __init__(self, data: DataConfig, seed: int, world: ShapesWorld | None = None):
        self.data = data
        self.seed = seed
        self.world = world or ShapesWorld(data.shapes)
        self.n = self.world.size("train")
        kinds = sorted(k for k, w in data.sft_mix.items() if w > 0)
        weights = np.array([data.sft_mix[k] for k in kinds], dtype=np.float64)
        self.kinds, self.kind_p = kinds, weights / weights.sum()
        self._order: tuple[int, np.ndarray] | None = None

    def clip_index(self, k: int) -> int:
        epoch, pos = divmod(k, self.n)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, _epoch_order(self.seed, epoch, self.n))
        return int(self._order[1][pos])

    def describe(self, k: int) -> dict:
        """Sample k without its pixels: clip index, query, target text and item kind."""
        i = self.clip_index(k)
        rng = np.random.default_rng([self.seed, k, 7])
        scene = self.world.scene("train", i)
        refs = self.world.references("train", i)
        if self.data.stage == "pretrain":
            kind, query, target = "caption", "", refs[int(rng.integers(len(refs)))]
        else:
            kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_p))]
            if kind == "caption":
                query, target = CAPTION_QUERY, refs[int(rng.integers(len(refs)))]
            elif kind == "classification":
                query, target = CLASSIFY_QUERY, class_name(scene.action(self.world.cfg.classes))
            else:
                item = vqa_item(scene, rng)
                query, target = item.question, item.candidates[item.answer]
        return {"query": query, "target": target, "index": i, "position": k, "kind": kind}

    def __getitem__(self, k: int) -> dict:
        sample = self.describe(k)
        return {"video": self.world.clip("train", sample["index"]), **sample}

    def training_clips(self) -> WorldClips:
        """Every clip the samples draw from, in the split's order (not the seed's): what statistics of the
        training data are measured on."""
        return WorldClips(self.world, "train")

    def caption_texts(self, n: int) -> list[str]:
        """The distinct reference captions of the first n training clips, sorted: what a Y-decoder learns from."""
        return sorted({r for i in range(min(n, self.n)) for r in self.world.references("train", i)})

    def caption_clips(self, n: int) -> CaptionClips:
        """The first n training clips with the caption query and all their references: what a Y-decoder
        trained on predictions sees (the same clips whose references caption_texts gives)."""
        m = min(n, self.n)
        return CaptionClips(WorldClips(self.world, "train"), [CAPTION_QUERY] * m,
                            [list(self.world.references("train", i)) for i in range(m)])

    def possible_targets(self) -> list[str]:
        """Every target text a sample of this stage can draw, shortest first: the target cache's keys."""
        texts = {r for i in range(self.n) for r in self.world.references("train", i)}
        if self.data.stage == "sft":
            texts |= set(class_names(self.world.cfg.classes)) | set(COLOUR_WORDS) | set(SHAPES) | set(NUMBER_WORDS) | set(YES_NO)
            texts |= {MOTION_WORDS[m][0] for m in MOTIONS}  # with the above: every VQA answer
        return sorted(texts, key=lambda t: (len(t.split()), t))  # by length: little padding when encoded


def contact_sheet(world: ShapesWorld, n: int, out: Path, split: str = "train", frames_shown: int = 4) -> Path:
    """A PNG of n clips, a few frames each, with the canonical caption and the paraphrases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = world.cfg.frames
    shown = np.linspace(0, T - 1, frames_shown).round().astype(int)
    fig, axes = plt.subplots(n, frames_shown + 1, figsize=(2.0 * frames_shown + 7.5, 2.0 * n),
                             gridspec_kw={"width_ratios": [1] * frames_shown + [3.8]}, squeeze=False)
    for row in range(n):
        clip, refs, scene = world.clip(split, row), world.references(split, row), world.scene(split, row)
        for col, f in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(clip[f], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {f}", fontsize=9)
        ax = axes[row, -1]
        ax.axis("off")
        label = f"class: {class_name(scene.action(world.cfg.classes))}   event: {scene.event}"
        text = "\n".join([label, *[("* " if j == 0 else "- ") + r for j, r in enumerate(refs)]])
        ax.text(0.0, 0.5, text, fontsize=8, va="center", family="monospace", wrap=True)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"shapes_{split}_{n}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Look at the shapes world.")
    p.add_argument("--show", type=int, default=8, help="clips on the contact sheet")
    p.add_argument("--out", type=Path, default=Path("results/shapes"))
    p.add_argument("--split", default="train", choices=["train", "val", "test", "novel"])
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--bench", type=int, default=0, metavar="N", help="time rendering N clips instead (one core)")
    args = p.parse_args(argv)
    world = ShapesWorld(ShapesConfig(world_seed=args.world_seed))
    if args.bench:
        import time

        scenes = [world.scene("train", i) for i in range(args.bench)]
        t = time.perf_counter()
        for s in scenes:
            render(s, world.cfg.frames, world.cfg.size)
        dt = time.perf_counter() - t
        print(f"{args.bench / dt:.0f} clips/s on one core ({world.cfg.frames}x{world.cfg.size}x{world.cfg.size})")
        return 0
    print(contact_sheet(world, args.show, args.out, args.split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
