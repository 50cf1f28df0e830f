#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the project into it.
#   bash scripts/setup.sh          # the project
#   bash scripts/setup.sh test     # the project and its test extra
# torch goes in first, pinned to the CPU wheel these machines keep on disk, so that no
# dependency pulls a multi-GB CUDA build; on a GPU cluster install your CUDA torch first instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
extra=${1:-}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
if [ -n "$extra" ]; then
  "$VENV/bin/python" -m pip install -q -e ".[$extra]"
else
  "$VENV/bin/python" -m pip install -q -e .
fi
# DeepSpeed JIT-builds its CPU shared-memory op the first time a process starts (~30 s, and again for a
# venv at a new path): build it now, not inside the first run (bench/buildlocks.py clears a lock a killed
# build leaves behind)
DS_ACCELERATOR=cpu "$VENV/bin/python" - <<'PY' 2>/dev/null || echo "note: DeepSpeed's CPU op was not built ahead; the first run builds it" >&2
from bench.buildlocks import clear_stale_locks
from deepspeed.accelerator import get_accelerator

clear_stale_locks()
builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
if builder is not None and builder.is_compatible():
    builder.load(verbose=False)
PY
# pycocoevalcap's PTB tokenizer and METEOR run on Java
if ! command -v java >/dev/null 2>&1; then
  echo "note: no Java found; captioning metrics need it (Debian: apt-get install -y default-jre-headless)" >&2
fi
