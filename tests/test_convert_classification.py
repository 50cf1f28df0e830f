"""Converters of classification releases (Kinetics-400, SSv2, EPIC-KITCHENS-100, COIN, CrossTask), each on a
fixture in the release's own schema with tiny videos: the lines written, the folder read as evaluation reads
it, and python -m bench.eval on it."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
from convertkit import convert, evaluates, lines, read_sets, video, write_json

from bench.data.convert.__main__ import main as convert_main
from bench.data.convert.kinetics400 import KINETICS_TEMPLATES

# fixture videos: 6 frames at 4 fps, 1.5 s; every segment below ends within them


def _webm(path, frames: int = 6, shade: int = 0):
    """A VP9 .webm, the container SSv2 ships (write_video writes H.264, which webm cannot hold)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=Fraction(4))
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = np.full((16, 16, 3), (shade + 30 * i) % 256, np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def _fails(name: str, src, out, capsys, *extra: str) -> str:
    assert convert_main([name, "--src", str(src), "--out", str(out), *extra]) == 1
    assert not out.exists()
    return capsys.readouterr().err


# -- Kinetics-400 ---------------------------------------------------------------------------------------------

def _kinetics_release(src):
    src.mkdir(parents=True)
    (src / "validate.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,--07WQ2iBlw,1,11,val\n"
        '"passing American football (in game)",-0GNxhHAQFE,45,55,val\n'
        "playing guitar,0AqfPKkTLs4,0,10,val\n"
        "abseiling,zzzzzzzzzzz,3,13,val\n")  # no video: YouTube took it down
    video(src / "val" / "--07WQ2iBlw_000001_000011.mp4")  # CVDF: flat
    video(src / "val" / "passing American football (in game)" / "-0GNxhHAQFE_000045_000055.mp4", shade=60)  # by label
    video(src / "val" / "playing_guitar" / "0AqfPKkTLs4_000000_000010.mp4", shade=120)  # by label, spaces as _


def test_kinetics400_validate_csv(tmp_path, tiny_rundir, capsys):
    _kinetics_release(tmp_path / "rel")
    out = convert("kinetics400", tmp_path / "rel", tmp_path / "k400", "--media-root", str(tmp_path / "rel" / "val"))
    assert lines(out / "val.jsonl") == [
        {"video": "--07WQ2iBlw_000001_000011.mp4", "label": "abseiling"},
        {"video": "passing American football (in game)/-0GNxhHAQFE_000045_000055.mp4",
         "label": "passing American football (in game)"},
        {"video": "playing_guitar/0AqfPKkTLs4_000000_000010.mp4", "label": "playing guitar"}]
    assert (out / "classnames.txt").read_text().splitlines() == [
        "abseiling", "passing American football (in game)", "playing guitar"]
    templates = (out / "templates.txt").read_text().splitlines()
    assert len(templates) == 28 and templates[0] == "a photo of {}." and "a video of a person {}." in templates
    summary = json.loads((out / "convert.json").read_text())
    assert summary["dropped_missing_media"] == 1 and "zzzzzzzzzzz_000003_000013.mp4" in summary["dropped_examples"][0]
    cls = read_sets(out)["classification"]
    assert cls.labels == [0, 1, 2] and cls.templates == KINETICS_TEMPLATES
    evaluates(tiny_rundir, out, capsys)
    plain = convert("kinetics400", tmp_path / "rel", tmp_path / "plain", "--media-root", str(tmp_path / "rel" / "val"),
                    "--templates", "no")
    assert not (plain / "templates.txt").exists() and read_sets(plain)["classification"].templates == ["{}"]


def test_kinetics400_rejects_a_list_that_is_not_validate_csv(tmp_path, capsys):
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "val.csv").write_text("k400/abc.mp4 3\n")  # a VideoMAE list: read it directly instead
    err = _fails("kinetics400", tmp_path / "rel", tmp_path / "o", capsys)
    assert "val.csv: needs columns label, time_end, time_start, youtube_id" in err


# -- Something-Something v2 -----------------------------------------------------------------------------------

