"""Converters of text-video releases (retrieval and captioning), each on a fixture in the release's own schema."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from convertkit import convert, evaluates, lines, read_sets, video, write_json

from bench.data.convert.__main__ import main as convert_main


def _msrvtt_release(src):
    (src / "videos").mkdir(parents=True)
    (src / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\n"
        "ret0,msr7020,video7020,a woman creating a fondant baby and flower\n"
        "ret1,msr7021,video7021,a man is talking about a car\n"
        "ret2,msr7022,video7022,people dance on a stage\n")
    (src / "MSRVTT_data.json").write_text(
        '{"videos": [{"video_id": "video7020"}], "sentences": ['
        '{"video_id": "video7020", "caption": "a woman makes a cake", "sen_id": 1},'
        '{"video_id": "video7020", "caption": "fondant art", "sen_id": 2},'
        '{"video_id": "video9", "caption": "not in 1k-A", "sen_id": 3}]}')
    for i, v in enumerate(("video7020", "video7021")):  # video7022 is missing, as releases miss a few
        video(src / "videos" / f"{v}.mp4", shade=40 * i)


def test_msrvtt_1ka_retrieval_and_captioning(tmp_path, tiny_rundir, capsys):
    _msrvtt_release(tmp_path / "rel")
    out = convert("msrvtt", tmp_path / "rel", tmp_path / "msrvtt", "--media-root", str(tmp_path / "rel" / "videos"))
    assert lines(out / "test_1ka.jsonl") == [
        {"video": "video7020.mp4", "caption": "a woman creating a fondant baby and flower"},
        {"video": "video7021.mp4", "caption": "a man is talking about a car"}]
    assert lines(out / "test_1ka_captions.jsonl")[0]["captions"] == ["a woman makes a cake", "fondant art"]
    assert "video7022" in (out / "convert.json").read_text()  # the dropped item is listed
    sets = read_sets(out)
    assert len(sets["retrieval"].texts) == 2 and len(sets["captioning"].references) == 2
    evaluates(tiny_rundir, out, capsys)


def test_converter_cli_lists_names_and_suggests(capsys, tmp_path):
    assert convert_main(["--help"]) == 0
    assert "msrvtt" in capsys.readouterr().out
    assert convert_main(["msrvt", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "Did you mean 'msrvtt'?" in capsys.readouterr().err
    (tmp_path / "rel").mkdir()
    assert convert_main(["msrvtt", "--src", str(tmp_path / "rel"), "--out", str(tmp_path / "o")]) == 1
    assert "MSRVTT_JSFUSION_test.csv" in capsys.readouterr().err and not (tmp_path / "o").exists()


# -- MSVD ------------------------------------------------------------------------------------------------

MSVD_CAPTIONS = {"-4wsuPCjDBc_5_15": [["a", "squirrel", "eats", "a", "peanut"], ["a", "chipmunk", "is", "eating"]],
                 "0lh_UWF9ZP4_62_69": [["a", "man", "plays", "a", "guitar"]],
                 "1dfR0A_BXjw_590_600": [["a", "dog", "runs"]],  # its video is missing
                 "zzit5b_-ukg_5_20": [["a", "train", "passes"]]}  # a training video


def _msvd_release(src):
    """CLIP4Clip's msvd_data: raw-captions.pkl (captions as word lists), the split lists; YouTubeClips/*.avi."""
    src.mkdir(parents=True)
    (src / "raw-captions.pkl").write_bytes(pickle.dumps(MSVD_CAPTIONS))
    (src / "test_list.txt").write_text("-4wsuPCjDBc_5_15\n0lh_UWF9ZP4_62_69\n1dfR0A_BXjw_590_600\n")
    (src / "train_list.txt").write_text("zzit5b_-ukg_5_20\n")
    for i, v in enumerate(("-4wsuPCjDBc_5_15", "0lh_UWF9ZP4_62_69", "zzit5b_-ukg_5_20")):
        video(src / "YouTubeClips" / f"{v}.avi", shade=50 * i)


def test_msvd_test_split_retrieval_and_captioning(tmp_path, tiny_rundir, capsys):
    _msvd_release(tmp_path / "rel")
    out = convert("msvd", tmp_path / "rel", tmp_path / "msvd", "--media-root", str(tmp_path / "rel" / "YouTubeClips"))
    assert lines(out / "test.jsonl") == [
        {"video": "-4wsuPCjDBc_5_15.avi", "captions": ["a squirrel eats a peanut", "a chipmunk is eating"]},
        {"video": "0lh_UWF9ZP4_62_69.avi", "captions": ["a man plays a guitar"]}]
    assert "1dfR0A_BXjw_590_600" in (out / "convert.json").read_text()
    sets = read_sets(out)
    assert sets["retrieval"].texts == ["a squirrel eats a peanut", "a chipmunk is eating", "a man plays a guitar"]
    assert len(sets["retrieval"].visuals) == 2 and len(sets["captioning"].references) == 2
    evaluates(tiny_rundir, out, capsys)


