"""Eval sets from Hugging Face tables (bench/eval/sets/hf.py): parquet files and save_to_disk folders read
into the same sets as the JSON Lines layouts, evaluated to the same metrics, offline, with errors that name
the file, the row and the column."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from PIL import Image

from bench.data.video import read_clip, write_video
from bench.eval.sets.disk import DatasetError, disk_set, limit
from bench.eval.sets.hf import TableBytes
from bench.eval.sets.kinds import ChoiceSet, ClassificationSet, RetrievalSet

SHADES = [0, 60, 120, 180]  # four 16x16 images, told apart by their grey level
QUESTIONS = [  # (image, question, answer, category): POPE's layout, two questions an image
    (0, "is there a cat?", "yes", "random"), (0, "is there a dog?", "no", "adversarial"),
    (1, "is there a car?", "no", "random"), (1, "is there a bus?", "yes", "popular"),
    (2, "is there a cup?", "yes", "adversarial"), (2, "is there a pen?", "no", "random"),
    (3, "is there a hat?", "no", "popular"), (3, "is there a bag?", "yes", "adversarial"),
]
CLASSES = ["dark", "bright"]
CAPTIONS = [(0, "a black square"), (1, "a dark grey square"), (1, "a grey tile"), (2, "a light grey square"),
            (3, "a pale square"), (0, "nothing but black")]


def png(shade: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), shade, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def write_yaml(folder: Path, tasks: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    return folder


def image_feature(i: int) -> dict:
    return {"bytes": png(SHADES[i]), "path": None}


def pope_table() -> datasets.Dataset:
    """lmms-lab/POPE's columns (id, question_id, question, answer, image_source, image, category)."""
    return datasets.Dataset.from_list(
        [{"id": str(j), "question_id": str(j), "question": q, "answer": a, "image_source": f"img{i}",
          "image": image_feature(i), "category": c} for j, (i, q, a, c) in enumerate(QUESTIONS)],
        features=datasets.Features({"id": datasets.Value("string"), "question_id": datasets.Value("string"),
                                    "question": datasets.Value("string"), "answer": datasets.Value("string"),
                                    "image_source": datasets.Value("string"), "image": datasets.Image(),
                                    "category": datasets.Value("string")}))


def table_folder(root: Path) -> Path:
    """vqa from parquet (two files), classification from a save_to_disk folder (a ClassLabel), retrieval from
    parquet with raw image bytes (a binary column, one caption a row)."""
    (root / "data").mkdir(parents=True)
    pope = pope_table()
    pope.select(range(5)).to_parquet(str(root / "data" / "test-00000-of-00002.parquet"))
    pope.select(range(5, 8)).to_parquet(str(root / "data" / "test-00001-of-00002.parquet"))
    datasets.Dataset.from_dict(
        {"img": [image_feature(i) for i in range(4)], "label": [0, 0, 1, 1]},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}),
    ).save_to_disk(str(root / "cls"))
    datasets.Dataset.from_dict({"png": [png(SHADES[i]) for i, _ in CAPTIONS], "sentence": [c for _, c in CAPTIONS]}
                               ).to_parquet(str(root / "caps.parquet"))
    return write_yaml(root, {
        "vqa": {"format": "parquet", "data": "data/test-*.parquet", "candidates": ["yes", "no"],
                "columns": {"image": "image", "question": "question", "answer": "answer", "kind": "category"}},
        "classification": {"format": "hf", "data": "cls", "columns": {"image": "img"}, "templates": ["a {} square."]},
        "retrieval": {"format": "parquet", "data": "caps.parquet", "columns": {"image": "png", "caption": "sentence"}},
    })


