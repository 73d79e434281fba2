"""Every export format written for a few items and read back by code that is not ours.

Readers (the ``test`` extra): moodle-xml-parser (Moodle XML), ua-exam's GIFT parser, onyx2moodle's QTI 2.1
item parser and citolab-qti-convert (QTI package: manifest, references, upgrade). Aiken has no reader on
PyPI, so its file is held to the rules of Moodle's Aiken importer here; CSV and JSONL are read with the
standard library.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from coe.errors import InputError
from coe.exports import FORMATS, SUFFIXES, ExportItem, export
from coe.generate import MCQItem

try:
    from moodle_xml_parser.parser import parse_file as parse_moodle_xml
    from onyx2moodle.parser import parse_item as parse_qti_item
    from qti_convert import fix_package_references, upgrade_package
    from ua_exam.gift_parser import parse_gift_content
    from ua_exam.gift_parser import tokenize as gift_tokens
except ImportError as exc:
    pytest.fail(f"an export reader is missing ({exc}): pip install -e '.[test]'", pytrace=False)

IMAGE = Path(__file__).parent / "fixtures" / "mini_scienceqa" / "images" / "test" / "7" / "image.png"
HOSTILE_QUESTION = 'Which "quote" <b>bold</b> & &lt; a = b ~ c # d {e} f: g::h \\ i, é 中文?\nSecond line'


def _items() -> list[ExportItem]:
    with_image = ExportItem.from_mcq(
        MCQItem(question="Which animal is a predator in this food web?", answer="grizzly bear",
                distractors=["lichen", "brown lemming", "bilberry"], rationale="Grizzly bears eat other animals.",
                distractor_notes=["Lichen is a producer.", "Lemmings eat plants.", "Bilberry is a plant."],
                image=str(IMAGE), model="qwen-test", status="verified", difficulty="easy",
                exemplars=[{"id": "train-12", "score": 0.9}, {"id": "train-40", "score": 0.7}]),
        seed=7, tags=["unit:food-webs"])
    hostile = ExportItem.from_console(
        {"question": HOSTILE_QUESTION, "answer": 'x < y & "z" = 1 ~ 2',
         "distractors": ["{set}: #1 \\ back", "%50% of cells", "Ünïcödé 中文 & <i>"],
         "rationale": 'Because 1 < 2 & "x" = é\nnext line # {}', "variant": "Full CoE",
         "distractor_notes": ['note: <i> &amp; # { é 中文::\nline two', 'a "quoted" note', "plain note"],
         "status": "flagged", "reasons": ["answer not unique"], "model": "qwen-test", "exemplars": []},
        id="20250101T120000Z-0123456789ab")
    bare = ExportItem.build(id="bare", question="What is 2 + 2?", answer="4", distractors=["3", "5"])
    return [with_image, hostile, bare]


def _from_html(text: str) -> str:
    """Reader text in HTML back to plain text: our ``<br>`` is a line break."""
    return re.sub(r"<br\s*/?>", "\n", text)


def _img_free(text: str) -> str:
    return re.sub(r"<br><img [^>]*>$", "", text)


def test_moodle_xml_read_back(tmp_path):
    items = _items()
    out = export(items, "moodle-xml", tmp_path / "items.xml")
    questions = parse_moodle_xml(str(out))["multichoice"]
    assert len(questions) == len(items)
    for item, q in zip(items, questions):
        assert _from_html(_img_free(q.text_pre_parse)) == item.question
        assert q.single and q.shuffle_answers
        assert [o.answer for o in q.options] == [o.text for o in item.options()]
        assert [o.answer for o in q.options if o.score_fraction == 100] == [item.answer]
        assert _from_html(q.general_feedback) == (item.rationale or "")
        notes = {o.answer: _from_html(o.feedback) for o in q.options}
        assert notes == {o.text: o.feedback for o in item.options()}
    assert questions[1].options[[o.text for o in items[1].options()].index("%50% of cells")].score_fraction == 0


def test_moodle_xml_embeds_the_image_as_moodle_imports_it(tmp_path):
    items = _items()
    root = etree.parse(str(export(items, "moodle-xml", tmp_path / "items.xml"))).getroot()
    questions = root.findall("question")
    assert [q.get("type") for q in questions] == ["multichoice"] * len(items)
    files = questions[0].findall("questiontext/file")
    assert len(files) == 1 and files[0].get("encoding") == "base64" and files[0].get("path") == "/"
    assert base64.b64decode(files[0].text) == IMAGE.read_bytes()
    assert f'src="@@PLUGINFILE@@/{files[0].get("name")}"' in questions[0].findtext("questiontext/text")
    assert "/" not in files[0].get("name") and str(IMAGE.parent) not in etree.tostring(root, encoding="unicode")
    assert questions[1].findall("questiontext/file") == []
    for q in questions:  # what Moodle's importer needs of a multichoice question
        assert q.findtext("name/text") and q.find("questiontext").get("format") == "html"
        assert sum(a.get("fraction") == "100" for a in q.findall("answer")) == 1
    assert {t.text for t in questions[0].findall("tags/tag/text")} >= {"status:verified", "difficulty:easy",
                                                                       "model:qwen-test", "seed:7", "unit:food-webs"}


def _gift_blocks(text: str) -> list[dict]:
    """Options with their feedback and the general feedback of each question, from ua-exam's tokens
    (its parser drops feedback; its tokenizer keeps it, with GIFT's escapes undone)."""
    blocks, current, inside = [], None, False
    tokens = gift_tokens(text)
    i = 0
    while i < len(tokens):
        kind, value = tokens[i][0], tokens[i][1]
        if kind == "{":
            inside, current = True, {"options": [], "general": None}
        elif kind == "}":
            inside = False
            blocks.append(current)
        elif inside and kind in ("=", "~"):
            current["options"].append({"correct": kind == "=", "text": "", "feedback": None})
        elif inside and kind == "#" and [t[0] for t in tokens[i:i + 4]] == ["#"] * 4:
            current["general"] = ""
            i += 3
        elif inside and kind == "#":
            current["options"][-1]["feedback"] = ""
        elif inside and kind in ("TEXT", "%") and (current["options"] or current["general"] is not None):
            if current["general"] is not None:
                current["general"] += value
            elif current["options"][-1]["feedback"] is not None:
                current["options"][-1]["feedback"] += value
            else:
                current["options"][-1]["text"] += value
        i += 1
    return blocks


def _gift_text(value: str) -> str:
    # the reader undoes HTML entities before GIFT escapes, so the one written as `&\#37;` is left to undo
    return _from_html(value.strip().removeprefix("[html]")).replace("&#37;", "%")


def test_gift_read_back(tmp_path):
    items = _items()
    text = export(items, "gift", tmp_path / "items.gift.txt").read_text(encoding="utf-8")
    questions = parse_gift_content(text)
    blocks = _gift_blocks(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))
    assert len(questions) == len(blocks) == len(items)
    for item, q, block in zip(items, questions, blocks):
        assert q["type"] == "multiple_choice" and q["title"] == item.id
        assert _gift_text(q["text"]) == item.question
        assert [_gift_text(o["text"]) for o in q["options"]] == [o.text for o in item.options()]
        assert [_gift_text(o["text"]) for o in q["options"] if o["is_correct"]] == [item.answer]
        assert [_gift_text(o["feedback"] or "") for o in block["options"]] == [o.feedback for o in item.options()]
        assert _gift_text(block["general"] or "") == (item.rationale or "")
    assert f"// image: {IMAGE.name} not included" in text
    assert text.count("// image:") == 1


