"""Parameter accounting of a run config's model, per component (built on the meta device: no memory,
no weights, no download, so the paper preset can be inspected on a laptop).

    python -m bench.params experiments/base/paper.yaml [overrides]
"""

from __future__ import annotations

import sys

from bench.build import build_model
from bench.config import config_from_argv


def parameter_table(counts: dict[str, dict[str, int]]) -> str:
    rows = ["| component | trainable | frozen |", "|---|---:|---:|"]
    for name, c in counts.items():
        rows.append(f"| {name} | {c['trainable']:,} | {c['frozen']:,} |")
    t = sum(c["trainable"] for c in counts.values())
    f = sum(c["frozen"] for c in counts.values())
    rows.append(f"| **total** | **{t:,}** | **{f:,}** |")
    rows.append(f"\n{(t + f) / 1e9:.3f}B parameters, {t / 1e9:.3f}B trainable")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_argv(argv, __doc__)
    if isinstance(cfg, int):
        return cfg
    model = build_model(cfg, meta=True)
    print(f"{cfg.name}: model {cfg.model.name}\n")
    print(parameter_table(model.parameter_counts()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
