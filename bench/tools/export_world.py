"""Write the shapes world to disk in the formats of real datasets (docs/data.md): real mp4 and PNG files.

    python -m bench.tools.export_world --out data/shapes [--config base/tiny.yaml] [--splits val] [--size 0]
        [--train 0] [section.key=value ...]

For each split a dataset folder `shapes_<split>/` serves every task (classification, retrieval,
captioning, vqa, world, hardneg, streaming) with exactly the items the world gives a run; `train/`
holds a training manifest (one line per clip and reference caption, bench/data/manifest.py); and
`datasets.yaml` is a dataset registry naming them (point $VLJEPA_DATASETS at it). Videos are H.264 in
RGB at qp 0 (lossless): a run evaluated from these files gets the same metrics as from the world. Retrieval
reads its clips as segments (`start`/`end`) of one long video, every clip one after the other, as
ActivityNet or YouCook2 annotate steps of long videos: the segment reader is held to the same bits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from bench.config import ConfigError, load_run_config
from bench.data.shapes import ShapesWorld
from bench.eval.sets.world_files import export_split, export_train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", default="base/tiny.yaml", help="the run config whose world is exported")
    p.add_argument("--splits", nargs="+", default=["val"], choices=["val", "test", "novel"])
    p.add_argument("--size", type=int, default=0, help="items per task (0: the whole split)")
    p.add_argument("--streams", type=int, help="streams for selective decoding (default: eval.streams)")
    p.add_argument("--train", type=int, default=0, metavar="N", help="train clips in the training manifest (0: all)")
    p.add_argument("--no-train", action="store_true", help="no training manifest")
    p.add_argument("overrides", nargs="*", help="section.key=value applied to the config")
    args = p.parse_args(argv)
    try:
        cfg = load_run_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    world = ShapesWorld(cfg.data.shapes)
    args.out.mkdir(parents=True, exist_ok=True)
    registry = {}
    for split in args.splits:
        folder = export_split(world, split, args.out, args.size, args.streams or cfg.eval.streams)
        registry[folder.name] = folder.name
        print(f"{folder}: every task's items of the {split} split")
    if not args.no_train:
        manifest = export_train(world, args.out, args.train)
        registry["shapes_train"] = "train"
        print(f"{manifest}: training manifest ({sum(1 for _ in manifest.open())} lines)")
    (args.out / "datasets.yaml").write_text(yaml.safe_dump({"root": ".", "datasets": registry}, sort_keys=False))
    print(f"{args.out / 'datasets.yaml'}: dataset registry (export VLJEPA_DATASETS={args.out.resolve() / 'datasets.yaml'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