def jsonl_folder(root: Path) -> Path:
    """The same sets in the JSON Lines layouts (docs/data.md), the images as PNG files."""
    for i, shade in enumerate(SHADES):
        (root / "img").mkdir(parents=True, exist_ok=True)
        (root / "img" / f"{i}.png").write_bytes(png(shade))

    def jsonl(name: str, rows: list[dict]) -> None:
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    jsonl("q.jsonl", [{"image": f"img/{i}.png", "question": q, "candidates": ["yes", "no"], "answer": a, "kind": c}
                      for i, q, a, c in QUESTIONS])
    jsonl("cls.jsonl", [{"image": f"img/{i}.png", "label": CLASSES[i // 2]} for i in range(4)])
    jsonl("caps.jsonl", [{"image": f"img/{i}.png", "caption": c} for i, c in CAPTIONS])
    (root / "classnames.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "templates.txt").write_text("a {} square.\n")
    return write_yaml(root, {"vqa": {"annotations": "q.jsonl"}, "retrieval": {"annotations": "caps.jsonl"},
                             "classification": {"annotations": "cls.jsonl", "classnames": "classnames.txt",
                                                "templates": "templates.txt"}})


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: the tables are read from local files only."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def same_clips(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(a.clip(i), b.clip(i)) for i in range(len(a)))


def test_tables_read_into_the_sets_the_jsonl_layout_gives(tmp_path, no_network):
    tables, files = table_folder(tmp_path / "tables"), jsonl_folder(tmp_path / "files")
    q, ref = disk_set("vqa", "pope", tables, 2, 16), disk_set("vqa", "pope", files, 2, 16)
    assert isinstance(q, ChoiceSet) and len(q) == 8 and len(q.visuals) == 4  # questions about one image share it
    for field in ("visual", "questions", "candidates", "answers", "kinds"):
        assert list(getattr(q, field)) == list(getattr(ref, field)), field
    assert same_clips(q.visuals, ref.visuals)
    assert isinstance(q.visuals.entries[0][0], TableBytes) and "test-00000-of-00002.parquet, row 0, column 'image'" \
        in str(q.visuals.entries[0][0])
    c, cref = disk_set("classification", "c", tables, 2, 16), disk_set("classification", "c", files, 2, 16)
    assert isinstance(c, ClassificationSet) and list(c.class_names) == CLASSES  # from the ClassLabel feature
    assert list(c.labels) == list(cref.labels) == [0, 0, 1, 1] and list(c.templates) == list(cref.templates)
    assert same_clips(c.visuals, cref.visuals)
    r, rref = disk_set("retrieval", "r", tables, 2, 16), disk_set("retrieval", "r", files, 2, 16)
    assert isinstance(r, RetrievalSet) and list(r.texts) == list(rref.texts) and list(r.text_video) == list(rref.text_video)
    assert r.n_videos == 4 and same_clips(r.visuals, rref.visuals)  # rows of one image merged, as JSON Lines lines are
    cut = limit(q, 3)
    assert len(cut) == 3 and len(cut.visuals) == 2 and cut.visuals.identity() != q.visuals.identity()
    assert same_clips(cut.visuals, limit(ref, 3).visuals)


def test_identity_is_the_bytes_wherever_the_table_lives(tmp_path):
    """The feature cache knows clips from bytes by their sha256: the same images in a save_to_disk folder, or
    in a parquet file moved elsewhere, share an entry; another image does not."""
    a = table_folder(tmp_path / "a")
    pope_table().save_to_disk(str(tmp_path / "saved"))
    b = write_yaml(tmp_path / "b", {"vqa": {"format": "hf", "data": str(tmp_path / "saved"),
                                            "candidates": ["yes", "no"], "columns": {"kind": "category"}}})
    qa, qb = disk_set("vqa", "p", a, 2, 16), disk_set("vqa", "p", b, 2, 16)
    assert qa.visuals.identity() == qb.visuals.identity()
    assert qa.visuals.identity() != disk_set("vqa", "p", a, 4, 16).visuals.identity()  # how they are read counts
    changed = pope_table().to_list()
    for row in changed[6:]:
        row["image"] = {"bytes": png(250), "path": None}  # the last image, another grey
    datasets.Dataset.from_list(changed, features=pope_table().features).save_to_disk(str(tmp_path / "saved2"))
    (b / "dataset.yaml").write_text((b / "dataset.yaml").read_text().replace("saved", "saved2"))
    assert disk_set("vqa", "p", b, 2, 16).visuals.identity() != qa.visuals.identity()


def table_rows(table: str) -> list[tuple[str, ...]]:
    """The printed table's rows without the set column: (task, metric, value, chance)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    return [(r[0], *r[2:]) for r in rows[1:]]


def test_a_table_set_evaluates_to_the_metrics_of_its_jsonl_folder(tmp_path, tiny_rundir, capsys, no_network):
    """python -m bench.eval on the tables and on the same data as files and JSON Lines: the same metrics, to
    the printed digit, for every task the folder serves."""
    from bench.tools.evaluate import main

    got = {}
    for name, make in (("tables", table_folder), ("files", jsonl_folder)):
        folder = make(tmp_path / name)
        capsys.readouterr()
        assert main([str(tiny_rundir), "--size", "0", "--sets",
                     *(f"{t}={folder}" for t in ("vqa", "classification", "retrieval"))]) == 0
        got[name] = table_rows(capsys.readouterr().out)
    tasks = {r[0] for r in got["tables"]}
    assert tasks == {"vqa", "classification", "retrieval"} and not any("failed" in " ".join(r) for r in got["tables"])
    assert any(r[1].startswith("accuracy_adversarial") for r in got["tables"])  # POPE's category as the kind
    assert got["tables"] == got["files"]


def test_videos_as_bytes_or_as_paths(tmp_path):
    """A Video feature cell (mteb/MSR-VTT's inline mp4) reads as the file it was written from; a video id
    column reads the file `path_format` makes of it under media_root."""
    clips = {}
    for k in range(2):
        frames = np.full((6, 16, 16, 3), 30 * k, np.uint8)
        frames[:, :, :, 0] = (np.arange(6)[:, None, None] * 30) % 256
        write_video(tmp_path / "videos" / f"video{k}.mp4", frames, fps=4)
        clips[k] = read_clip(tmp_path / "videos" / f"video{k}.mp4", 3, 16)
    rows = [(0, "a clip"), (1, "another clip"), (0, "the first clip again")]
    datasets.Dataset.from_dict(
        {"video": [{"bytes": (tmp_path / "videos" / f"video{k}.mp4").read_bytes(), "path": None} for k, _ in rows],
         "caption": [c for _, c in rows]},
        features=datasets.Features({"video": datasets.Video(), "caption": datasets.Value("string")}),
    ).to_parquet(str(tmp_path / "inline.parquet"))
    datasets.Dataset.from_dict({"video_id": [f"video{k}" for k, _ in rows], "caption": [c for _, c in rows]}
                               ).to_parquet(str(tmp_path / "ids.parquet"))
    folder = write_yaml(tmp_path, {
        "captioning": {"format": "parquet", "data": "inline.parquet"},
        "retrieval": {"format": "parquet", "data": "ids.parquet", "columns": {"video": "video_id"},
                      "media_root": "videos", "path_format": "{}.mp4"},
    })
    cap = disk_set("captioning", "m", folder, 3, 16)
    assert [list(r) for r in cap.references] == [["a clip", "the first clip again"], ["another clip"]]  # merged a video
    assert all(np.array_equal(cap.visuals.clip(k), clips[k]) for k in range(2))
    ret = disk_set("retrieval", "m", folder, 3, 16)
    assert ret.visuals.entries == [(tmp_path / "videos" / "video0.mp4",), (tmp_path / "videos" / "video1.mp4",)]
    assert list(ret.text_video) == [0, 1, 0] and np.array_equal(ret.visuals.clip(1), clips[1])


def test_gqa_layout_images_from_a_second_table_and_a_filter(tmp_path):
    """lmms-lab/GQA: questions (id, imageId, question, answer, types{structural, ...}) name their image in a
    table of its own (id, image); `where` keeps the yes/no questions, a dotted column reads the struct."""
    (tmp_path / "instructions").mkdir()
    (tmp_path / "images").mkdir()
    qs = [("q0", "n1", "Is the sky dark?", "no", "verify"), ("q1", "n1", "What color is the sky?", "blue", "query"),
          ("q2", "n2", "Is it a cat or a dog?", "cat", "choose"), ("q3", "n2", "Are there both cups and pens?", "yes", "logical"),
          ("q4", "n3", "Is the cup red?", "yes", "verify")]
    datasets.Dataset.from_list([{"id": i, "imageId": img, "question": q, "answer": a,
                                 "types": {"structural": s, "semantic": "attr", "detailed": "x"}} for i, img, q, a, s in qs]
                               ).to_parquet(str(tmp_path / "instructions" / "testdev-00000-of-00001.parquet"))
    datasets.Dataset.from_dict({"id": ["n3", "n2", "n1", "n9"], "image": [image_feature(i) for i in (3, 2, 1, 0)]},
                               features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}),
                               ).to_parquet(str(tmp_path / "images" / "testdev-00000-of-00001.parquet"))
    folder = write_yaml(tmp_path, {"vqa": {
        "format": "parquet", "data": "instructions/testdev-*.parquet", "candidates": ["yes", "no"],
        "images": {"data": "images/testdev-*.parquet", "key": "id", "column": "image"},
        "columns": {"image": "imageId", "kind": "types.structural"}, "where": {"answer": ["yes", "no"]}}})
    q = disk_set("vqa", "gqa", folder, 2, 16)
    assert list(q.questions) == ["Is the sky dark?", "Are there both cups and pens?", "Is the cup red?"]
    assert list(q.answers) == [1, 0, 0] and list(q.kinds) == ["verify", "logical", "verify"]
    assert list(q.visual) == [0, 1, 2] and len(q.visuals) == 3  # the unused image n9 is never read
    assert [int(q.visuals.clip(v)[0, 0, 0, 0]) for v in range(3)] == [SHADES[1], SHADES[2], SHADES[3]]


@pytest.mark.parametrize("section, expected", [
    ({"columns": {"answer": "label"}}, r"test-00000-of-00002\.parquet: no column 'label' \(the vqa field 'answer', "
                                       r"named by .*dataset\.yaml: tasks\.vqa\.columns\.answer; the file's columns: id, "),
    ({"columns": {"image": "image", "kind": "category"}, "candidates": ["yes", "maybe"]},
     r"test-00000-of-00002\.parquet, row 1, column 'answer': 'no' is neither a candidate "
     r"\(\['yes', 'maybe'\]\) nor an index 0\.\.1"),
    ({"candidates": "options"}, r"no column 'options' \(the vqa field 'candidates', named by .*tasks\.vqa\.candidates"),
    ({"candidates": [True, False]}, r"tasks\.vqa\.candidates: .*quote them"),
    ({"format": "arrow"}, r"tasks\.vqa\.format: 'arrow' is not one of hf, parquet"),
    ({"data": "nothing/*.parquet"}, r"tasks\.vqa\.data: 'nothing/\*\.parquet' names no parquet file"),
    ({"columns": {"imgae": "image"}}, r"'imgae' is not a key of a table section .* nor a vqa field"),
    ({"where": {"category": ["none"]}}, r"tasks\.vqa: no rows that the where filter keeps"),
])
def test_errors_name_the_file_the_row_and_the_column(tmp_path, section, expected):
    folder = table_folder(tmp_path / "t")
    spec = yaml.safe_load((folder / "dataset.yaml").read_text())
    spec["tasks"]["vqa"].update(section)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DatasetError, match=expected):
        disk_set("vqa", "p", folder, 2, 16)


def test_media_paths_are_checked_and_bad_cells_named(tmp_path):
    datasets.Dataset.from_dict({"image": ["a.png", "missing.png"], "caption": ["x", "y"]}).to_parquet(str(tmp_path / "p.parquet"))
    (tmp_path / "a.png").write_bytes(png(10))
    folder = write_yaml(tmp_path, {"captioning": {"format": "parquet", "data": "p.parquet"},
                                   "streaming": {"format": "parquet", "data": "p.parquet"}})
    with pytest.raises(DatasetError, match=r"p\.parquet, row 1, column 'image': file .*missing\.png does not exist"):
        disk_set("captioning", "c", folder, 2, 16)
    with pytest.raises(DatasetError, match=r"tasks\.streaming: streaming sets are read from JSON Lines only"):
        disk_set("streaming", "s", folder, 2, 16)
    datasets.Dataset.from_dict({"image": [3, 4], "caption": ["x", "y"]}).to_parquet(str(tmp_path / "p.parquet"))
    with pytest.raises(DatasetError, match=r"p\.parquet, row 0, column 'image': expected image or video bytes, .* got 3"):
        disk_set("captioning", "c", folder, 2, 16)
    (tmp_path / "p.parquet").write_text("not parquet")
    with pytest.raises(DatasetError, match=r"tasks\.captioning\.data: .*p\.parquet cannot be read as parquet"):
        disk_set("captioning", "c", folder, 2, 16)