def test_msvd_reads_umt_json_the_same_and_refuses_code_in_the_pickle(tmp_path, capsys):
    _msvd_release(tmp_path / "rel")
    clip4clip = convert("msvd", tmp_path / "rel", tmp_path / "a", "--media-root", str(tmp_path / "rel" / "YouTubeClips"))
    umt = tmp_path / "umt"
    umt.mkdir()
    (umt / "msvd_ret_test.json").write_text(json.dumps(
        [{"video": f"{v}.avi", "caption": [" ".join(w) for w in MSVD_CAPTIONS[v]]}
         for v in ("-4wsuPCjDBc_5_15", "0lh_UWF9ZP4_62_69", "1dfR0A_BXjw_590_600")]))
    convert("msvd", umt, tmp_path / "b", "--media-root", str(tmp_path / "rel" / "YouTubeClips"))
    assert lines(tmp_path / "b" / "test.jsonl") == lines(clip4clip / "test.jsonl")
    (tmp_path / "rel" / "raw-captions.pkl").write_bytes(pickle.dumps({"v": [Path("x")]}))
    assert convert_main(["msvd", "--src", str(tmp_path / "rel"), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "raw-captions.pkl" in err and "refusing to build pathlib" in err, err


# -- DiDeMo ----------------------------------------------------------------------------------------------

def _didemo_moment(video, description, times, num_segments=6):
    return {"annotation_id": len(description), "description": description, "video": video, "times": times,
            "dl_link": f"https://www.flickr.com/video_download.gne?id={video}", "num_segments": num_segments}


def _didemo_release(src):
    """LocalizingMoments' test_data.json (times: 5 s chunks, one pair per annotator) and CE's test_list.txt;
    one video as Flickr named it, one as the AWS script saves it (<video>.mp4), one longer than the 30 s that
    were annotated (32 frames at 1 fps), one missing, one unlisted."""
    (src / "videos").mkdir(parents=True)
    (src / "test_data.json").write_text(json.dumps([
        _didemo_moment("10015567@N08_3655084291_d8b58466fa.mov", "a dog runs in.", [[0, 0], [0, 0], [0, 1]]),
        _didemo_moment("26715627@N00_3256390012_e8a5f0b3a4.mp4", "the boat turns", [[0, 0], [0, 0], [0, 0], [0, 0]], 5),
        _didemo_moment("10015567@N08_3655084291_d8b58466fa.mov", "the dog jumps", [[1, 1], [1, 2], [1, 1]]),
        _didemo_moment("45678901@N05_4567890123_0a1b2c3d4e.m4v", "the car leaves", [[5, 5], [5, 5]]),
        _didemo_moment("99999999@N00_1_missing.mov", "nobody sees this", [[0, 0]]),
        _didemo_moment("88888888@N00_2_unlisted.mov", "not in the test list", [[0, 0]])]))
    (src / "test_list.txt").write_text("10015567@N08_3655084291_d8b58466fa.mov\n26715627@N00_3256390012_e8a5f0b3a4.mp4\n"
                                       "45678901@N05_4567890123_0a1b2c3d4e.m4v\n99999999@N00_1_missing.mov\n")
    video(src / "videos" / "10015567@N08_3655084291_d8b58466fa.mov", frames=8)
    video(src / "videos" / "26715627@N00_3256390012_e8a5f0b3a4.mp4.mp4", frames=6, shade=90)
    video(src / "videos" / "45678901@N05_4567890123_0a1b2c3d4e.mp4", frames=32, fps=1, shade=200)  # transcoded
    video(src / "videos" / "88888888@N00_2_unlisted.mov", shade=150)


def test_didemo_paragraph_retrieval_and_moment_captioning(tmp_path, tiny_rundir, capsys):
    _didemo_release(tmp_path / "rel")
    media = ["--media-root", str(tmp_path / "rel" / "videos")]
    out = convert("didemo", tmp_path / "rel", tmp_path / "didemo", *media, "--captioning", "moments")
    assert lines(out / "test_paragraphs.jsonl") == [
        {"video": "10015567@N08_3655084291_d8b58466fa.mov", "caption": "a dog runs in. the dog jumps"},
        {"video": "26715627@N00_3256390012_e8a5f0b3a4.mp4.mp4", "caption": "the boat turns"},
        {"video": "45678901@N05_4567890123_0a1b2c3d4e.mp4", "start": 0.0, "end": 30.0, "caption": "the car leaves"}]
    # moments end within the (2 s and 1.5 s) videos; "the dog jumps" (5-13.3 s) is past the end: dropped, counted
    assert lines(out / "test_moments.jsonl") == [
        {"video": "10015567@N08_3655084291_d8b58466fa.mov", "start": 0.0, "end": 2.0, "captions": ["a dog runs in."]},
        {"video": "26715627@N00_3256390012_e8a5f0b3a4.mp4.mp4", "start": 0.0, "end": 1.5, "captions": ["the boat turns"]},
        {"video": "45678901@N05_4567890123_0a1b2c3d4e.mp4", "start": 25.0, "end": 30.0, "captions": ["the car leaves"]}]
    summary = json.loads((out / "convert.json").read_text())
    assert summary["left_out"]["segments dropped (outside the video)"] == 1
    assert summary["dropped_missing_media"] == 1 and "99999999@N00_1_missing" in summary["dropped_examples"][0]
    sets = read_sets(out)
    assert len(sets["retrieval"].texts) == 3 and len(sets["captioning"].references) == 3
    evaluates(tiny_rundir, out, capsys)
    plain = convert("didemo", tmp_path / "rel", tmp_path / "plain", *media, "--retrieval-clip", "whole")
    assert list(read_sets(plain)) == ["retrieval"] and not (plain / "test_moments.jsonl").exists()  # retrieval only
    assert not any("start" in x for x in lines(plain / "test_paragraphs.jsonl"))


# -- ActivityNet Captions --------------------------------------------------------------------------------

def _activitynet_release(src):
    """captions.zip's val_1.json; one video named as the ActivityNet crawler saves it (v_<id>.mp4), one as
    CLIP4Clip looks for it (<id>.mkv), one missing. The release's duration (2.0 s) is longer than the file
    (6 frames at 4 fps: 1.5 s), and one segment runs past both."""
    (src / "videos").mkdir(parents=True)
    (src / "val_1.json").write_text(json.dumps({
        "v_uqiMw7tQ1Cc": {"duration": 2.0, "timestamps": [[0, 1.0], [0.5, 3.5]],
                          "sentences": ["A weight lifting tutorial is given.", " The coach helps the guy."]},
        "v_bXdq2zI1Ms0": {"duration": 2.0, "timestamps": [[1.25, 0.25]], "sentences": ["A man pours a drink."]},
        "v_FsS_NCZEfaI": {"duration": 9.0, "timestamps": [[0, 9]], "sentences": ["Nobody downloaded this."]}}))
    video(src / "videos" / "v_uqiMw7tQ1Cc.mp4")
    video(src / "videos" / "bXdq2zI1Ms0.mkv", shade=100)


def test_activitynet_paragraph_retrieval_and_segment_captioning(tmp_path, tiny_rundir, capsys):
    _activitynet_release(tmp_path / "rel")
    out = convert("activitynet", tmp_path / "rel", tmp_path / "anet", "--media-root", str(tmp_path / "rel" / "videos"))
    assert lines(out / "val_1_paragraphs.jsonl") == [
        {"video": "v_uqiMw7tQ1Cc.mp4", "caption": "A weight lifting tutorial is given. The coach helps the guy."},
        {"video": "bXdq2zI1Ms0.mkv", "caption": "A man pours a drink."}]
    assert lines(out / "val_1_segments.jsonl") == [
        {"video": "v_uqiMw7tQ1Cc.mp4", "start": 0.0, "end": 1.0, "captions": ["A weight lifting tutorial is given."]},
        {"video": "v_uqiMw7tQ1Cc.mp4", "start": 0.5, "end": 1.5, "captions": ["The coach helps the guy."]},
        {"video": "bXdq2zI1Ms0.mkv", "start": 0.25, "end": 1.25, "captions": ["A man pours a drink."]}]
    assert "v_FsS_NCZEfaI" in (out / "convert.json").read_text()
    sets = read_sets(out)
    assert len(sets["retrieval"].texts) == 2 and len(sets["captioning"].references) == 3
    evaluates(tiny_rundir, out, capsys)
    sentence = convert("activitynet", tmp_path / "rel", tmp_path / "sent", "--media-root", str(tmp_path / "rel" / "videos"),
                       "--retrieval", "sentence")
    assert len(read_sets(sentence)["retrieval"].texts) == 3


# -- YouCook2 --------------------------------------------------------------------------------------------

def _youcook2_release(src):
    """youcookii_annotations_trainval.json; videos where download_youcookii_videos.py puts them
    (raw_videos/<subset>/<recipe_type>/<id>.<ext>), one validation video missing, one training video."""
    def entry(subset, recipe, sentences, duration=2.0):
        return {"subset": subset, "recipe_type": recipe, "duration": duration,
                "video_url": "https://www.youtube.com/watch?v=x",
                "annotations": [{"id": i, "segment": seg, "sentence": s} for i, (seg, s) in enumerate(sentences)]}
    write_json(src / "annotations" / "youcookii_annotations_trainval.json", {"database": {
        "GLd3aX16zBg": entry("validation", "113", [([0, 1], "spread margarine on bread"), ([1, 2], "put cheese on it")]),
        "xHr8X2Wpmno": entry("validation", "226", [([0, 1], "boil the noodles")]),
        "V53XmPeyjIU": entry("validation", "113", [([0, 1], "never downloaded")]),
        "0O4bxhpFX9o": entry("training", "101", [([0, 1], "a training clip")])}})
    video(src / "raw_videos" / "validation" / "113" / "GLd3aX16zBg.mp4", frames=8)
    video(src / "raw_videos" / "validation" / "226" / "xHr8X2Wpmno.mkv", frames=8, shade=70)
    video(src / "raw_videos" / "training" / "101" / "0O4bxhpFX9o.mp4", frames=8, shade=140)


def test_youcook2_validation_segments_retrieval_and_captioning(tmp_path, tiny_rundir, capsys):
    _youcook2_release(tmp_path / "YouCookII")
    out = convert("youcook2", tmp_path / "YouCookII", tmp_path / "yc2")
    a, b = "raw_videos/validation/113/GLd3aX16zBg.mp4", "raw_videos/validation/226/xHr8X2Wpmno.mkv"
    assert lines(out / "validation_segments.jsonl") == [  # the training video is left out
        {"video": a, "start": 0.0, "end": 1.0, "captions": ["spread margarine on bread"]},
        {"video": a, "start": 1.0, "end": 2.0, "captions": ["put cheese on it"]},
        {"video": b, "start": 0.0, "end": 1.0, "captions": ["boil the noodles"]}]
    assert "V53XmPeyjIU" in (out / "convert.json").read_text()
    sets = read_sets(out)
    assert len(sets["retrieval"].texts) == 3 and len(sets["retrieval"].visuals) == 3  # each segment its own clip
    assert len(sets["captioning"].references) == 3
    evaluates(tiny_rundir, out, capsys)


@pytest.mark.parametrize("name, file, data, expected", [
    ("activitynet", "val_1.json", {"v_a": {"duration": 5, "timestamps": [[0, 1]], "sentences": ["a", "b"]}},
     "'v_a': 'timestamps' (1) and 'sentences' (2)"),
    ("activitynet", "val_1.json", {"v_a": {"duration": 5, "timestamps": [[0, "soon"]], "sentences": ["a"]}},
     "timestamps[0]: expected a time in seconds, got 'soon'"),
    ("youcook2", "youcookii_annotations_trainval.json", {"results": {}}, "expected {\"database\""),
    ("youcook2", "youcookii_annotations_trainval.json", {"database": {"vid": {"subset": "training", "annotations": []}}},
     "no video has 'subset' 'validation'"),
    ("youcook2", "youcookii_annotations_trainval.json",
     {"database": {"vid": {"subset": "validation", "annotations": [{"segment": [0], "sentence": "x"}]}}},
     "database['vid'].annotations[0]: expected {'segment': [start, end]"),
    ("didemo", "test_data.json", [{"video": "v.mov", "description": "d", "times": "0-1"}], "[0].times: expected"),
    ("msvd", "msvd_ret_test.json", [{"video": "v.avi", "caption": []}], "[0]: expected {'video'"),
])
def test_malformed_releases_are_named(tmp_path, capsys, name, file, data, expected):
    """A release that does not have its schema stops the conversion, naming the file, the key and what was
    expected, and writes nothing."""
    write_json(tmp_path / "rel" / file, data)
    assert convert_main([name, "--src", str(tmp_path / "rel"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert file in err and expected in err, err
    assert not (tmp_path / "out").exists()
