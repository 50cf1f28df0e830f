#!/usr/bin/env bash
# Set up .venv with the test extra, then run pytest. Extra arguments go to pytest:
#   bash scripts/test.sh                        # the fast default suite
#   bash scripts/test.sh -m "slow or not slow"  # everything but Slurm tests (CI runs those too)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec "${VENV:-.venv}/bin/python" -m pytest "$@"