def _ssv2_release(src):
    write_json(src / "labels" / "something-something-v2-labels.json", {
        "Approaching something with your camera": "0", "Pushing something from left to right": "1",
        "Putting something on a surface": "2"})
    write_json(src / "labels" / "something-something-v2-validation.json", [
        {"id": "74225", "label": "putting cube on a table", "template": "Putting [something] on a surface",
         "placeholders": ["cube"]},
        {"id": "116154", "label": "pushing a pen from left to right",
         "template": "Pushing [Something] from left to right", "placeholders": ["a pen"]},  # case differs
        {"id": "999", "label": "approaching a cup with your camera",
         "template": "Approaching [something] with your camera", "placeholders": ["a cup"]}])  # no video
    _webm(src / "20bn-something-something-v2" / "74225.webm")
    _webm(src / "20bn-something-something-v2" / "116154.webm", shade=90)


def test_ssv2_validation_json(tmp_path, tiny_rundir, capsys):
    _ssv2_release(tmp_path / "rel")
    out = convert("ssv2", tmp_path / "rel", tmp_path / "ssv2",
                  "--media-root", str(tmp_path / "rel" / "20bn-something-something-v2"))
    assert lines(out / "val.jsonl") == [{"video": "74225.webm", "label": "Putting something on a surface"},
                                        {"video": "116154.webm", "label": "Pushing something from left to right"}]
    assert (out / "classnames.txt").read_text().splitlines() == [
        "Approaching something with your camera", "Pushing something from left to right",
        "Putting something on a surface"]
    assert read_sets(out)["classification"].labels == [2, 1]
    evaluates(tiny_rundir, out, capsys)


def test_ssv2_names_a_template_that_is_no_class(tmp_path, capsys):
    _ssv2_release(tmp_path / "rel")
    write_json(tmp_path / "rel" / "labels" / "something-something-v2-validation.json",
               [{"id": "5", "template": "Juggling [something]", "label": "x", "placeholders": []}])
    err = _fails("ssv2", tmp_path / "rel", tmp_path / "o", capsys)
    assert "[0]: item 5: template 'Juggling [something]' is no class" in err


# -- EPIC-KITCHENS-100 ----------------------------------------------------------------------------------------

EK_HEADER = ("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
             "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n")


def _ek100_release(src, stop: str = "00:00:01.20"):
    src.mkdir(parents=True)
    (src / "EPIC_100_verb_classes.csv").write_text(
        "id,key,instances,category\n0,take,\"['take', 'grab']\",retrieve\n1,turn-on,\"['turn-on']\",access\n"
        "2,wash,\"['wash']\",clean\n")
    (src / "EPIC_100_noun_classes.csv").write_text(
        "id,key,instances,category\n0,tap,\"['tap']\",appliances\n1,plate,\"['plate']\",crockery\n"
        "2,board:chopping,\"['board:chopping']\",cookware\n")
    (src / "EPIC_100_validation.csv").write_text(
        EK_HEADER
        + f"P01_11_0,P01,P01_11,00:00:00.560,00:00:00.25,{stop},15,72,take plate,take,0,plate,1,['plate'],[1]\n"
        "P01_11_1,P01,P01_11,00:00:01.000,00:00:00.90,00:00:01.45,54,87,turn on tap,turn-on,1,tap,0,['tap'],[0]\n"
        "P02_101_0,P02,P02_101,00:00:00.100,00:00:00.00,00:00:01.00,1,50,wash chopping board,wash,2,"
        "chopping board,2,['chopping board'],[2]\n"
        "P03_01_0,P03,P03_01,00:00:00.100,00:00:00.00,00:00:01.00,1,60,take plate,take,0,plate,1,['plate'],[1]\n")
    video(src / "EPIC-KITCHENS" / "P01" / "videos" / "P01_11.MP4")  # the download scripts' layout
    video(src / "EPIC-KITCHENS" / "P02" / "P02_101.MP4", shade=80)  # V-JEPA 2's "file format 1"; P03_01 is missing


def test_ek100_action_segments(tmp_path, tiny_rundir, capsys):
    _ek100_release(tmp_path / "rel")
    out = convert("ek100", tmp_path / "rel", tmp_path / "ek100", "--media-root", str(tmp_path / "rel" / "EPIC-KITCHENS"))
    assert lines(out / "val.jsonl") == [
        {"video": "P01/videos/P01_11.MP4", "start": 0.25, "end": 1.2, "label": "take plate"},
        {"video": "P01/videos/P01_11.MP4", "start": 0.9, "end": 1.45, "label": "turn on tap"},
        {"video": "P02/P02_101.MP4", "start": 0.0, "end": 1.0, "label": "wash chopping board"}]
    # actions: the (verb, noun) pairs of the file, the missing video's included, in (verb, noun) order
    assert (out / "classnames.txt").read_text().splitlines() == ["take plate", "turn on tap", "wash chopping board"]
    assert json.loads((out / "convert.json").read_text())["dropped_missing_media"] == 1
    cls = read_sets(out)["classification"]
    assert cls.labels == [0, 1, 2]
    seg = cls.visuals.segment(1)  # the set reads each item as its segment of the long video
    assert (seg.start, seg.end) == (0.9, 1.45)
    evaluates(tiny_rundir, out, capsys)


