"""The shapes world, its items, the shared loader and the manifest reader."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from bench.data.config import DataConfig, ManifestConfig, ShapesConfig
from bench.data.items import (
    VQA_TYPES,
    classification_items,
    hard_negatives,
    make_stream,
    retrieval_pairs,
    state_clip,
    vqa_items,
    world_items,
)
from bench.data.loader import SharedLoader, fingerprint
from bench.data.manifest import ManifestError, ManifestSamples, parse_manifest
from bench.data.shapes import ShapesWorld, TrainSamples, contact_sheet
from bench.data.text import vocabulary, word_overlap, words
from bench.data.world import COLOURS, MOTIONS, SHAPES

SMALL = ShapesConfig(train_size=300, val_size=60, test_size=60, novel_size=40)


@pytest.fixture(scope="module")
def world():
    return ShapesWorld(SMALL)


def test_world_has_the_promised_variety():
    assert len(SHAPES) >= 5 and len(COLOURS) >= 6 and len(MOTIONS) >= 8


def test_same_seed_gives_byte_identical_samples():
    a = TrainSamples(DataConfig(shapes=SMALL), seed=3)
    b = TrainSamples(DataConfig(shapes=SMALL), seed=3)
    c = TrainSamples(DataConfig(shapes=SMALL), seed=4)
    for k in (0, 17, 299, 300, 611):
        sa, sb = a[k], b[k]
        assert sa["video"].tobytes() == sb["video"].tobytes() and sa["target"] == sb["target"]
    assert [a[k]["index"] for k in range(20)] != [c[k]["index"] for k in range(20)]


def test_clip_shape_and_content(world):
    clip = world.clip("train", 0)
    assert clip.shape == (8, 64, 64, 3) and clip.dtype == np.uint8
    moving = [i for i in range(40) if world.scene("train", i).actor.motion != "still"]
    assert any(not np.array_equal(world.clip("train", i)[0], world.clip("train", i)[-1]) for i in moving)


def test_light_event_darkens_frames():
    w = ShapesWorld(ShapesConfig(event_prob=1.0, train_size=50))
    for i in range(20):
        s, clip = w.scene("train", i), w.clip("train", i).astype(float)
        first, last = clip[0].mean(), clip[-1].mean()
        assert (last < first) if s.event == "light_off" else (first < last)


def test_splits_are_disjoint_and_novel_combos_unseen(world):
    seen = {split: {world.clip(split, i).tobytes() for i in range(world.size(split))} for split in ("train", "val", "test")}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    assert len(world.held_out) == SMALL.held_out_combos
    for split in ("train", "val", "test"):
        for i in range(world.size(split)):
            assert not {(o.shape, o.colour) for o in world.scene(split, i).objects} & world.held_out
    assert all((world.scene("novel", i).actor.shape, world.scene("novel", i).actor.colour) in world.held_out
               for i in range(world.size("novel")))


def test_paraphrases_share_few_words(world):
    """Mean word-set overlap (Jaccard) between paraphrases of one clip stays under 0.35 (measured ~0.25)."""
    overlaps = []
    for i in range(200):
        refs = world.references("train", i)
        assert len(set(refs)) == len(refs) == SMALL.paraphrases
        overlaps += [word_overlap(a, b) for a, b in itertools.combinations(refs, 2)]
    assert np.mean(overlaps) < 0.35


def test_every_text_is_in_the_tokenizer_vocabulary(world):
    vocab = set(vocabulary())
    texts = [r for i in range(100) for r in world.references("train", i)]
    texts += [c for item in vqa_items(world, "val", 60) for c in (item.question, *item.candidates)]
    texts += [c for item in world_items(world, "val", 10) for c in item.candidates]
    texts += list(classification_items(world, "val", 1)[0].candidates)
    assert {w for t in texts for w in words(t)} <= vocab


def test_sft_stage_mixes_kinds_deterministically():
    data = DataConfig(stage="sft", shapes=SMALL)
    s = TrainSamples(data, seed=0)
    kinds = [s[k]["kind"] for k in range(300)]
    assert set(kinds) == {"caption", "classification", "vqa"}
    assert all(s[k]["query"] for k in range(50))
    pre = TrainSamples(DataConfig(stage="pretrain", shapes=SMALL), seed=0)
    assert all(pre[k]["query"] == "" and pre[k]["target"] in pre.world.references("train", pre[k]["index"])
               for k in range(50))


def test_items_answer_from_ground_truth(world):
    cls = classification_items(world, "val", 50)
    assert len(cls[0].candidates) >= 40 and all(0 <= it.answer < len(it.candidates) for it in cls)
    vqa = vqa_items(world, "val", 60)
    assert {it.kind for it in vqa} == set(VQA_TYPES)
    for it in vqa:
        scene = world.scene("val", it.index)
        if it.kind == "counting":
            assert it.candidates[it.answer] == ["one", "two", "three"][len(scene.objects) - 1]
        if it.kind == "existence" and it.answer == 1:  # adversarial negative: shares shape or colour
            assert any(o.shape in it.question or o.colour in it.question for o in scene.objects)
    wi = world_items(world, "val", 20)
    assert all(it.candidates[it.answer].endswith(
        {"left": "moves left"}.get(world.scene("val", it.index).actor.motion, "")) for it in wi)
    st = state_clip(world, "val", 0)
    clip = world.clip("val", 0)
    assert np.array_equal(st[0], clip[0]) and np.array_equal(st[-1], clip[-1])
    assert len(retrieval_pairs(world, "val", 10)) == 10


@pytest.mark.parametrize("classes", ["colour_motion", "shape_motion"])
def test_class_sets_label_every_clip_with_its_actor(classes):
    world = ShapesWorld(ShapesConfig(train_size=10, val_size=60, classes=classes))
    items = classification_items(world, "val", 60)
    names = items[0].candidates
    assert len(set(names)) == len(names) == (48 if classes == "colour_motion" else 47)
    for it in items:
        actor = world.scene("val", it.index).actor
        what = actor.colour if classes == "colour_motion" else actor.shape
        name = names[it.answer]
        assert name.startswith(what) and name.endswith({"left": "left", "grow": "grows"}.get(actor.motion, name[-3:]))
    sft = TrainSamples(DataConfig(stage="sft", shapes=world.cfg), seed=0)
    assert set(names) <= set(sft.possible_targets())


def test_class_names_use_only_words_of_the_captions(world):
    """A token model trained on captions alone scores class names by their likelihood: a word it never
    saw would penalise some classes more than others."""
    seen = {w for i in range(world.size("train")) for r in world.references("train", i) for w in words(r)}
    for classes in ("colour_motion", "shape_motion"):
        w = ShapesWorld(ShapesConfig(train_size=10, val_size=5, classes=classes))
        names = classification_items(w, "val", 1)[0].candidates
        assert {x for n in names for x in words(n)} <= seen, classes


def test_objects_start_near_upright(world):
    """A square turned by 45 degrees is a diamond: start orientations stay within a small tilt."""
    angles = [o.angle for i in range(200) for o in world.scene("train", i).objects]
    assert max(abs(a) for a in angles) <= 0.2


def test_hard_negatives_change_meaning_not_words(world):
    for hn in hard_negatives(world, "val", 30):
        assert hn.negative != hn.caption
        assert word_overlap(hn.caption, hn.negative) > word_overlap(hn.caption, hn.positive) - 0.2


def test_streams_have_boundaries_and_distinct_actions(world):
    s = make_stream(world, 0)
    assert len(s.references) == len(s.boundaries) + 1 >= 4
    assert s.video.shape[0] == s.segments[-1][1]
    assert all(a < b for a, b in s.segments)


def _drain(loader):
    return [k for batch in loader for k in batch["position"].tolist()]


def test_two_ranks_cover_each_global_batch_exactly_once():
    samples = TrainSamples(DataConfig(shapes=SMALL), seed=0)
    ranks = [SharedLoader(samples, global_batch=8, micro_batch=2, budget=32, world_size=2, rank=r) for r in (0, 1)]
    got = [_drain(r) for r in ranks]
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == list(range(32))
    # each optimizer step (2 accumulation rounds per rank) covers one global batch
    for step in range(4):
        assert sorted(got[0][step * 4:(step + 1) * 4] + got[1][step * 4:(step + 1) * 4]) == list(range(step * 8, step * 8 + 8))


def test_resume_mid_epoch_yields_exactly_the_rest():
    samples = TrainSamples(DataConfig(shapes=ShapesConfig(train_size=50)), seed=1)
    full = SharedLoader(samples, 10, 5, budget=120)
    all_batches = [(b["position"].tolist(), b["target"]) for b in full]
    first = SharedLoader(samples, 10, 5, budget=120)
    it = iter(first)
    for _ in range(7):  # stop inside the second epoch, mid step
        next(it)
    state = first.state_dict()
    resumed = SharedLoader(samples, 10, 5, budget=120)
    resumed.load_state_dict(state)
    rest = [(b["position"].tolist(), b["target"]) for b in resumed]
    assert rest == all_batches[7:]


def test_workers_do_not_change_the_order():
    samples = TrainSamples(DataConfig(shapes=SMALL), seed=0)
    a = [b["video"] for b in SharedLoader(samples, 8, 4, budget=32)]
    b = [b["video"] for b in SharedLoader(samples, 8, 4, budget=32, num_workers=2)]
    assert all(x.equal(y) for x, y in zip(a, b)) and len(a) == len(b) == 8


def test_loader_validates_its_layout():
    samples = TrainSamples(DataConfig(shapes=SMALL), seed=0)
    with pytest.raises(ValueError, match="multiple"):
        SharedLoader(samples, 10, 4, budget=40)
    with pytest.raises(ValueError, match="budget"):
        SharedLoader(samples, 8, 4, budget=36)


def test_fingerprint_tracks_the_data():
    a = TrainSamples(DataConfig(shapes=SMALL), seed=0)
    assert fingerprint(a, 8) == fingerprint(TrainSamples(DataConfig(shapes=SMALL), seed=0), 8)
    assert fingerprint(a, 8) != fingerprint(TrainSamples(DataConfig(shapes=SMALL), seed=1), 8)


def _write_video(path, frames=16, size=64):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for t in range(frames):
            img = np.zeros((size, size, 3), np.uint8)
            img[:, : min(size, 3 * (t + 1))] = (200, 30, 30)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_manifest_decodes_a_real_video_and_an_image(tmp_path):
    from PIL import Image

    _write_video(tmp_path / "clip.mp4")
    Image.fromarray(np.full((40, 80, 3), 128, np.uint8)).save(tmp_path / "still.png")
    lines = [{"video": "clip.mp4", "query": "what happens", "target": "a red bar grows"},
             {"image": "still.png", "target": "a grey picture"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    samples = ManifestSamples(ManifestConfig(path=str(tmp_path / "m.jsonl"), frames=4, size=32), seed=0)
    got = {samples[k]["target"]: samples[k]["video"] for k in range(2)}
    video = got["a red bar grows"]
    assert video.shape == (4, 32, 32, 3)
    red = (video[..., 0].astype(int) - video[..., 2].astype(int) > 100).mean(axis=(1, 2))
    assert red[0] < red[-1]  # the bar grows across the sampled frames
    still = got["a grey picture"]
    assert np.array_equal(still[0], still[-1]) and abs(int(still.mean()) - 128) <= 2


def test_manifest_caption_clips_are_its_caption_records_decoded_as_training_decodes_them(tmp_path):
    _write_video(tmp_path / "clip.mp4")
    lines = [{"video": "clip.mp4", "query": "describe", "target": "a red bar grows"},
             {"video": "clip.mp4", "query": "what colour?", "target": "red", "candidates": ["red", "blue"], "answer": 0},
             {"video": "clip.mp4", "target": "the bar widens"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    samples = ManifestSamples(ManifestConfig(path=str(tmp_path / "m.jsonl"), frames=4, size=32), seed=0)
    clips = samples.caption_clips(10)
    assert clips.references == [["a red bar grows"], ["the bar widens"]]  # not the question's answer
    assert clips.queries[0] == "describe" and len(clips.visuals) == 2
    decoded = next(samples[k]["video"] for k in range(3) if samples[k]["target"] == "a red bar grows")
    assert np.array_equal(clips.visuals.clip(0), decoded)
    assert samples.caption_clips(1).references == [["a red bar grows"]]
    assert clips.visuals.identity() != samples.caption_clips(1).visuals.identity()


def test_manifest_errors_name_file_and_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"video": "a.mp4", "target": "x"}\n{"target": "no media"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: .*exactly one of 'video' or 'image'"):
        parse_manifest(m)
    records, skipped = parse_manifest(m, on_error="skip")
    assert len(records) == 1 and len(skipped) == 1
    (tmp_path / "a.mp4").write_bytes(b"not a video")
    m.write_text('{"video": "a.mp4", "target": "x"}\n')
    failing = ManifestSamples(ManifestConfig(path=str(m), on_error="fail"), seed=0)
    with pytest.raises(ManifestError, match=r"m.jsonl:1: cannot decode .*a.mp4"):
        failing[0]


def test_manifest_skip_replaces_and_counts(tmp_path):
    _write_video(tmp_path / "good.mp4", frames=4)
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    m = tmp_path / "m.jsonl"
    m.write_text('{"video": "bad.mp4", "target": "bad"}\n{"video": "good.mp4", "target": "good"}\n')
    s = ManifestSamples(ManifestConfig(path=str(m), frames=2, size=16, on_error="skip"), seed=0)
    assert {s[k]["target"] for k in range(4)} == {"good"}
    assert s.report()["failed_files"] == 1


def test_contact_sheet_renders(tmp_path, world):
    path = contact_sheet(world, 3, tmp_path)
    assert path.is_file() and path.stat().st_size > 10_000


def test_every_paraphrase_reads_back_as_its_scene():
    from bench.data.text import read_caption, scene_reading
    world = ShapesWorld(ShapesConfig(val_size=200))
    unsaid = 0
    for i in range(world.size("val")):
        truth = scene_reading(world.scene("val", i))
        refs = world.references("val", i)
        assert read_caption(refs[0]) == truth  # the canonical caption says every fact
        for ref in refs:
            got = read_caption(ref)
            if got["size"] == "none":  # the only fact a paraphrase may leave out
                unsaid += 1
                got["size"] = truth["size"]
            assert got == truth, ref
    assert unsaid  # and some do
    assert read_caption("a big crimson disc twirls beside a navy box as everything lights up") == {
        "colour": "red", "size": "large", "motion": "rotate", "distractor": "blue", "event": "light_on"}
