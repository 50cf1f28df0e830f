"""What the frozen X-encoder's features carry: a linear probe per attribute of the clips' actor.

    python -m bench.tools.probe base/tiny.yaml [section.key=value ...] [--clips 4000]

A task whose answer the frozen features do not carry cannot be learned by either twin, whatever the
loss; this is how the tiny preset's class set was chosen (docs/results.md). The features are the ones
the runs train on (the shared feature cache, built if missing). Each attribute gets an L2-regularised
logistic regression (scikit-learn) fitted on 3/4 of the clips and scored on the rest, beside the
majority-class rate. Writes results/probe/<config hash>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.cache import world_features
from bench.config import load_run_config, run_id
from bench.data.sources import source_of
from bench.results import write_json
from models.encoders import XEncoder

ATTRIBUTES = {
    "actor shape": lambda s: s.actor.shape,
    "actor colour": lambda s: s.actor.colour,
    "actor motion": lambda s: s.actor.motion,
    "object count": lambda s: len(s.objects),
    "light event": lambda s: s.event,
}


def probe(features: np.ndarray, labels: list, train_fraction: float = 0.75, c: float = 0.05) -> dict[str, float]:
    """Held-out accuracy of a logistic regression on standardised, flattened features, and the
    accuracy of always answering the most frequent training label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = features.reshape(len(features), -1)
    y = np.asarray(labels)
    n = int(len(x) * train_fraction)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300))
    clf.fit(x[:n], y[:n])
    values, counts = np.unique(y[:n], return_counts=True)
    return {"accuracy": float(clf.score(x[n:], y[n:])), "majority": float(np.mean(y[n:] == values[counts.argmax()])),
            "classes": int(len(values)), "train": n, "test": int(len(x) - n)}


def main(argv: list[str] | None = None) -> int:
    import warnings

    import torch


    p = argparse.ArgumentParser(description="Linear probes of the frozen X-encoder's features.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--clips", type=int, default=4000, help="train-split clips to probe (the first N)")
    p.add_argument("--out", type=Path, default=Path("results/probe"))
    args = p.parse_args(argv)
    cfg = load_run_config(args.config, args.overrides)
    world = source_of(cfg.data).world(cfg.data)
    if world is None:
        raise SystemExit(f"{args.config}: data.source is {cfg.data.source!r}; probes need the shapes world's ground truth")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    encoder = XEncoder(cfg.model.x_encoder, cfg.seed).eval()
    feats = world_features(encoder, world, log=print)
    n = min(args.clips, len(feats))
    scenes = [world.scene("train", i) for i in range(n)]
    x = np.asarray(feats[:n], dtype=np.float32)  # read once for every attribute
    rows = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence notes: the held-out score is what counts
        for name, attr in ATTRIBUTES.items():
            rows[name] = probe(x, [str(attr(s)) for s in scenes])
    record = {"config": args.config, "overrides": args.overrides, "clips": n, "x_encoder_hash": encoder.weight_hash(),
              "pool": cfg.model.x_encoder.pool, "probes": rows}
    path = args.out / f"{run_id(cfg)}.json"
    write_json(path, record)
    print("| attribute | classes | linear probe | majority class |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['classes']} | {100 * r['accuracy']:.1f} | {100 * r['majority']:.1f} |")
    print(f"({n} clips: {rows[next(iter(rows))]['train']} to fit, {rows[next(iter(rows))]['test']} held out) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