def test_ek100_verb_and_noun_targets_use_the_whole_taxonomy(tmp_path, capsys):
    _ek100_release(tmp_path / "rel")
    media = ("--media-root", str(tmp_path / "rel" / "EPIC-KITCHENS"))
    verbs = convert("ek100", tmp_path / "rel", tmp_path / "verbs", *media, "--target", "verb")
    assert (verbs / "classnames.txt").read_text().splitlines() == ["take", "turn on", "wash"]
    assert [x["label"] for x in lines(verbs / "val.jsonl")] == ["take", "turn on", "wash"]
    nouns = convert("ek100", tmp_path / "rel", tmp_path / "nouns", *media, "--target", "noun")
    assert (nouns / "classnames.txt").read_text().splitlines() == ["tap", "plate", "chopping board"]
    assert read_sets(nouns)["classification"].labels == [1, 0, 2]


def test_ek100_names_a_reversed_segment(tmp_path, capsys):
    _ek100_release(tmp_path / "rel", stop="00:00:00.10")
    err = _fails("ek100", tmp_path / "rel", tmp_path / "o", capsys)
    assert "EPIC_100_validation.csv:2: segment 0.25-0.1 s is empty or reversed" in err


# -- COIN -----------------------------------------------------------------------------------------------------

def _coin_release(src):
    def entry(cls, recipe, subset, steps):
        return {"class": cls, "recipe_type": recipe, "subset": subset, "duration": 1.5, "start": 0.0, "end": 1.5,
                "video_url": "https://www.youtube.com/embed/x",
                "annotation": [{"id": str(i), "segment": seg, "label": label} for i, seg, label in steps]}

    write_json(src / "COIN.json", {"database": {
        "LtRSn-ntcLY": entry("ReplaceCDDriveWithSSD", 1, "testing",
                             [(3, [0.0, 0.5], "take out the laptop CD drive"), (4, [0.5, 1.25], "tighten the screws")]),
        "0wJzVzcYAbg": entry("ChangeCarTire", 0, "testing", [(1, [0.25, 1.0], "jack up the car"),
                                                           (2, [1.0, 1.5], "tighten the screws")]),  # a shared name
        "trainonly01": entry("ChangeCarTire", 0, "training", [(1, [0.0, 1.0], "jack up the car")]),
        "missingvid1": entry("ChangeCarTire", 0, "testing", [(1, [0.0, 1.0], "jack up the car")])}})
    video(src / "videos" / "1" / "LtRSn-ntcLY.mp4")  # download_videos.py: videos/<recipe_type>/<id>.mp4
    video(src / "videos" / "0" / "0wJzVzcYAbg.mp4", shade=70)
    video(src / "videos" / "0" / "trainonly01.mp4", shade=140)


def test_coin_step_segments(tmp_path, tiny_rundir, capsys):
    _coin_release(tmp_path / "rel")
    out = convert("coin_step", tmp_path / "rel", tmp_path / "coin_step", "--media-root", str(tmp_path / "rel" / "videos"))
    assert lines(out / "val.jsonl") == [
        {"video": "1/LtRSn-ntcLY.mp4", "start": 0.0, "end": 0.5, "label": "take out the laptop CD drive"},
        {"video": "1/LtRSn-ntcLY.mp4", "start": 0.5, "end": 1.25, "label": "tighten the screws"},
        {"video": "0/0wJzVzcYAbg.mp4", "start": 0.25, "end": 1.0, "label": "jack up the car"},
        {"video": "0/0wJzVzcYAbg.mp4", "start": 1.0, "end": 1.5, "label": "tighten the screws"}]
    # step ids 1..4, "tighten the screws" (ids 2 and 4) one class
    assert (out / "classnames.txt").read_text().splitlines() == [
        "jack up the car", "tighten the screws", "take out the laptop CD drive"]
    assert read_sets(out)["classification"].labels == [2, 1, 0, 1]
    evaluates(tiny_rundir, out, capsys)


