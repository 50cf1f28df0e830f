"""A run as a portable folder: `python -m bench.export RUN --out DIR` (also the console script vljepa-export).

The code lives in bench.tools.export; this module keeps `python -m bench.export` working.
"""

import sys

from bench.tools.export import load_export, main  # noqa: F401 (load_export: the old import path)

if __name__ == "__main__":
    sys.exit(main())
