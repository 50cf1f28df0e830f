"""The suite's machinery, by stage; each imports only the ones below it (pyproject.toml's import contracts):

    bench/tools/    commands around runs: evaluate on demand, export, perf, params, probe, export_world
    bench/sweep/    a sweep of matched runs: plan (expand, validate, parity, submit), config, status, launch
    bench/run/      one run: train (the Run and its RunState), step, engine, checkpoint, progress, liveness,
                    trackers, build (model preparation), textlm (the tiny LM's pretraining), flops, speedups
    bench/eval/     evaluation: tasks/ (the one task registry), sets/ (eval sets: kinds, shapes, disk, hf, media,
                    resolve)
    bench/cache.py  caches of what the frozen encoders compute, shared by every run on a machine
    bench/configcli.py the command line of a run config (CONFIG [key=value ...] --results; --help lists the keys)
    bench/config.py the typed run config (bench/configlib.py: YAML and overrides -> dataclasses), bench/dist.py
    bench/data/     where samples come from: sources (one object per data.source), the shapes world,
                    datasets on disk (datasets.py reads dataset.yaml), convert/ (benchmark releases -> dataset
                    folders), manifests, shards, video, the loader
    bench/results.py the results store's layout, written atomically

`python -m bench.sweep|train|eval|export|perf` are the main commands (also vljepa-sweep, vljepa-train, ...).
"""