def test_coin_task_videos(tmp_path, tiny_rundir, capsys):
    _coin_release(tmp_path / "rel")
    out = convert("coin_task", tmp_path / "rel", tmp_path / "coin_task", "--media-root", str(tmp_path / "rel" / "videos"))
    assert lines(out / "val.jsonl") == [{"video": "1/LtRSn-ntcLY.mp4", "label": "replace CD drive with SSD"},
                                        {"video": "0/0wJzVzcYAbg.mp4", "label": "change car tire"}]
    assert (out / "classnames.txt").read_text().splitlines() == ["change car tire", "replace CD drive with SSD"]
    assert "a video of how to {}." in (out / "templates.txt").read_text().splitlines()
    evaluates(tiny_rundir, out, capsys)
    train = convert("coin_task", tmp_path / "rel", tmp_path / "train", "--media-root", str(tmp_path / "rel" / "videos"),
                    "--subset", "training")
    assert lines(train / "val.jsonl") == [{"video": "0/trainonly01.mp4", "label": "change car tire"}]


# -- CrossTask ------------------------------------------------------------------------------------------------

def _crosstask_release(src):
    (src / "annotations").mkdir(parents=True)
    (src / "tasks_primary.txt").write_text(
        "23521\nMake Jello Shots\nhttp://www.wikihow.com/Make-Jello-Shots\n3\npour water,pour jello powder,stir mixture\n\n"
        "53193\nMake Lemonade\nhttp://www.wikihow.com/Make-Lemonade\n2\nsqueeze lemon,pour water\n\n")
    (src / "videos_val.csv").write_text(
        "23521,jello000001,https://www.youtube.com/watch?v=jello000001\n"
        "53193,lemon000001,https://www.youtube.com/watch?v=lemon000001\n"
        "53193,lemon000404,https://www.youtube.com/watch?v=lemon000404\n")  # never downloaded
    (src / "annotations" / "23521_jello000001.csv").write_text("1,0.00,0.50\n3,0.75,1.40\n")
    (src / "annotations" / "53193_lemon000001.csv").write_text("2,0.10,1.00\n")
    video(src / "videos" / "jello000001.mp4")
    video(src / "videos" / "53193" / "lemon000001.mp4", shade=100)


def test_crosstask_step_segments(tmp_path, tiny_rundir, capsys):
    _crosstask_release(tmp_path / "rel")
    out = convert("crosstask_step", tmp_path / "rel", tmp_path / "ct_step", "--media-root", str(tmp_path / "rel" / "videos"))
    assert lines(out / "val.jsonl") == [
        {"video": "jello000001.mp4", "start": 0.0, "end": 0.5, "label": "pour water"},
        {"video": "jello000001.mp4", "start": 0.75, "end": 1.4, "label": "stir mixture"},
        {"video": "53193/lemon000001.mp4", "start": 0.1, "end": 1.0, "label": "pour water"}]
    assert (out / "classnames.txt").read_text().splitlines() == [
        "pour water", "pour jello powder", "stir mixture", "squeeze lemon"]
    assert read_sets(out)["classification"].labels == [0, 2, 0]
    evaluates(tiny_rundir, out, capsys)


def test_crosstask_task_videos(tmp_path, tiny_rundir, capsys):
    _crosstask_release(tmp_path / "rel")
    out = convert("crosstask_task", tmp_path / "rel", tmp_path / "ct_task", "--media-root", str(tmp_path / "rel" / "videos"))
    assert lines(out / "val.jsonl") == [{"video": "jello000001.mp4", "label": "Make Jello Shots"},
                                        {"video": "53193/lemon000001.mp4", "label": "Make Lemonade"}]
    assert (out / "classnames.txt").read_text().splitlines() == ["Make Jello Shots", "Make Lemonade"]
    assert json.loads((out / "convert.json").read_text())["dropped_missing_media"] == 1
    evaluates(tiny_rundir, out, capsys)


def test_crosstask_names_a_malformed_task_block(tmp_path, capsys):
    _crosstask_release(tmp_path / "rel")
    (tmp_path / "rel" / "tasks_primary.txt").write_text("23521\nMake Jello Shots\nhttp://x\n4\npour water,stir\n\n")
    err = _fails("crosstask_task", tmp_path / "rel", tmp_path / "o", capsys)
    assert "tasks_primary.txt:1: expected a block of task id, title, url, number of steps" in err
