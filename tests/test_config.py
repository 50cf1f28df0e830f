"""The config layer: layering, overrides, every error path, run_id stability."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.config import REPO_ROOT, load_run_config
from bench.configlib import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_then_file_then_overrides(tmp_path):
    f = write(tmp_path / "run.yaml", """
        seed: 3
        train: {lr: 0.002, global_batch: 32, micro_batch: 16, budget: {samples: 320}}
    """)
    cfg = load_run_config(f, ["train.lr=5e-4", "model.loss.name=cosine"])
    assert cfg.seed == 3
    assert cfg.train.lr == pytest.approx(5e-4)  # the command line wins over the file
    assert cfg.train.global_batch == 32
    assert cfg.train.weight_decay == pytest.approx(0.01)  # a built-in default
    assert cfg.model.loss.name == "cosine"


def test_base_chain_of_two(tmp_path):
    write(tmp_path / "a.yaml", "seed: 1\ntrain: {lr: 0.1, weight_decay: 0.5}\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.yaml", "base: ../a.yaml\ntrain: {lr: 0.2}\n")
    f = write(tmp_path / "c.yaml", "base: sub/b.yaml\ntrain: {weight_decay: 0.3}\n")
    cfg = load_run_config(f)
    assert (cfg.seed, cfg.train.lr, cfg.train.weight_decay) == (1, 0.2, 0.3)


def test_several_bases_apply_in_order(tmp_path):
    write(tmp_path / "a.yaml", "seed: 1\n")
    write(tmp_path / "b.yaml", "seed: 2\ntrain: {lr: 0.5}\n")
    cfg = load_run_config(write(tmp_path / "c.yaml", "base: [a.yaml, b.yaml]\n"))
    assert (cfg.seed, cfg.train.lr) == (2, 0.5)


def test_base_cycle_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_run_config(tmp_path / "a.yaml")


def test_misspelt_key_names_file_key_and_suggestion(tmp_path):
    f = write(tmp_path / "bad.yaml", "train:\n  micro_bach: 8\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(f)
    msg = str(e.value)
    assert str(f) in msg and "train.micro_bach" in msg and "did you mean 'train.micro_batch'" in msg


def test_wrong_type_names_value_and_expectation(tmp_path):
    f = write(tmp_path / "bad.yaml", "train: {global_batch: sixty-four}\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(f)
    msg = str(e.value)
    assert str(f) in msg and "train.global_batch" in msg and "'sixty-four'" in msg and "expected int" in msg


def test_out_of_range_value(tmp_path):
    with pytest.raises(ConfigError, match=r"command line: key 'train.zero_stage' has value 4; expected a value <= 3"):
        load_run_config(None, ["train.zero_stage=4"])



def test_a_bad_list_element_names_where_the_list_came_from():
    with pytest.raises(ConfigError, match=r"command line: key 'eval.caption_metrics\[1\]' has value 'SPICE'.*"
                                          r"one of 'CIDEr', 'BLEU-4', 'METEOR', 'ROUGE-L'"):
        load_run_config("base/tiny.yaml", ["eval.caption_metrics=[CIDEr, SPICE]"])

def test_bad_choice_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"model.loss.name.*did you mean 'infonce'"):
        load_run_config(None, ["model.loss.name=infonse"])


def test_bool_is_not_an_int_and_list_items_are_checked():
    with pytest.raises(ConfigError, match="train.global_batch"):
        load_run_config(None, ["train.global_batch=true"])
    with pytest.raises(ConfigError, match=r"eval.grid\[1\]"):
        load_run_config(None, ["eval.grid=[100, x]"])


def test_cross_field_rule_names_the_sources(tmp_path):
    f = write(tmp_path / "run.yaml", "train: {global_batch: 64, micro_batch: 64}\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(f, ["train.budget.samples=1000"])
    msg = str(e.value)
    assert "command line" in msg and "budget.samples=1000" in msg and "960 and 1024" in msg


def test_malformed_inputs(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(write(tmp_path / "x.yaml", "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_run_config(write(tmp_path / "y.yaml", "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="section.key=value"):
        load_run_config(None, ["train.lr"])


def test_run_id_ignores_key_order_and_launch_settings(tmp_path):
    a = write(tmp_path / "a.yaml", "seed: 1\ntrain: {lr: 0.002, weight_decay: 0.1}\nlaunch: {partition: gpu}\n")
    b = write(tmp_path / "b.yaml", "train: {weight_decay: 0.1, lr: 2.0e-3}\nseed: 1\n")
    ida, idb = load_run_config(a).run_id, load_run_config(b).run_id
    assert ida == idb
    assert load_run_config(b, ["launch.time_min=999", "launch.partition=other", "name=x"]).run_id == idb
    assert load_run_config(b, ["train.lr=0.003"]).run_id != idb
    assert load_run_config(b, ["seed=2"]).run_id != idb
    assert load_run_config(b, ["model.lm.backbone.arch.hidden_size=96"]).run_id != idb


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_run_config("base/tiny.yaml", ["train.lr=3e-4"])
    again = load_run_config(write(tmp_path / "resolved.yaml", cfg.to_yaml()))
    assert again == cfg and again.run_id == cfg.run_id


def test_both_presets_resolve():
    tiny = load_run_config("base/tiny.yaml")
    paper = load_run_config("base/paper.yaml")
    assert tiny.model.embed_dim == 256 and paper.model.embed_dim == 1536
    assert paper.model.y_encoder.lr_multiplier == pytest.approx(0.05)


def test_cli_prints_config_and_run_id():
    out = subprocess.run([sys.executable, "-m", "bench.config", "experiments/base/tiny.yaml"],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert "embed_dim: 256" in out and "# run_id: " in out
    bad = subprocess.run([sys.executable, "-m", "bench.config", "base/tiny.yaml", "train.lrr=1"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'train.lr'" in bad.stderr


def test_error_in_a_base_file_names_that_file(tmp_path):
    write(tmp_path / "base.yaml", "train: {lr: fast}\n")
    f = write(tmp_path / "run.yaml", "base: base.yaml\nseed: 2\n")
    with pytest.raises(ConfigError) as e:
        load_run_config(f)
    assert "base.yaml: key 'train.lr'" in str(e.value) and "run.yaml" not in str(e.value)


def test_an_empty_config_file_is_an_error(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing but a comment\n")
    with pytest.raises(ConfigError, match=r"empty.yaml: the file is empty"):
        load_run_config(tmp_path / "empty.yaml")


def test_run_records_see_untracked_code_as_a_dirty_tree(tmp_path):
    import subprocess

    from bench.run.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "a.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "notes.txt").write_text("outside the code\n")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "bench" / "new_model.py").write_text("y = 2\n")  # an untracked module a run may import
    assert git_commit(tmp_path).endswith("-dirty")


def test_run_command_takes_a_results_store(capsys):
    from bench.configcli import parse_config_command

    cfg, _ = parse_config_command("prog", "doc", ["base/tiny.yaml", "--results", "/scratch/me/results", "train.lr=3e-4"])
    assert cfg.output_dir == "/scratch/me/results/runs" and cfg.train.lr == 3e-4
    assert parse_config_command("prog", "doc", ["base/tiny.yaml", "--results=/x"])[0].output_dir == "/x/runs"
    with pytest.raises(SystemExit) as stop:
        parse_config_command("prog", "doc", ["base/tiny.yaml", "--results"])
    assert stop.value.code == 2


def test_config_commands_list_every_key_and_end_a_bad_value_in_one_line(capsys):
    """--help lists each config key with its default and its help; a wrong value is one line, not a traceback."""
    from bench.configcli import parse_config_command

    with pytest.raises(SystemExit) as stop:
        parse_config_command("python -m bench.train", "One run.", ["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    for line in ("  train.lr = ", "  eval.tasks = [\"classification\", \"retrieval\", \"vqa\"]",
                 "  model.lm.backbone.pretrained = ", "  data.shapes.frames = ", "# sample counts to evaluate at"):
        assert line in out, line
    with pytest.raises(SystemExit) as stop:
        parse_config_command("python -m bench.train", "One run.", ["base/tiny.yaml", "train.lr=fast"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "'train.lr'" in err
