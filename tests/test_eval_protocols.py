"""Classification's evaluation protocols (issue #35, 5b and 5c): prompt ensembles over text embeddings or over
scores (eval.prompt_ensemble), and multi-view scoring of videos read from files (eval.views), each against a
direct computation on hand-made models and media, so that a wrong formula fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.config import EvalConfig, load_run_config
from bench.configcli import keys_help
from bench.configlib import ConfigError
from bench.data.video import View, read_clip, write_video
from bench.eval.sets.kinds import ClassificationSet, views_of
from bench.eval.sets.media import FileView, FileVisuals
from bench.eval.tasks import classification
from bench.eval.tasks.classification import class_scores
from bench.eval.tasks.common import EvalContext, UnreadableClip, split_outcomes
from bench.eval.tasks.unreadable import run_readable
from tests.conftest import tiny_overrides


def _ctx(**eval_keys) -> EvalContext:
    return EvalContext(EvalConfig(batch=2, **eval_keys), {}, {"classification": ""}, torch.device("cpu"), frames=4,
                       decode_tokens=8, seed=0)


class _Clips:
    """In-memory clips (the shapes world's kind of visuals: one view each); clip i is filled with value i."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def clip(self, i: int) -> np.ndarray:
        return np.full((2, 4, 4, 3), i, np.uint8)

    def identity(self) -> tuple:
        return ("test-clips", self.n)


# ---------------------------------------------------------------- the config keys


def test_the_keys_default_to_todays_protocol_and_keep_every_run_id():
    plain = load_run_config("base/tiny.yaml")
    assert plain.eval.prompt_ensemble == "scores" and plain.eval.view_counts() == (1, 1)
    same = load_run_config("base/tiny.yaml", ["eval.prompt_ensemble=scores", "eval.views={clips: 1, crops: 1}"])
    assert same.run_id == plain.run_id
    for key in ("eval.prompt_ensemble=embeddings", "eval.views.clips=2", "eval.views.crops=3"):
        assert load_run_config("base/tiny.yaml", [key]).run_id != plain.run_id, key
    merged = load_run_config("base/tiny.yaml", ["eval.views.crops=3"]).eval  # one key merges into the default
    assert merged.views == {"clips": 1, "crops": 3} and merged.view_counts() == (1, 3)
    lines = "\n".join(keys_help())
    assert "eval.prompt_ensemble = \"scores\"  # " in lines and "eval.views = {\"clips\": 1, \"crops\": 1}  # " in lines


@pytest.mark.parametrize("override, named", [
    ("eval.prompt_ensemble=embedding", ["'eval.prompt_ensemble'", "'embedding'", "'embeddings'"]),
    ("eval.views.clips=0", ["views.clips is 0", ">= 1"]),
    ("eval.views.crops=-2", ["views.crops is -2", ">= 1"]),
    ("eval.views.crop=3", ["views has an unknown key 'crop'", "expected clips and crops"]),
    ("eval.views.clips=two", ["'eval.views.clips'", "'two'", "int"]),
    ("eval.views=3", ["'eval.views'", "3", "a mapping"]),
])
def test_bad_values_are_refused_naming_key_value_and_expectation(override, named):
    with pytest.raises(ConfigError) as e:
        load_run_config("base/tiny.yaml", [override])
    for part in named:
        assert part in str(e.value), (part, str(e.value))


# ---------------------------------------------------------------- prompt ensembles

# two classes, two templates; the clip embeddings are unit vectors, the text embeddings deliberately not unit
TEXTS = {"a video of A": [1.0, 0.0], "a photo of A": [0.0, 5.0],  # A: two directions, one of them long
         "a video of B": [1.2, 1.6], "a photo of B": [3.0, 4.0]}  # B: one direction, (0.6, 0.8)
CLIPS = [[1.0, 0.0], [0.0, 1.0]]  # clip i embeds as CLIPS[i]
TEMPLATES = ("a video of {}", "a photo of {}")


def _cosines(videos: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Each clip's embedding (CLIPS[its value]) against each text's, normalised."""
    clips = torch.tensor([CLIPS[int(v[0, 0, 0, 0])] for v in videos])
    return clips @ F.normalize(torch.tensor([TEXTS[t] for t in texts]), dim=-1).T


class _Embedder:
    """A model whose clip and text embeddings are known; it scores as VL-JEPA does: its clip embedding against
    each unit-norm text embedding."""

    has_embedding = True

    def embed(self, batch: dict) -> torch.Tensor:
        return torch.tensor([CLIPS[int(v[0, 0, 0, 0])] for v in batch["video"]])

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([TEXTS[t] for t in texts])

    def score(self, batch: dict, candidates: list[str]) -> torch.Tensor:
        return _cosines(batch["video"], candidates)


class _Scorer:
    """The VLM's shape: the same scores, and no embedding of clips or texts."""

    has_embedding = False

    def score(self, batch: dict, candidates: list[str]) -> torch.Tensor:
        return _cosines(batch["video"], candidates)


def _direct(protocol: str) -> torch.Tensor:
    """The (clips, classes) scores written out: CLIP_benchmark's classifier, or the mean of cosines."""
    v = torch.tensor(CLIPS)
    per = torch.stack([torch.stack([F.normalize(torch.tensor(TEXTS[t.format(c)]), dim=0) for c in "AB"])
                       for t in TEMPLATES])  # (templates, classes, D), each unit
    if protocol == "scores":
        return torch.stack([v @ per[t].T for t in range(len(TEMPLATES))]).mean(0)
    classifier = per.mean(0)
    return v @ (classifier / classifier.norm(dim=-1, keepdim=True)).T


def test_the_two_ensembles_answer_differently_each_as_computed_directly():
    s = ClassificationSet("hand", _Clips(2), [0, 1], ["A", "B"], TEMPLATES)
    got = {p: class_scores(_Embedder(), _ctx(prompt_ensemble=p), s) for p in ("scores", "embeddings")}
    for p, (scores, ensemble, views) in got.items():
        assert ensemble == p and views == 1
        torch.testing.assert_close(scores, _direct(p), rtol=0, atol=1e-6)
    # clip 0 (class A): the mean of cosines prefers B (0.6 > 0.5); the cosine to A's mean direction prefers A
    assert got["scores"][0].argmax(1).tolist() == [1, 1]
    assert got["embeddings"][0].argmax(1).tolist() == [0, 1]
    torch.testing.assert_close(got["embeddings"][0], torch.tensor([[0.5 ** 0.5, 0.6], [0.5 ** 0.5, 0.8]]))
    tops = {p: {r["metric"]: r for r in split_outcomes(classification.run(_Embedder(), _ctx(prompt_ensemble=p), s))[0]}
            for p in ("scores", "embeddings")}
    assert tops["scores"]["top1"]["value"] == 50.0 and tops["embeddings"]["top1"]["value"] == 100.0
    assert tops["embeddings"]["top1"]["ensemble"] == "embeddings"
    assert "ensemble" not in tops["scores"]["top1"] and "views" not in tops["scores"]["top1"]  # the records of old


def test_a_model_without_a_text_embedding_falls_back_to_scores_and_says_so():
    s = ClassificationSet("hand", _Clips(2), [0, 1], ["A", "B"], TEMPLATES)
    scores, ensemble, _ = class_scores(_Scorer(), _ctx(prompt_ensemble="embeddings"), s)
    assert ensemble == "scores"
    torch.testing.assert_close(scores, _direct("scores"), rtol=0, atol=1e-6)
    recs, _ = split_outcomes(classification.run(_Scorer(), _ctx(prompt_ensemble="embeddings"), s))
    assert {r["ensemble"] for r in recs} == {"scores"}


def test_vljepa_scores_as_its_embeddings_so_one_template_gives_one_answer():
    """The embeddings protocol reads embed and embed_text where score is one call: for VL-JEPA they are the
    same cosine, so with a single template both protocols agree, and with several it is the classifier."""
    from bench.run.build import build_model

    model = build_model(load_run_config("base/tiny.yaml", tiny_overrides())).eval()
    clips = np.random.default_rng(0).integers(0, 255, (3, 8, 64, 64, 3), dtype=np.uint8)

    class Random(_Clips):
        def clip(self, i: int) -> np.ndarray:
            return clips[i]

    names = ["red ball", "blue cube", "green star"]
    one = ClassificationSet("one", Random(3), [0, 1, 2], names, ("a video of {}",))
    with torch.no_grad():
        a, _, _ = class_scores(model, _ctx(prompt_ensemble="scores"), one)
        b, used, _ = class_scores(model, _ctx(prompt_ensemble="embeddings"), one)
        assert used == "embeddings"
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        two = ClassificationSet("two", Random(3), [0, 1, 2], names, ("a video of {}", "{}"))
        got, _, _ = class_scores(model, _ctx(prompt_ensemble="embeddings"), two)
        video = torch.from_numpy(clips).permute(0, 1, 4, 2, 3)
        v = model.embed({"video": video, "query": [""] * 3})
        per = torch.stack([F.normalize(model.embed_text([t.format(n) for n in names]), dim=-1) for t in two.templates])
        torch.testing.assert_close(got, v @ F.normalize(per.mean(0), dim=-1).T, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- views

FPS = 10


def _pattern(n: int = 12, h: int = 16, w: int = 48) -> np.ndarray:
    """n frames whose pixels tell their frame k and their third m of the long side: 20 k + 5 m (+ the colour)."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    long = w >= h
    for k in range(n):
        for m in range(3):
            part = (slice(None), slice(m * w // 3, (m + 1) * w // 3)) if long else (slice(m * h // 3, (m + 1) * h // 3),)
            frames[k][part] = [20 * k + 5 * m, 20 * k + 5 * m + 1, 20 * k + 5 * m + 2]
    return frames


def test_views_read_exactly_their_window_and_crop(tmp_path: Path):
    frames = _pattern()
    write_video(tmp_path / "wide.mp4", frames, fps=FPS, lossless=True, gop=4)
    path = tmp_path / "wide.mp4"
    # 12 frames in 2 windows (0-5, 6-11) of 3 frames each: first, middle, last; 3 crops of 16 px: the thirds
    for window, want in ((0, [0, 2, 5]), (1, [6, 8, 11])):
        for crop in range(3):
            got = read_clip(path, 3, 16, view=View(window, 2, crop, 3))
            assert (got == frames[want][:, :, 16 * crop:16 * crop + 16]).all(), (window, crop)
    assert (read_clip(path, 3, 16) == frames[[0, 6, 11]][:, :, 16:32]).all()  # one view: the whole, the centre
    assert (read_clip(path, 3, 16, view=View(0, 1, 1, 3)) == read_clip(path, 3, 16)).all()
    # a segment [0.6 s, 1.2 s) is frames 6-11: its 2 windows are 6-8 and 9-11; 2 crops: left and right
    seg = read_clip(path, 2, 16, 0.6, 1.2, View(1, 2, 1, 2))
    assert (seg == frames[[9, 11]][:, :, 32:48]).all()
    tall = _pattern(4, 48, 16)  # portrait: the crops go down the long side
    write_video(tmp_path / "tall.mp4", tall, fps=FPS, lossless=True)
    assert (read_clip(tmp_path / "tall.mp4", 2, 16, view=View(0, 1, 2, 3)) == tall[[0, 3]][:, 32:48]).all()


def test_each_view_is_its_own_cache_entry_and_one_view_is_the_set_itself(tmp_path: Path):
    write_video(tmp_path / "v.mp4", _pattern(), fps=FPS, lossless=True)
    files = FileVisuals([(tmp_path / "v.mp4",)], 3, 16)
    before = files.identity()
    assert views_of(files, 1, 1) == [files]
    three = views_of(files, 1, 3)
    assert three[1] is files and all(isinstance(v, FileView) for v in (three[0], three[2]))
    six = views_of(files, 2, 3)
    ids = [v.identity() for v in six]
    assert len(set(ids)) == 6 and before not in ids and files.identity() == before
    world = _Clips(2)
    assert views_of(world, 2, 3) == [world]


class _ByContent:
    """A VLM-like scorer whose (raw, unbounded) scores are a non-linear function of the clip's pixels: the mean
    over views of its scores is not its score of any one view."""

    has_embedding = False

    def score(self, batch: dict, candidates: list[str]) -> torch.Tensor:
        x = batch["video"].float()
        mean, left = x.mean(dim=(1, 2, 3, 4)), x[..., :8].mean(dim=(1, 2, 3, 4))
        return torch.stack([torch.sin(mean / 17 + k) * left / (k + 1) + len(c) for k, c in enumerate(candidates)], 1)


def test_classification_scores_are_the_mean_over_views_of_single_view_scores(tmp_path: Path):
    vids = []
    for j in range(3):
        write_video(tmp_path / f"{j}.mp4", np.roll(_pattern(), j, axis=0), fps=FPS, lossless=True)
        vids.append((tmp_path / f"{j}.mp4",))
    files = FileVisuals(vids, 3, 16)
    s = ClassificationSet("files", files, [0, 1, 2], ["a", "bb", "ccc"], ("{}", "x {}"))
    model = _ByContent()
    scores, _, views = class_scores(model, _ctx(views={"clips": 2, "crops": 3}), s)
    assert views == 6

    def single(view: View) -> torch.Tensor:  # the view's clips read by hand, scored as the task scores one view
        video = torch.from_numpy(np.stack([files.clip(i, view) for i in range(3)])).permute(0, 1, 4, 2, 3)
        batch = {"video": video, "query": [""] * 3}
        return torch.stack([model.score(batch, [t.format(n) for n in s.class_names]) for t in s.templates]).mean(0)

    per_view = [single(View(c, 2, m, 3)) for c in range(2) for m in range(3)]
    torch.testing.assert_close(scores, torch.stack(per_view).mean(0), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(scores, per_view[1], atol=1e-3)  # the views do differ
    one, _, n = class_scores(model, _ctx(), s)
    assert n == 1
    torch.testing.assert_close(one, single(View()), rtol=0, atol=1e-6)  # the defaults: the one view
    recs, _ = split_outcomes(classification.run(model, _ctx(views={"clips": 2, "crops": 3}), s))
    assert {r["views"] for r in recs} == {6} and all("ensemble" not in r for r in recs)
    shapes = ClassificationSet("shapes", _Clips(2), [0, 1], ["a", "b"])  # the world's clips: one view
    assert class_scores(_ByContent(), _ctx(views={"clips": 2, "crops": 3}), shapes)[2] == 1


def test_an_unreadable_clip_in_a_view_is_skipped_as_a_clip_of_the_set(tmp_path: Path):
    write_video(tmp_path / "ok.mp4", _pattern(), fps=FPS, lossless=True)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    files = FileVisuals([(tmp_path / "ok.mp4",), (tmp_path / "bad.mp4",), (tmp_path / "ok.mp4",)], 3, 16)
    s = ClassificationSet("files", files, [0, 1, 2], ["a", "bb", "ccc"])
    ctx = _ctx(views={"clips": 2, "crops": 1})
    ctx.log = lambda line: None
    recs = run_readable(classification.run, _ByContent(), ctx, "classification", s)
    assert {(r["n"], r["skipped"], r["views"]) for r in recs} == {(2, 1, 2)}

    class Lookup:  # the feature cache: a view whose window of clip 2 cannot be decoded
        def __call__(self, visuals):
            return np.zeros((len(visuals), 1, 4), np.float32)

        def unreadable(self, visuals):
            return {2: "v.mp4: cannot decode"} if isinstance(visuals, FileView) and visuals.view.window == 1 else {}

    ctx.features = Lookup()
    with pytest.raises(UnreadableClip) as e:
        class_scores(_ByContent(), ctx, s)
    assert e.value.visuals is files and e.value.index == 2
