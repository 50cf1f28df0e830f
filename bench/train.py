"""One run: `python -m bench.train CONFIG [section.key=value ...]` (also the console script vljepa-train).

The code lives in bench.run.train; this module keeps `python -m bench.train` working.
"""

import sys

from bench.run.train import main

if __name__ == "__main__":
    sys.exit(main())
