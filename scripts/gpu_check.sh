#!/usr/bin/env bash
# Re-measure the paper preset on one GPU in under 9 minutes (docs/performance.md): bench.perf of both twins,
# their training step with each speed-up, and a 200-step run of each that evaluates every task from files.
#   bash scripts/gpu_check.sh                          # on a machine with an NVIDIA GPU
#   bash scripts/gpu_check.sh --dry-run                # the plan: each step's command and budget
#   bash scripts/gpu_check.sh --cpu-smoke --out DIR    # the same steps on paper_micro, on the CPU, in minutes
# Other arguments go to python -m bench.tools.gpu_check (--out DIR, --work DIR, --only NAME ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
if [ ! -x "$PY" ]; then
    echo "error: $PY not found: run bash scripts/setup.sh first (or set VENV to the virtual environment)" >&2
    exit 2
fi

smoke=0 dry=0
for arg in "$@"; do
    case "$arg" in
        --cpu-smoke) smoke=1 ;;
        --dry-run) dry=1 ;;
    esac
done

# random weights from each backbone's `arch`, tokens from the built-in tokenizer: nothing is downloaded
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# NCCL (the GPU's process group): say what fails, and fail a broken collective instead of waiting on it
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}" TORCH_NCCL_ASYNC_ERROR_HANDLING="${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}"

if [ "$smoke" = 1 ]; then
    export CUDA_VISIBLE_DEVICES=""  # the CPU path (gloo, fp32), also on a machine with a GPU
elif [ "$dry" = 0 ]; then
    if ! command -v nvidia-smi >/dev/null; then
        echo "error: nvidia-smi not found: this machine shows no NVIDIA GPU. Run the same steps on the CPU with" \
             "bash scripts/gpu_check.sh --cpu-smoke, or print the plan with --dry-run" >&2
        exit 2
    fi
    if ! gpus=$(nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader); then
        echo "error: nvidia-smi could not query the GPU (driver not loaded?); see its message above" >&2
        exit 2
    fi
    echo "GPUs (index, name, memory used, total):"
    echo "$gpus"
    if [ -z "${CUDA_VISIBLE_DEVICES:-}" ] && [ "$(echo "$gpus" | wc -l)" -gt 1 ]; then
        export CUDA_VISIBLE_DEVICES=0  # one GPU: the budgets are sized for one
        echo "several GPUs: the check uses GPU 0 (set CUDA_VISIBLE_DEVICES to choose another)"
    fi
fi

exec "$PY" -m bench.tools.gpu_check "$@"
