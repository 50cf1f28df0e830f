"""Parameter accounting of a run config's model, per component (built on the meta device: no memory,
no weights, no download, so the paper preset can be inspected on a laptop).

    python -m bench.tools.params experiments/base/paper.yaml [overrides]
"""

from __future__ import annotations

import sys

from bench.configcli import parse_config_command
from bench.run.build import build_model


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
    cfg, _ = parse_config_command("python -m bench.tools.params", __doc__, argv)
    try:
        model = build_model(cfg, meta=True)
    except KeyError as e:  # an unregistered model.name: one line, with the registered names
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    print(f"{cfg.name}: model {cfg.model.name}\n")
    print(parameter_table(model.parameter_counts()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
