"""Converters of discriminative VQA releases (GQA, TallyQA, CLEVR, POPE) and of SugarCrepe++ (text-only hard
negatives), each on a fixture in the release's own schema: the lines written (candidates hold the answer and
are built as documented), the folder reads as evaluation reads it, and a tiny run evaluates on it."""

from __future__ import annotations

import json
from pathlib import Path

from convertkit import convert, evaluates, image, lines, read_sets, write_json

from bench.data.convert.__main__ import main as convert_main
from bench.data.convert.gqa import capped


def _gqa_question(image_id: str, question: str, answer: str, structural: str, detailed: str) -> dict:
    return {"imageId": image_id, "question": question, "answer": answer, "fullAnswer": answer, "isBalanced": True,
            "types": {"structural": structural, "semantic": "attr", "detailed": detailed}, "semantic": [], "entailed": []}


def _gqa_release(src):
    write_json(src / "questions1.2" / "testdev_balanced_questions.json", {
        "q1": _gqa_question("n1", "Is the sky dark?", "no", "verify", "verifyAttr"),
        "q2": _gqa_question("n1", "What color is the car?", "red", "query", "queryAttr"),
        "q3": _gqa_question("n2", "What color is the bus?", "blue", "query", "queryAttr"),
        "q4": _gqa_question("n2", "Is the table wooden or metallic?", "wooden", "choose", "chooseAttr"),
        "q5": _gqa_question("n2", "Is the cup on the left or the right?", "left", "choose", "choosePosition"),
        "q6": _gqa_question("n3", "Are there both cars and trucks?", "yes", "logical", "logicAnd"),  # n3.jpg is missing
        "q7": _gqa_question("n1", "Who is wearing the hat?", "man", "query", "relS"),
    })
    for i, n in enumerate(("n1", "n2")):
        image(src / "images" / f"{n}.jpg", shade=60 * i)


def test_gqa_candidates_by_type_and_all(tmp_path, tiny_rundir, capsys):
    _gqa_release(tmp_path / "gqa")
    media = ["--media-root", str(tmp_path / "gqa" / "images")]
    out = convert("gqa", tmp_path / "gqa", tmp_path / "out", *media)
    got = {r["question_id"]: r for r in lines(out / "testdev_balanced.jsonl")}
    assert sorted(got) == ["q1", "q2", "q3", "q4", "q5", "q7"] and "n3.jpg" in (out / "convert.json").read_text()
    assert got["q1"]["candidates"] == ["no", "yes"] and got["q1"]["kind"] == "verify"
    assert got["q2"]["candidates"] == got["q3"]["candidates"] == ["blue", "red"]  # the answers of queryAttr
    # a detailed type with one answer falls back to its structural type's answers (never yes/no)
    assert got["q4"]["candidates"] == got["q5"]["candidates"] == ["left", "wooden"]
    assert got["q7"]["candidates"] == ["blue", "man", "red"] and got["q7"]["image"] == "n1.jpg"
    assert all(r["answer"] in r["candidates"] for r in got.values())
    s = read_sets(out)["vqa"]
    assert len(s) == 6 and len(s.visuals) == 2 and sorted(set(s.kinds)) == ["choose", "query", "verify"]
    evaluates(tiny_rundir, out, capsys)

    every = convert("gqa", tmp_path / "gqa", tmp_path / "all", *media, "--candidates", "all", "--kind", "detailed")
    rows = lines(every / "testdev_balanced.jsonl")  # the vocabulary is the release's, the dropped q6's "yes" too
    assert {tuple(r["candidates"]) for r in rows} == {("blue", "left", "man", "no", "red", "wooden", "yes")}
    assert rows[0]["kind"] == "verifyAttr"
    capped_dir = convert("gqa", tmp_path / "gqa", tmp_path / "cap", *media, "--candidates", "all", "--max-candidates", "3")
    rows = lines(capped_dir / "testdev_balanced.jsonl")
    assert all(len(r["candidates"]) == 3 and r["answer"] in r["candidates"] for r in rows)
    assert rows == lines(convert("gqa", tmp_path / "gqa", tmp_path / "cap2", *media, "--candidates", "all",
                                 "--max-candidates", "3") / "testdev_balanced.jsonl")  # the same every time


