"""Commands around runs: evaluate a run, checkpoint or export on demand (evaluate.py), export a run as a
portable folder (export.py), write the shapes world as datasets on disk (export_world.py), where the time
goes (perf.py), parameter counts (params.py), linear probes of the frozen features (probe.py)."""
