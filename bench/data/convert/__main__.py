"""python -m bench.data.convert NAME --src RELEASE_DIR --out DATASET_DIR [--media-root DIR] [options]"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from bench.data.convert import load_all
from bench.data.convert.common import Context, Converter, ConvertError, run_converter

USAGE = "python -m bench.data.convert NAME --src RELEASE_DIR --out DATASET_DIR [--media-root DIR] [options]"


def listing(converters: dict[str, Converter]) -> str:
    width = max(map(len, converters))
    return "\n".join(f"  {n.ljust(width)}  {c.summary}" for n, c in sorted(converters.items()))


def parser_for(conv: Converter) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m bench.data.convert {conv.name}", description=conv.summary,
                                epilog=f"Release and schema: {conv.source}" if conv.source else None)
    p.add_argument("--src", type=Path, required=True, help="the release's folder (its annotation files)")
    p.add_argument("--out", type=Path, required=True, help="the dataset folder to write (docs/data.md)")
    p.add_argument("--media-root", type=Path, default=None,
                   help="where the videos/images are (default: --src); dataset.yaml points there, nothing is copied")
    p.add_argument("--missing", choices=("drop", "keep"), default="drop",
                   help="items whose media file does not exist: dropped and counted (default), or kept")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    for o in conv.options:
        p.add_argument(f"--{o.name.replace('_', '-')}", dest=o.name, default=o.default, choices=o.choices,
                       type=o.type, help=f"{o.help} (default: {o.default})")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    converters = load_all()
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {USAGE}\n\nConverters ({len(converters)}; `NAME --help` for each one's options):\n"
              f"{listing(converters)}")
        return 0 if argv else 2
    name = argv.pop(0)
    conv = converters.get(name)
    if conv is None:
        near = difflib.get_close_matches(name, converters, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        print(f"error: no converter named {name!r}.{hint} Converters:\n{listing(converters)}", file=sys.stderr)
        return 2
    args = parser_for(conv).parse_args(argv)
    ctx = Context(name, args.src, args.out, args.media_root or args.src,
                  {o.name: getattr(args, o.name) for o in conv.options}, args.missing)
    if not args.src.is_dir():
        print(f"error: --src {args.src} is not a folder", file=sys.stderr)
        return 2
    try:
        summary = run_converter(conv, ctx, force=args.force)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    written = ", ".join(f"{f}: {n}" for f, n in summary["written"].items())
    left_out = "".join(f"; {why}: {n}" for why, n in summary.get("left_out", {}).items())
    print(f"wrote {args.out} ({written}); dropped {summary['dropped_missing_media']} items whose media file is missing"
          f"{' (listed in convert.json)' if summary['dropped_missing_media'] else ''}{left_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
