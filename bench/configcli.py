"""The command line of a run config: `CONFIG [section.key=value ...] [--results DIR]`, shared by every command
that takes one (bench.train, bench.tools.params, python -m bench.config), with a --help that lists every
config key, its default and what it does.

    python -m bench.config experiments/base/tiny.yaml train.lr=3e-4     # the resolved config and its run_id
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from bench.config import ConfigError, RunConfig, load_run_config


def keys_help(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """One line per config key: `section.key = default  what it does` (from the dataclasses' own fields)."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            lines += keys_help(hints[f.name], key + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        what = f.metadata.get("help", "")
        lines.append(f"  {key} = {json.dumps(default, default=str)}" + (f"  # {what}" if what else ""))
    return lines


def config_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The argument style of every command that takes a run config: CONFIG [section.key=value ...] [--results DIR].
    Its --help ends with every config key, its default and what it does."""
    p = argparse.ArgumentParser(prog=prog, description=doc.strip(), formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="config keys (section.key=value on the command line):\n" + "\n".join(keys_help()))
    p.add_argument("config", nargs="?", help="a run config: a path, or one under experiments/ (base/tiny.yaml)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="overrides, applied last")
    p.add_argument("--results", type=Path, metavar="DIR",
                   help="the results store: the run goes to DIR/runs/<run_id> (default: results/)")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run config a config_parser's arguments name (raises ConfigError)."""
    results = [f"output_dir={args.results / 'runs'}"] if args.results else []
    return load_run_config(args.config, [*args.overrides, *results])


def parse_config_command(prog: str, doc: str, argv: list[str] | None,
                         flags: dict[str, str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    """A command's run config and arguments (flags: the command's own --name: help switches); a config error
    ends the command in one line (exit 2)."""
    p = config_parser(prog, doc)
    for name, what in (flags or {}).items():
        p.add_argument(f"--{name}", action="store_true", help=what)
    args = p.parse_intermixed_args(argv)  # overrides may come before or after the options
    if not args.config:
        p.error("name a config file, e.g. experiments/base/tiny.yaml (overrides section.key=value are optional)")
    try:
        return config_from_args(args), args
    except ConfigError as e:
        p.exit(2, f"error: {e}\n")


def main(argv: list[str] | None = None) -> int:
    # lazy: as a command, the config is checked by every feature's registered checks, which register on
    # import; as a library this module imports no feature (the modules that run configs import them)
    import bench.eval.tasks  # noqa: F401

    # lazy: the trackers' check of tracking.trackers, likewise
    import bench.run.trackers  # noqa: F401

    cfg, _ = parse_config_command("python -m bench.config", __doc__, argv)
    print(cfg.to_yaml(), end="")
    print(f"# run_id: {cfg.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
