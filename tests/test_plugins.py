"""Baselines from outside the repository: a package's `vljepa_bench.models` entry point registers its models
through models.registry, loaded lazily and once; a broken plugin is one line and breaks nothing else; a name
registered twice is an error naming both sources; an installed plugin's model trains, sweeps and evaluates."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bench.config import REPO_ROOT, parse_override
from bench.results import EVALS, RUN_RECORD, read_json, read_jsonl
from models import registry
from tests.conftest import TINY_RUN


@dataclass
class FakeEntryPoint:
    """What the registry reads of an installed entry point, without installing a distribution."""

    name: str
    value: str
    dist: SimpleNamespace

    def load(self):
        return importlib.metadata.EntryPoint(self.name, self.value, registry.ENTRY_POINT_GROUP).load()


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A registry that has scanned this repository's models but no plugin yet, and `add(name, value, dist,
    source)`: a module of that source importable from tmp_path, declared by an entry point the registry finds.
    Returns the entry points listed so far and how often the registry asked for them."""
    registry.names()  # this repository's models: imported once per process, so copied into the fresh state
    before = registry._STATE
    monkeypatch.setattr(registry, "_STATE", registry._State(builders=dict(before.builders),
                                                           sources=dict(before.sources), modules_scanned=True))
    monkeypatch.syspath_prepend(str(tmp_path))
    found: list[FakeEntryPoint] = []
    asked = []
    monkeypatch.setattr(registry, "_entry_points", lambda: (asked.append(1), list(found))[1])
    modules: list[str] = []

    def add(name: str, value: str, dist: str, source: str) -> None:
        module = value.split(":")[0]
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        modules.append(module)
        found.append(FakeEntryPoint(name, value, SimpleNamespace(name=dist, version="1.0")))

    yield SimpleNamespace(add=add, asked=asked)
    for module in modules:
        sys.modules.pop(module, None)


BUILDER = """
    from models.dual_encoder import DualEncoder
    from models.registry import register

    @register({name!r})
    def build(cfg, seed=0, meta=False):
        return DualEncoder(cfg, seed, meta)
"""


def test_plugins_load_lazily_once_by_module_or_function(plugins):
    plugins.add("as_module", "plug_module", "module-dist", BUILDER.format(name="plug_a"))
    plugins.add("as_function", "plug_function:setup", "function-dist", """
        from models.registry import register

        def setup():
            register("plug_b")(lambda cfg, seed=0, meta=False: None)
    """)
    # an entry point may name the decorated builder itself: importing registers it, and it is not called
    plugins.add("as_builder", "plug_builder:build", "builder-dist", BUILDER.format(name="plug_c"))
    assert plugins.asked == [] and "plug_module" not in sys.modules  # nothing loads before a lookup
    assert {"plug_a", "plug_b", "plug_c", "dual_encoder", "vljepa", "vlm"} <= set(registry.names())
    assert registry.get("plug_c") is sys.modules["plug_builder"].build
    registry.get("plug_a"), registry.names()
    assert plugins.asked == [1] and registry.plugin_failures() == []
    assert "entry point 'as_module'" in registry._STATE.sources["plug_a"]
    assert "module-dist 1.0" in registry._STATE.sources["plug_a"]


def test_a_broken_plugin_is_one_line_and_the_other_models_stay(plugins, capsys):
    plugins.add("broken", "plug_broken", "broken-dist", """
        import a_dependency_that_is_not_installed_xyz
    """)
    plugins.add("fine", "plug_fine", "fine-dist", BUILDER.format(name="plug_fine_model"))
    assert registry.get("dual_encoder") is not None and registry.get("plug_fine_model") is not None
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    for part in ("entry point 'broken'", "broken-dist 1.0", "ModuleNotFoundError",
                 "a_dependency_that_is_not_installed_xyz"):
        assert part in err[0]
    assert len(registry.plugin_failures()) == 1
    with pytest.raises(KeyError, match="failed to load.*entry point 'broken'"):  # the lookup says why it is missing
        registry.get("plug_broken_model")
    assert capsys.readouterr().err == ""  # reported once


