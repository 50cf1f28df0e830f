"""Evaluation: the tasks (tasks/, one registry), the eval sets they read (sets/: the shapes world or dataset
folders on disk), and the rate-quality curves of selective decoding (curves.py). `python -m bench.eval RUN`
evaluates a run on demand (bench/tools/evaluate.py)."""
