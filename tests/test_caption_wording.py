"""Captions scored on facts, not wording: canonical_wording maps any paraphrase of the shapes world onto the
canonical caption's words without changing a fact, and the analysis's CIDEr on recorded captions equals the
evaluation's own (pycocoevalcap through the PTB tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.captions import cider, stated_share
from bench.config import load_run_config
from bench.data.shapes import ShapesWorld
from bench.data.text import canonical_wording, caption, paraphrases, read_caption
from bench.results import read_json, read_jsonl

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example" / "runs"


def _world():
    return ShapesWorld(load_run_config("base/tiny.yaml", []).data.shapes)


def test_every_paraphrase_keeps_its_facts_and_a_complete_one_reads_as_the_canonical_caption():
    world, rng = _world(), np.random.default_rng(0)
    complete = 0
    for i in range(150):
        scene = world.scene("val", i)
        canonical = caption(scene)
        assert canonical_wording(canonical) == canonical
        for p in paraphrases(scene, 12, rng)[1:]:
            c = canonical_wording(p)
            assert read_caption(c) == read_caption(p), p
            assert canonical_wording(c) == c  # idempotent
            if read_caption(p)["size"] != "none" and " object" not in p:  # states every fact the canonical one does
                assert c == canonical, p
                complete += 1
    assert complete > 500


def test_a_caption_missing_a_fact_stays_missing_it():
    assert canonical_wording("there is an emerald wedge that sinks") == "a green triangle moves down"
    assert canonical_wording("we see a huge violet object as it twirls") == "a large purple object rotates"


RECORDED = "52768856eef7"  # comparison (a), VL-JEPA seed 0: its captions at 48k are committed with its records


def test_cider_as_written_equals_the_recorded_cider():
    run = EXAMPLE / RECORDED
    path = run / "predictions" / f"{48_000:012d}" / "captioning__shapes.jsonl"
    (record,) = [r for r in read_jsonl(run / "evals.jsonl") if r.get("task") == "captioning"
                 and r.get("metric") == "CIDEr" and r.get("samples_seen") == 48_000]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert cider(rows) == pytest.approx(record["value"], abs=0.05), read_json(run / "run.json")["run_id"]


def test_canonical_wording_scores_a_paraphrase_with_the_same_facts_as_the_canonical_caption():
    world, rng = _world(), np.random.default_rng(1)
    paraphrased, canonical = [], []
    for i in range(40):
        scene = world.scene("val", i)
        refs = paraphrases(scene, 5, rng)
        full = [p for p in paraphrases(scene, 30, rng)[1:] if read_caption(p)["size"] != "none" and " object" not in p]
        paraphrased.append({"prediction": full[0], "references": refs})
        canonical.append({"prediction": refs[0], "references": refs})
    assert cider(paraphrased) < cider(canonical) - 10  # as written, other synonyms cost
    assert cider(paraphrased, wording="canonical wording") == pytest.approx(cider(canonical, wording="canonical wording"))


def test_stated_share_counts_captions_that_state_a_fact_the_clip_has():
    refs = ["a large red circle moves left next to a blue square then the light goes out"]
    rows = [{"prediction": "a red circle moves left", "references": refs},
            {"prediction": "a small red circle moves left beside a green box", "references": refs}]
    assert stated_share(rows) == {"size": 50.0, "distractor": 50.0, "event": 0.0}