def test_capped_candidates_keep_the_answer_and_order():
    vocab = [str(c) for c in range(16)]
    picks = {tuple(capped("7", vocab, 4, f"q{i}")) for i in range(50)}
    assert all("7" in p and len(p) == 4 and list(p) == sorted(p, key=int) for p in picks)
    assert len(picks) > 10  # the distractors vary with the question, not only with the answer
    assert capped("7", vocab, 0, "q") == vocab and capped("7", vocab, 16, "q") == vocab


def test_gqa_errors_name_the_file_and_question(tmp_path, capsys):
    write_json(tmp_path / "rel" / "testdev_balanced_questions.json", {"q9": {"imageId": "n1", "question": "?"}})
    assert convert_main(["gqa", "--src", str(tmp_path / "rel"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "testdev_balanced_questions.json: question 'q9' needs" in err and "'answer'" in err


def _tallyqa_release(src):
    write_json(src / "test.json", [
        {"image": "VG_100K_2/1.jpg", "image_id": 1, "question": "How many dogs are there?", "answer": 2,
         "issimple": True, "data_source": "imported_genome", "question_id": 11},
        {"image": "VG_100K/2.jpg", "image_id": 2, "question": "How many red cars are left of the bus?", "answer": 0,
         "issimple": False, "data_source": "amt", "question_id": 12},
        {"image": "VG_100K/2.jpg", "image_id": 2, "question": "How many windows are there?", "answer": 17,
         "issimple": True, "data_source": "imported_genome", "question_id": 13},
        {"image": "VG_100K/3.jpg", "image_id": 3, "question": "How many birds are flying?", "answer": 1,
         "issimple": False, "data_source": "amt", "question_id": 14},  # VG_100K/3.jpg is missing
    ])
    image(src / "VG_100K_2" / "1.jpg")
    image(src / "VG_100K" / "2.jpg", shade=90)


def test_tallyqa_counts_and_the_simple_complex_sets(tmp_path, tiny_rundir, capsys):
    _tallyqa_release(tmp_path / "rel")
    out = convert("tallyqa", tmp_path / "rel", tmp_path / "tallyqa")
    rows = lines(out / "test.jsonl")
    assert [(r["question_id"], r["answer"], r["kind"]) for r in rows] == [(11, "2", "simple"), (12, "0", "complex"),
                                                                          (13, "17", "simple")]
    assert all(r["candidates"] == [str(c) for c in range(18)] for r in rows)  # 0..15, up to the largest answer (17)
    assert read_sets(out)["vqa"].kinds == ["simple", "complex", "simple"]
    evaluates(tiny_rundir, out, capsys)
    simple = lines(convert("tallyqa_simple", tmp_path / "rel", tmp_path / "simple") / "test.jsonl")
    complex_ = lines(convert("tallyqa_complex", tmp_path / "rel", tmp_path / "complex") / "test.jsonl")
    assert [r["question_id"] for r in simple] == [11, 13] and [r["question_id"] for r in complex_] == [12]
    assert simple[0]["candidates"] == rows[0]["candidates"]  # the same candidates as in the whole set
    every = lines(convert("tallyqa", tmp_path / "rel", tmp_path / "all", "--candidates", "all") / "test.jsonl")
    assert every[0]["candidates"] == ["0", "1", "2", "17"]  # the file's answers, in numeric order


def _clevr_release(src):
    def q(n, image_index, question, answer, last=None):
        program = [{"function": "scene", "inputs": [], "value_inputs": []}]
        if last:
            program.append({"function": last, "inputs": [0], "value_inputs": []})
        return {"image_index": image_index, "image_filename": f"CLEVR_val_{image_index:06d}.png", "question_index": n,
                "question": question, "answer": answer, "question_family_index": 0, "split": "val",
                **({"program": program} if last else {})}

    write_json(src / "questions" / "CLEVR_val_questions.json", {"info": {"split": "val"}, "questions": [
        q(0, 0, "Are there any cubes?", "yes", "exist"),
        q(1, 0, "How many spheres are there?", "3", "count"),
        q(2, 1, "What color is the large cylinder?", "cyan", "query_color"),
        q(3, 1, "Is the cube the same material as the sphere?", "no", "equal_material"),
        q(4, 1, "Are there more cubes than spheres?", "yes", "greater_than"),
        q(5, 1, "What shape is the small thing?", "cube"),  # no program: the answer's family
        q(6, 2, "What size is the ball?", "large", "query_size"),  # CLEVR_val_000002.png is missing
    ]})
    image(src / "images" / "val" / "CLEVR_val_000000.png")
    image(src / "images" / "val" / "CLEVR_val_000001.png", shade=120)


def test_clevr_answer_families_and_question_types(tmp_path, tiny_rundir, capsys):
    _clevr_release(tmp_path / "CLEVR_v1.0")
    out = convert("clevr", tmp_path / "CLEVR_v1.0", tmp_path / "clevr")
    rows = lines(out / "val.jsonl")
    assert [r["kind"] for r in rows] == ["exist", "count", "query_attribute", "compare_attribute", "compare_integer", "shape"]
    assert rows[0]["candidates"] == rows[3]["candidates"] == ["no", "yes"]
    assert rows[1]["candidates"] == [str(c) for c in range(11)]
    assert rows[2]["candidates"] == ["blue", "brown", "cyan", "gray", "green", "purple", "red", "yellow"]
    assert rows[5]["candidates"] == ["cube", "cylinder", "sphere"] and rows[0]["image"] == "images/val/CLEVR_val_000000.png"
    assert all(r["answer"] in r["candidates"] for r in rows)
    assert len(read_sets(out)["vqa"].visuals) == 2
    evaluates(tiny_rundir, out, capsys)
    every = lines(convert("clevr", tmp_path / "CLEVR_v1.0", tmp_path / "all", "--candidates", "all") / "val.jsonl")
    assert every[0]["candidates"] == ["3", "cube", "cyan", "large", "no", "yes"]  # the split's answers


def test_clevr_rejects_an_answer_outside_its_vocabulary(tmp_path, capsys):
    write_json(tmp_path / "rel" / "CLEVR_val_questions.json",
               {"questions": [{"image_filename": "a.png", "question": "What color?", "answer": "pink"}]})
    assert convert_main(["clevr", "--src", str(tmp_path / "rel"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "CLEVR_val_questions.json: questions[0] needs" in err and "'pink'" in err


def _pope_release(src):
    (src / "output" / "coco").mkdir(parents=True)
    images = ["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg"]
    for split, labels in (("random", "yes no yes no"), ("popular", "yes no no no"), ("adversarial", "no yes yes no")):
        rows = [{"question_id": i, "image": images[i // 2], "text": f"Is there a {obj} in the image?", "label": label}
                for i, (obj, label) in enumerate(zip(("dog", "cat", "car", "bus"), labels.split()))]
        (src / "output" / "coco" / f"coco_pope_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i, name in enumerate(images):
        image(src / "val2014" / name, shade=100 * i)


def test_pope_splits_and_their_metrics(tmp_path, tiny_rundir, capsys):
    _pope_release(tmp_path / "POPE")
    out = convert("pope", tmp_path / "POPE", tmp_path / "pope", "--media-root", str(tmp_path / "POPE" / "val2014"))
    rows = lines(out / "pope.jsonl")
    assert [r["kind"] for r in rows] == ["random"] * 4 + ["popular"] * 4 + ["adversarial"] * 4
    assert rows[1] == {"image": "COCO_val2014_000000000001.jpg", "question": "Is there a cat in the image?",
                       "candidates": ["no", "yes"], "answer": "no", "kind": "random", "question_id": 1}
    assert len(read_sets(out)["vqa"].visuals) == 2  # six questions an image share its clip
    table = evaluates(tiny_rundir, out, capsys)
    records = [json.loads(x) for x in _records_file(table).read_text().splitlines()]
    (kept,) = _records_file(table).with_suffix(".predictions").glob(f"vqa__*{tmp_path.name}_pope.jsonl")
    _check_pope_records([r for r in records if r["task"] == "vqa"], lines(kept))
    one = convert("pope", tmp_path / "POPE", tmp_path / "adv", "--media-root", str(tmp_path / "POPE" / "val2014"),
                  "--splits", "adversarial")
    assert [(r["kind"], r["answer"]) for r in lines(one / "pope.jsonl")] == [("adversarial", a) for a in "no yes yes no".split()]


def _records_file(table: str) -> Path:
    return Path(next(x for x in table.splitlines() if x.startswith("records: ")).split(": ", 1)[1])


def _check_pope_records(records: list[dict], kept: list[dict]) -> None:
    """The recorded precision/recall/yes-ratio, recomputed from the kept choices (candidates [no, yes])."""
    value = {r["metric"]: r["value"] for r in records}
    for kind in ("", "_random", "_popular", "_adversarial"):
        rows = [r for r in kept if not kind or r["kind"] == kind[1:]]
        said = [r["chosen"] == 1 for r in rows]
        yes = [r["answer"] == 1 for r in rows]
        tp = sum(s and y for s, y in zip(said, yes))
        assert value[f"yes_ratio{kind}"] == 100 * sum(said) / len(rows)
        assert value[f"precision{kind}"] == (100 * tp / sum(said) if any(said) else 0)
        assert value[f"recall{kind}"] == 100 * tp / sum(yes)
        assert value[f"accuracy{kind}"] == 100 * sum(s == y for s, y in zip(said, yes)) / len(rows)


def _scpp_release(src):
    write_json(src / "data" / "swap_obj.json", [
        {"id": 0, "filename": "000000000001.jpg", "caption": "A man rides a horse on the beach.",
         "caption2": "On the beach, a horse is ridden by a man.", "negative_caption": "A horse rides a man on the beach."}])
    write_json(src / "data" / "replace_att.json", [
        {"id": 0, "filename": "000000000002.jpg", "caption": "A red car next to a tree.",
         "caption2": "Next to a tree is a red car.", "negative_caption": "A blue car next to a tree."},
        {"id": 1, "filename": "000000000003.jpg", "caption": "A small dog on a bed.",
         "caption2": "On a bed lies a small dog.", "negative_caption": "A large dog on a bed."}])


def test_sugarcrepepp_triplets_become_hard_negatives(tmp_path, tiny_rundir, capsys):
    _scpp_release(tmp_path / "scpp")
    assert convert_main(["sugarcrepepp", "--src", str(tmp_path / "scpp"), "--out", str(tmp_path / "o")]) == 1
    assert "replace_obj.json" in capsys.readouterr().err  # every category is expected unless --categories says
    out = convert("sugarcrepepp", tmp_path / "scpp", tmp_path / "scpp_out", "--categories", "replace_att,swap_obj")
    rows = lines(out / "hardneg.jsonl")
    assert rows[2] == {"anchor": "A man rides a horse on the beach.", "positive": "On the beach, a horse is ridden by a man.",
                       "negatives": ["A horse rides a man on the beach."], "kind": "swap_obj", "id": 0}
    assert [r["kind"] for r in rows] == ["replace_att", "replace_att", "swap_obj"]
    s = read_sets(out)["hardneg"]
    assert s.negatives[0] == ("A blue car next to a tree.",) and s.positives[1] == "On a bed lies a small dog."
    table = evaluates(tiny_rundir, out, capsys)
    assert "| hardneg | " in table and "accuracy_swap_obj" in table
