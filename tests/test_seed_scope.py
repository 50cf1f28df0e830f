"""What a seed varies (a sweep's seed_scope): by default the training draw only; with `all` also the frozen
X-encoder's, the LM's and its text pretraining's initialisation, the twins of one seed still matched."""

from __future__ import annotations

import pytest

from bench.sweep.config import SEED_SCOPE_ALL, load_sweep_config
from bench.sweep.plan import check_parity, expand
from models.encoders import XEncoder
from tests.conftest import sweep_file

BODY = """
    name: scope
    base: base/tiny.yaml
    results: RESULTS
    zip:
      - model.name: [vljepa, vlm]
        model.lm.layers: ["-2:", ":"]
    seeds: [0, 1]
    SCOPE
"""


def _runs(tmp_path, scope: str):
    sweep, path = load_sweep_config(sweep_file(tmp_path, BODY.replace("SCOPE", scope), f"{scope[:4] or 'none'}.yaml"))
    return expand(sweep, path)


def _x_hash(cfg) -> str:
    return XEncoder(cfg.model.x_encoder, cfg.seed).weight_hash()


def test_by_default_every_seed_shares_the_frozen_encoder_and_the_lms_pretraining(tmp_path):
    runs = _runs(tmp_path, "")
    assert {r.cfg.model.x_encoder.backbone.init_seed for r in runs} == {0}
    assert {r.cfg.model.lm.text_pretraining.seed for r in runs} == {0}
    assert [r.run_id for r in runs] == [r.run_id for r in _runs(tmp_path, "seed_scope: training")]
    assert len({_x_hash(r.cfg) for r in runs}) == 1


def test_seed_scope_all_draws_the_encoder_and_lm_per_seed_and_keeps_each_seeds_twins_matched(tmp_path):
    runs = _runs(tmp_path, "seed_scope: all")
    for r in runs:
        m = r.cfg.model
        assert (m.x_encoder.backbone.init_seed, m.lm.backbone.init_seed, m.lm.text_pretraining.seed,
                m.y_encoder.backbone.init_seed) == (r.seed,) * 4
    assert check_parity(runs, ["model.name", "model.lm.layers"]) == []  # the twins of a seed: equal but for the swept keys
    hashes = {(r.seed, r.cfg.model.name): _x_hash(r.cfg) for r in runs}
    assert hashes[(0, "vljepa")] == hashes[(0, "vlm")] and hashes[(1, "vljepa")] == hashes[(1, "vlm")]
    assert hashes[(0, "vljepa")] != hashes[(1, "vljepa")]  # another draw of the frozen encoder per seed
    default = {r.seed: set() for r in runs}
    for r in _runs(tmp_path, ""):
        default[r.seed].add(r.run_id)
    assert {r.run_id for r in runs if r.seed == 0} == default[0]  # seed 0 draws what every seed shares by default
    assert {r.run_id for r in runs if r.seed == 1}.isdisjoint(default[1])


def test_seed_scope_all_refuses_a_sweep_that_also_sets_one_of_its_keys(tmp_path):
    body = BODY.replace("SCOPE", f"seed_scope: all\n    set:\n      {SEED_SCOPE_ALL[0]}: 3")
    with pytest.raises(ValueError, match="seed_scope: all sets model.x_encoder.backbone.init_seed"):
        load_sweep_config(sweep_file(tmp_path, body, "clash.yaml"))
