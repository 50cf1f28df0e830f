"""One run: data -> model -> DeepSpeed engine -> optimizer steps, evaluations on the sample grid, checkpoints
(train.py), and what it needs: the step (step.py), the engine (engine.py), checkpoints (checkpoint.py), what it
says as it goes (progress.py, liveness.py, trackers.py), the model's preparation (build.py, resolve.py,
textlm.py), FLOPs (flops.py) and speedups (speedups.py)."""
