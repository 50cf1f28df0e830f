"""Launch a sweep: `python -m bench.sweep FILE` (also the console script vljepa-sweep).

The code lives in bench.sweep.plan; this module keeps `python -m bench.sweep` working.
"""

import sys

from bench.sweep.plan import main

if __name__ == "__main__":
    sys.exit(main())