def test_a_name_registered_twice_is_an_error_naming_both_sources(plugins, capsys):
    plugins.add("shadow", "plug_shadow", "shadow-dist", BUILDER.format(name="dual_encoder"))
    plugins.add("first", "plug_first", "first-dist", BUILDER.format(name="plug_twice"))
    plugins.add("second", "plug_second", "second-dist", BUILDER.format(name="plug_twice"))
    assert registry.get("vljepa") is not None  # the names nobody duplicated stay usable
    names = registry.names()
    assert "dual_encoder" not in names and "plug_twice" not in names
    # a KeyError to a lookup (a sweep's validation names it like an unknown name), the same message each time
    with pytest.raises(KeyError) as e:
        registry.get("dual_encoder")
    assert "models.dual_encoder (this repository)" in str(e.value) and "entry point 'shadow'" in str(e.value)
    assert "shadow-dist 1.0" in str(e.value)
    with pytest.raises(registry.DuplicateModelError) as e:
        registry.get("plug_twice")
    assert "'first'" in str(e.value) and "first-dist" in str(e.value) and "'second'" in str(e.value)
    assert len(capsys.readouterr().err.strip().splitlines()) == 2  # each reported once, in one line
    # outside plugin loading, a second registration still raises at once (a ValueError, as before plugins)
    with pytest.raises(ValueError, match=r"'vljepa' is registered twice: by models\.vljepa \(this repository\) "
                                         r"and by module (tests\.)?test_plugins"):
        registry.register("vljepa")(lambda cfg, seed=0, meta=False: None)


# ---- an installed plugin package, end to end ----

PLUGIN_NAME = "plugin_maxpool_dual"

PLUGIN_PYPROJECT = """
    [build-system]
    requires = ["setuptools>=64"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "vljepa-maxpool-plugin"
    version = "0.1.0"
    dependencies = ["vljepa-bench"]

    [project.entry-points."vljepa_bench.models"]
    maxpool_dual = "vljepa_maxpool_plugin"

    [tool.setuptools]
    packages = ["vljepa_maxpool_plugin"]
"""

PLUGIN_MODULE = f'''
    """A dual encoder whose video embedding max-pools the visual tokens: a baseline from outside vljepa-bench."""

    from models.config import ModelConfig
    from models.dual_encoder import DualEncoder
    from models.registry import register


    class MaxPoolDualEncoder(DualEncoder):
        def encode_video(self, batch):
            tokens = self.x_encoder.tokens(batch).to(self.video_head.weight.dtype)
            return self.video_head(tokens.amax(1))


    @register({PLUGIN_NAME!r})
    def build(cfg: ModelConfig, seed: int = 0, meta: bool = False) -> MaxPoolDualEncoder:
        return MaxPoolDualEncoder(cfg, seed, meta)
'''


def _install_plugin(tmp_path: Path) -> Path:
    """Build and install the plugin package offline (this venv's setuptools, no index) into a folder of its
    own: the subprocesses see it as installed through PYTHONPATH, and the shared venv is never changed."""
    assert importlib.util.find_spec("setuptools"), "the plugin test builds with this venv's setuptools: install it"
    src = tmp_path / "plugin"
    (src / "vljepa_maxpool_plugin").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent(PLUGIN_PYPROJECT))
    (src / "vljepa_maxpool_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(src)], capture_output=True, text=True,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert list(site.glob("vljepa_maxpool_plugin-0.1.0.dist-info/entry_points.txt"))
    return site


def _sweep(tmp_path: Path) -> Path:
    body = {"name": "plugin", "base": "base/tiny.yaml", "results": str(tmp_path / "results"),
            "set": {**dict(parse_override(o) for o in TINY_RUN), "train.budget.samples": 64, "eval.grid": [64]},
            "grid": {"model.name": [PLUGIN_NAME]}, "seeds": [0]}
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _run(args: list[str], site: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, f"python -m {' '.join(args)}: rc {out.returncode}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    assert "vljepa_bench:" not in out.stderr, out.stderr  # no plugin reported as failed or duplicated
    return out


@pytest.mark.slow
def test_an_installed_plugin_trains_in_a_sweep_and_evaluates(tmp_path, capsys):
    from bench.sweep.plan import main

    sweep = _sweep(tmp_path)
    # without the package the name is unknown to the sweep's validation: the plugin is what makes it run
    assert main([str(sweep), "--dry-run"]) == 2
    assert f"model.name={PLUGIN_NAME!r} is not registered" in capsys.readouterr().err
    site = _install_plugin(tmp_path)
    _run(["bench.sweep", str(sweep), "--executor", "inline"], site)
    runs = json.loads((tmp_path / "results" / "sweeps" / "plugin.json").read_text())["runs"]
    assert len(runs) == 1
    run_dir = tmp_path / "results" / "runs" / runs[0]["run_id"]
    record = read_json(run_dir / RUN_RECORD)
    assert record["status"] == "done" and record["model"] == PLUGIN_NAME
    assert {(r["samples_seen"], r["task"]) for r in read_jsonl(run_dir / EVALS)} == {(64, "classification"), (64, "vqa")}
    _run(["bench.eval", str(run_dir), "--tasks", "classification", "--size", "16"], site)
    ondemand = [r for p in (run_dir / "ondemand").glob("*.jsonl") for r in read_jsonl(p)]
    assert ondemand and {(r["task"], r["n"]) for r in ondemand} == {("classification", 16)}  # one per metric
