"""Where the time goes: `python -m bench.perf [--presets ...]` (also the console script vljepa-perf).

The code lives in bench.tools.perf; this module keeps `python -m bench.perf` working.
"""

import sys

from bench.tools.perf import main

if __name__ == "__main__":
    sys.exit(main())
