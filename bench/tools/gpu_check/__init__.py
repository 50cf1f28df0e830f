"""Re-measure the paper preset on one GPU in under 9 minutes: `bash scripts/gpu_check.sh` (docs/performance.md).

    python -m bench.tools.gpu_check [--out DIR] [--work DIR] [--only NAME ...]   the plan, on one GPU
    python -m bench.tools.gpu_check --dry-run [--cpu-smoke]                      print the plan, run nothing
    python -m bench.tools.gpu_check --cpu-smoke --out DIR                        the same steps on paper_micro, CPU

The plan, in order: probe the device (the precision, the process group's backend: NCCL on a GPU); export the
shapes world at the run's clip shape (16 frames at 256 px) as dataset folders; `python -m bench.perf` of each
twin as experiments/paper/jepa_vs_vlm.yaml configures it (the VLM with all 16 LM layers); the training step
alone (bench.tools.perf's prepare and time_steps, what bench.perf reports as samples/s, MFU and peak memory)
of each twin with each speed-up knob on (train.compile, train.activation_checkpointing,
train.encode_targets=step where the model encodes targets, train.optimizer_impl=fused); a 200-step
`python -m bench.train` of the preset as written (VL-JEPA) that evaluates every task from the exported files,
each task timed (the VLM's run is an extra step, outside the 9 minutes: --only train:vlm).
The paper preset builds with random weights from each backbone's `arch` and the built-in tokenizer's ids
and a mean-pooled Y-encoder (bench.tools.perf.PAPER_OFFLINE_MODEL): nothing is downloaded.

Each step runs as a subprocess with its own time limit: its budget plus what the steps before it left unused,
so the whole never takes longer than the budgets' sum, and a step that fails or runs out of time loses only
itself. OUT/summary.json and OUT/summary.md are rewritten after every step (commit OUT to
results/example/perf/); OUT/perf/ holds bench.perf's reports, OUT/knobs/ the knob steps'. The runs, the
exported data and each step's log go to WORK, which is never committed.

The modules, by job: scales (the knobs, the GPU plan's and the CPU smoke's sizes and budgets), settings (the
folders, the twins, the steps' config overrides), steps (the plan, --only, the plan as printed), execute (running
the steps), numbers (what each step measured, and its verdict), summary (summary.json and summary.md),
device_steps (the probe and time-step commands a step runs), __main__ (the command).
"""

from bench.tools.gpu_check.scales import CPU_SMOKE, DEADLINE_S, GPU, KNOBS, Knob, Scale
from bench.tools.gpu_check.settings import Folders, twins
from bench.tools.gpu_check.steps import Step, describe, plan, select

__all__ = ["CPU_SMOKE", "DEADLINE_S", "GPU", "KNOBS", "Folders", "Knob", "Scale", "Step", "describe", "plan", "select",
           "twins"]
