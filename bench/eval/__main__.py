"""Evaluate a run, checkpoint or export on demand: `python -m bench.eval RUN` (also the console script vljepa-eval).

The code lives in bench.tools.evaluate; this module keeps `python -m bench.eval` working.
"""

import sys

from bench.tools.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