def test_qti21_package_read_back(tmp_path):
    items = _items()
    package = export(items, "qti21", tmp_path / "items.zip")
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(package).extractall(folder)

    manifest = etree.parse(str(folder / "imsmanifest.xml")).getroot()
    cp = {"cp": "http://www.imsglobal.org/xsd/imscp_v1p1"}
    resources = manifest.findall("cp:resources/cp:resource", cp)
    assert [r.get("type") for r in resources] == ["imsqti_item_xmlv2p1"] * len(items)
    for item, resource in zip(items, resources):
        parsed = parse_qti_item(folder / resource.get("href"))
        assert parsed.identifier == f"item-{item.id}"
        (interaction,) = parsed.interactions
        assert interaction.kind == "choice" and interaction.max_choices == 1
        choices = {c.identifier: html.unescape(_from_html(c.html)) for c in interaction.choices}
        assert choices == {o.letter: o.text for o in item.options()}
        (correct,) = parsed.response_decls[interaction.response_identifier].correct_values
        assert choices[correct] == item.answer
        feedback = {f.identifier: html.unescape(_from_html(re.sub(r"\s*</?p>\s*", "", f.html))) for f in parsed.feedback}
        expected = {o.letter: o.feedback for o in item.options() if o.feedback}
        assert feedback == ({"RATIONALE": item.rationale} if item.rationale else {}) | expected
        stem = parsed.body_xml.find("{http://www.imsglobal.org/xsd/imsqti_v2p1}p")
        assert "".join(stem.itertext()) == item.question.replace("\n", "")

    images = [f for f in zipfile.ZipFile(package).namelist() if f.startswith("images/")]
    assert len(images) == 1 and (folder / images[0]).read_bytes() == IMAGE.read_bytes()
    first = etree.parse(str(folder / resources[0].get("href"))).getroot()
    assert [i.get("src") for i in first.iter("{*}img")] == [images[0]]

    checked = fix_package_references(str(package), str(tmp_path / "checked.zip"))
    assert checked.unresolved == [] and checked.fixed == []
    upgraded = upgrade_package(str(package), str(tmp_path / "qti3.zip"))
    assert sorted(f for f in upgraded.files if f.endswith(".xml") and f != "imsmanifest.xml") == \
        sorted(r.get("href") for r in resources)


