"""Evaluation sets: what a task evaluates on, whatever it comes from (bench/eval/sets/kinds.py).

Two providers build them: the shapes world (shapes.py) and datasets on disk in the formats the field
ships (disk.py, documented in docs/data.md); registry.py maps the names an experiment uses to folders.
"""