def _read_aiken(text: str) -> list[dict]:
    """Moodle's Aiken rules: a question line, option lines ``X. `` or ``X) ``, then ``ANSWER: X``."""
    out = []
    for block in text.strip().split("\n\n"):
        question, *lines, answer = block.split("\n")
        options = [re.match(r"^([A-Z])[.)] (.*)$", line).groups() for line in lines]
        out.append({"question": question, "options": dict(options),
                    "answer": re.fullmatch(r"ANSWER: ([A-Z])", answer).group(1)})
    return out


def test_aiken_read_back(tmp_path):
    items = _items()
    questions = _read_aiken(export(items, "aiken", tmp_path / "items.txt").read_text(encoding="utf-8"))
    assert len(questions) == len(items)
    for item, q in zip(items, questions):
        assert q["question"] == " ".join(item.question.split())
        assert q["options"] == {o.letter: o.text for o in item.options()}
        assert q["options"][q["answer"]] == item.answer


def test_aiken_refuses_a_question_it_cannot_hold(tmp_path):
    item = ExportItem.build(id="a", question="A. looks like an option", answer="x", distractors=["y"])
    with pytest.raises(InputError, match="Aiken cannot hold"):
        export([item], "aiken", tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()


def test_csv_and_jsonl_keep_every_field(tmp_path):
    items = _items()
    rows = list(csv.DictReader(io.StringIO(export(items, "csv", tmp_path / "i.csv").read_text("utf-8-sig"))))
    lines = export(items, "jsonl", tmp_path / "i.jsonl").read_text("utf-8").splitlines()
    assert len(rows) == len(lines) == len(items)
    for item, row, line in zip(items, rows, lines):
        record = json.loads(line)
        for data in (row, record):
            assert (data["id"], data["question"], data["answer"]) == (item.id, item.question, item.answer)
            assert data["correct"] == item.correct_option().letter
        assert json.loads(row["distractors"]) == record["distractors"] == item.distractors
        assert json.loads(row["distractor_notes"]) == record["distractor_notes"] == item.distractor_notes
        assert json.loads(row["reasons"]) == record["reasons"] == item.reasons
        assert row["status"] == record["status"] == item.status
        assert row["rationale"] == (record["rationale"] or "") == (item.rationale or "")
        assert row["prompt_version"] == record["provenance"]["prompt_version"] == item.provenance.prompt_version
        assert json.loads(row["exemplar_ids"]) == record["provenance"]["exemplar_ids"]
        assert {row[f"option_{o.letter}"] for o in item.options()} == {item.answer, *item.distractors}
        assert [o["text"] for o in record["options"]] == [o.text for o in item.options()]
    assert rows[0]["image"] == IMAGE.name and rows[0]["seed"] == "7"
    assert json.loads(rows[0]["exemplar_ids"]) == ["train-12", "train-40"]
    assert "variant:Full CoE" in json.loads(rows[1]["tags"])


def test_items_from_generate_and_console_carry_provenance():
    from coe.agents.prompting import PROMPT_VERSION

    with_image, hostile, _ = _items()
    assert with_image.provenance.prompt_version == hostile.provenance.prompt_version == PROMPT_VERSION
    assert with_image.provenance.model == "qwen-test" and with_image.status == "verified"
    assert with_image.id.startswith("item-") and with_image.id == _items()[0].id  # stable
    assert hostile.reasons == ["answer not unique"] and hostile.status == "flagged"
    assert len({o.letter for o in hostile.options()}) == 4
    assert [o.text for o in hostile.options()] == [o.text for o in hostile.options()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_writes_every_item(tmp_path, fmt):
    items = _items()
    out = export(items, fmt, tmp_path / f"items{SUFFIXES[fmt]}")
    data = out.read_bytes()
    names = zipfile.ZipFile(out).namelist() if fmt == "qti21" else []

    def written(item) -> bool:  # a QTI package holds a file per item; the other formats hold the answer
        word = item.answer.split()[0]
        if fmt == "qti21":
            return f"item-{item.id}.xml" in names
        return word.encode() in data or html.escape(word).encode() in data
    assert [item.id for item in items if not written(item)] == []
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_bad_input_is_one_line(tmp_path):
    items = _items()
    with pytest.raises(InputError, match="unknown export format 'pdf'; choose one of: moodle-xml"):
        export(items, "pdf", tmp_path / "x.pdf")
    with pytest.raises(InputError, match="share the id"):
        export([items[2], items[2]], "qti21", tmp_path / "x.zip")
    with pytest.raises(InputError, match="image not found"):
        export([items[0].model_copy(update={"image": str(tmp_path / "gone.png")})], "moodle-xml", tmp_path / "x.xml")
    with pytest.raises(InputError, match="cannot export item 'x y'"):
        ExportItem.build(id="x y", question="q", answer="a", distractors=["b"])
    with pytest.raises(InputError, match=r"distractors: Value error, contains the control character .\\x0b"):
        ExportItem.build(id="x", question="q", answer="a", distractors=["b", "c\x0b"])
    with pytest.raises(InputError, match="distractors"):
        ExportItem.from_console({"question": "q", "answer": "a", "distractors": []}, id="x")
    assert list(tmp_path.iterdir()) == []
