"""Question bank files read into exemplar records: coe's own exports, files written by independent tools
(gift-wrapper's GIFT, moodle-questions' Moodle XML), malformed questions with their positions, duplicates,
hostile text and XML that tries to reach outside the file."""

from __future__ import annotations

import json
import zipfile

import pytest
from coe.question_banks.importer import detect_format, parse_file
from coe.question_banks.records import ParsedQuestion, Problem, checked
from coe.exports import SUFFIXES, export

from coe.errors import InputError
from tests.test_exports import IMAGE, _items

try:
    from gift_wrapper.question import MultipleChoice as GiftWrapperMC
    from moodle_questions import MultipleChoiceQuestion, Quiz
except ImportError as exc:
    pytest.fail(f"an independent bank writer is missing ({exc}): pip install gift-wrapper moodle-questions",
                pytrace=False)


def read(path) -> list[ParsedQuestion | Problem]:
    data = path.read_bytes()
    return [checked(q) if isinstance(q, ParsedQuestion) else q for q in parse_file(data, detect_format(path, data))]


@pytest.mark.parametrize("fmt", ["moodle-xml", "gift", "qti21", "csv", "jsonl"])
def test_coe_exports_read_back_field_for_field(tmp_path, fmt):
    items = _items()  # one with a picture, one full of quotes, <, &, GIFT specials and non-ASCII, one bare
    got = read(export(items, fmt, tmp_path / f"bank{SUFFIXES[fmt]}"))
    assert [type(q) for q in got] == [ParsedQuestion] * len(items)
    for item, q in zip(items, got):
        assert (q.question, q.answer, sorted(q.distractors)) == (item.question, item.answer, sorted(item.distractors))
        assert q.rationale == (item.rationale or "")
    pictures = {"moodle-xml": 1, "qti21": 1}.get(fmt, 0)
    assert [len(q.images) for q in got] == [pictures, 0, 0]
    assert [image.data for image in got[0].images] == [IMAGE.read_bytes()] * pictures


def test_coe_aiken_reads_back_what_aiken_holds(tmp_path):
    items = [i for i in _items() if "\n" not in i.question]
    got = read(export(items, "aiken", tmp_path / "bank.aiken.txt"))
    assert [(q.question, q.answer, sorted(q.distractors)) for q in got] == \
        [(i.question, i.answer, sorted(i.distractors)) for i in items]
    assert [q.position for q in got] == ["line 1", "line 8"]


def test_gift_written_by_gift_wrapper(tmp_path):
    questions = [GiftWrapperMC("photosynthesis", "Which gas do plants <b>take in</b> for photosynthesis?",
                               {"perfect": "carbon dioxide", "wrong": ["oxygen", "nitrogen", "helium"]},
                               feedback="Plants take in CO<sub>2</sub> &amp; give off oxygen."),
                 GiftWrapperMC("élan", "Quel animal mange l'herbe ?", {"perfect": "le lapin", "wrong": ["le renard"]})]
    path = tmp_path / "wrapper.gift"
    path.write_text("$CATEGORY: $course$/biology\n\n" + "\n\n".join(q.gift for q in questions) + "\n", "utf-8")
    got = read(path)
    assert [(q.position, q.question, q.answer, q.distractors, q.rationale) for q in got] == [
        ("line 3", "Which gas do plants take in for photosynthesis?", "carbon dioxide",
         ["oxygen", "nitrogen", "helium"], "Plants take in CO2 & give off oxygen."),
        ("line 11", "Quel animal mange l'herbe ?", "le lapin", ["le renard"], "")]


def test_moodle_xml_written_by_moodle_questions(tmp_path):
    quiz = Quiz()
    q = MultipleChoiceQuestion(name="web", question_text="Which <i>organism</i> is a producer? 1 < 2 & é",
                               default_mark=1, general_feedback="Producers make their own food.")
    for fraction, text in ((0, "fox"), (100, "grass"), (0, "hawk")):
        q.add_answer(fraction, text, "feedback")
    quiz.add_question(q)
    quiz.save(str(tmp_path / "mq.xml"))
    (got,) = read(tmp_path / "mq.xml")
    assert (got.question, got.answer, got.distractors, got.rationale) == \
        ("Which organism is a producer? 1 < 2 & é", "grass", ["fox", "hawk"], "Producers make their own food.")


GIFT_WITH_PROBLEMS = """// a bank with every kind of trouble
::ok1:: What eats grass? {=rabbit ~fox ~hawk}

::tf:: Grass is a plant. {T}

::short:: Name a herbivore. {=rabbit =deer}

::two:: Pick the plants. {~%50%grass ~%50%moss ~fox}

::broken:: Which one is a bird? {=hawk ~fox

::ok2:: Which animal \\{hunts\\} at night\\: an owl? {
  =owl#Owls hunt at night.
  ~%-50%robin
  ~sparrow
  ####Owls are nocturnal.
}
"""


def test_gift_problems_are_reported_by_line_and_the_rest_go_on(tmp_path):
    path = tmp_path / "bank.gift"
    path.write_text(GIFT_WITH_PROBLEMS, "utf-8")
    got = read(path)
    good = [q for q in got if isinstance(q, ParsedQuestion)]
    assert [(q.position, q.question, q.answer, q.distractors) for q in good] == [
        ("line 2", "What eats grass?", "rabbit", ["fox", "hawk"]),
        ("line 12", "Which animal {hunts} at night: an owl?", "owl", ["robin", "sparrow"])]
    assert good[1].rationale == "Owls are nocturnal."
    problems = {(p.position, p.kind): p.reason for p in got if isinstance(p, Problem)}
    assert set(problems) == {("line 4", "skipped"), ("line 6", "skipped"), ("line 8", "skipped"),
                             ("line 10", "malformed")}
    assert "true/false" in problems[("line 4", "skipped")]
    assert "short-answer" in problems[("line 6", "skipped")]
    assert "partial credit" in problems[("line 8", "skipped")]
    assert "closing '}'" in problems[("line 10", "malformed")]


MOODLE_WITH_PROBLEMS = """<?xml version="1.0" encoding="UTF-8"?>
<quiz>
  <question type="category"><category><text>$course$/Top</text></category></question>
  <question type="truefalse"><questiontext format="html"><text>Is grass green?</text></questiontext>
    <answer fraction="100"><text>true</text></answer><answer fraction="0"><text>false</text></answer></question>
  <question type="multichoice"><questiontext format="html"><text><![CDATA[<p>Which is a <b>mammal</b>?</p>]]></text>
    </questiontext><answer fraction="100"><text>whale</text></answer><answer fraction="100"><text>bat</text></answer>
  </question>
  <question type="multichoice"><questiontext format="plain_text"><text>Which is a fish &amp; swims?</text></questiontext>
    <answer fraction="100" format="plain_text"><text>trout</text></answer>
    <answer fraction="-25" format="plain_text"><text>frog</text></answer></question>
  <question type="multichoice"><questiontext format="html"><text>Odd fraction?</text></questiontext>
    <answer fraction="lots"><text>a</text></answer><answer fraction="0"><text>b</text></answer></question>
  <question type="multichoice"><questiontext format="html"><text>Only the key?</text></questiontext>
    <answer fraction="100"><text>key</text></answer><answer fraction="0"><text>  <b>key</b> </text></answer></question>
</quiz>
"""


def test_moodle_problems_are_reported_by_question_number(tmp_path):
    path = tmp_path / "bank.xml"
    path.write_text(MOODLE_WITH_PROBLEMS, "utf-8")
    got = read(path)
    assert [(q.position, q.question, q.answer, q.distractors) for q in got if isinstance(q, ParsedQuestion)] == \
        [("question 4", "Which is a fish & swims?", "trout", ["frog"])]
    problems = {p.position: (p.kind, p.reason) for p in got if isinstance(p, Problem)}
    assert problems["question 2"] == ("skipped", "a truefalse question, not multiple choice")
    assert problems["question 3"][1].startswith("2 answers with fraction 100")
    assert problems["question 5"][0] == "malformed"
    assert problems["question 6"] == ("skipped", "no wrong option besides the correct answer")  # the key again
    assert "question 1" not in problems  # a category is not a question


def test_tabular_and_aiken_problems_name_their_lines(tmp_path):
    (tmp_path / "b.csv").write_text('question,answer,distractors\nWhat eats grass?,rabbit,"[""fox"", ""hawk""]"\n'
                                    'Multi\nline?,deer,wolf;bear\n,x,y\nBad,a,"[oops"\n', "utf-8")
    got = read(tmp_path / "b.csv")
    assert [(q.position, q.question, q.distractors) for q in got if isinstance(q, ParsedQuestion)] == \
        [("line 2", "What eats grass?", ["fox", "hawk"]), ("line 4", "line?", ["wolf", "bear"])]
    assert [(p.position, p.kind) for p in got if isinstance(p, Problem)] == \
        [("line 3", "malformed"), ("line 5", "malformed"), ("line 6", "malformed")]
    (tmp_path / "b.jsonl").write_text(json.dumps({"question": "Q?", "options": [
        {"text": "a", "correct": True}, {"text": "b", "correct": False}]}) + "\n{not json\n[1]\n", "utf-8")
    got = read(tmp_path / "b.jsonl")
    assert isinstance(got[0], ParsedQuestion) and got[0].answer == "a" and got[0].distractors == ["b"]
    assert [(p.position, p.kind) for p in got[1:]] == [("line 2", "malformed"), ("line 3", "malformed")]
    (tmp_path / "b.txt").write_text("What is 2+2?\nA. 3\nB. 4\nANSWER: B\n\nNo answer line?\nA. x\nB. y\n\n"
                                    "Which letter?\nA) x\nB) y\nANSWER: C\n", "utf-8")
    got = read(tmp_path / "b.txt")
    assert (got[0].answer, got[0].distractors) == ("4", ["3"])
    assert [(p.position, p.kind) for p in got[1:]] == [("line 6", "malformed"), ("line 13", "malformed")]


SECRET = "TOP-SECRET-CONTENTS"
XXE = """<?xml version="1.0"?>
<!DOCTYPE quiz [<!ENTITY leak SYSTEM "file://{path}">]>
<quiz><question type="multichoice"><questiontext format="html"><text>&leak;</text></questiontext>
<answer fraction="100"><text>a</text></answer><answer fraction="0"><text>b</text></answer></question></quiz>
"""
BOMB = """<?xml version="1.0"?>
<!DOCTYPE quiz [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<quiz><question type="multichoice"><questiontext><text>&b;</text></questiontext></question></quiz>
"""


def test_xml_entities_are_refused_and_never_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, "utf-8")
    (tmp_path / "xxe.xml").write_text(XXE.format(path=secret), "utf-8")
    with pytest.raises(InputError, match="declares XML entities") as caught:
        read(tmp_path / "xxe.xml")
    assert SECRET not in str(caught.value)
    (tmp_path / "bomb.xml").write_text(BOMB, "utf-8")
    with pytest.raises(InputError, match="declares XML entities"):
        read(tmp_path / "bomb.xml")
    item = XXE.format(path=secret).replace("<quiz>", '<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1">', 1)
    with zipfile.ZipFile(tmp_path / "pkg.zip", "w") as z:
        z.writestr("item.xml", item.replace("</quiz>", "</assessmentItem>"))
    got = read(tmp_path / "pkg.zip")
    assert [(p.kind, "declares XML entities" in p.reason) for p in got] == [("malformed", True)]
    assert SECRET not in repr(got)


def test_unreadable_files_are_one_line_errors(tmp_path):
    (tmp_path / "broken.xml").write_text("<quiz><question>", "utf-8")
    with pytest.raises(InputError, match=r"not well-formed XML \(line 1"):
        read(tmp_path / "broken.xml")
    (tmp_path / "latin1.gift").write_bytes("::q:: caf\xe9? {=a ~b}\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"not UTF-8 text \(line 1\)"):
        read(tmp_path / "latin1.gift")
    (tmp_path / "nocol.csv").write_text("text,answer\nq,a\n", "utf-8")
    with pytest.raises(InputError, match="no 'question' column"):
        read(tmp_path / "nocol.csv")


def test_options_that_differ_only_in_case_or_punctuation_stay(tmp_path):
    """Capitalization questions live on such options; only spacing makes two options the same."""
    (tmp_path / "caps.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"question": "Which greeting is correct for a letter?", "answer": "Dear Pablo,", "distractors": ["dear Pablo,"]},
        {"question": "Which is the key?", "answer": "red  fox", "distractors": [" red fox ", "Red fox"]}]), "utf-8")
    first, second = read(tmp_path / "caps.jsonl")
    assert (first.answer, first.distractors) == ("Dear Pablo,", ["dear Pablo,"])
    assert (second.answer, second.distractors) == ("red  fox", ["Red fox"])


def test_a_single_qti_item_file(tmp_path):
    from coe.exports import qti21

    item = _items()[1]
    (tmp_path / "item.xml").write_bytes(qti21.render_item(item))
    (got,) = read(tmp_path / "item.xml")
    assert (got.position, got.question, got.answer, sorted(got.distractors), got.rationale) == \
        ("item 1", item.question, item.answer, sorted(item.distractors), item.rationale)


def test_html_and_qti_markup_become_plain_text():
    from lxml import etree

    from coe.question_banks.html_text import element_text, html_to_text

    html = ('<?xml version="1.0" encoding="utf-8"?><p>Which <b>gas</b> do plants &amp; trees take in?</p>'
            "<script>alert(1)</script><!-- a note --><ul><li>CO<sub>2</sub></li><li>O<sub>2</sub></li></ul>a&nbsp;b")
    assert html_to_text(html) == "Which gas do plants & trees take in?\nCO2\nO2\na b"
    assert html_to_text("<!-- nothing else -->") == "" and html_to_text("a &lt; b<br>c") == "a < b\nc"
    qti = etree.fromstring('<itemBody xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1"><p>Pick one<!-- hidden -->'
                           "</p><choiceInteraction><simpleChoice>x</simpleChoice></choiceInteraction>tail</itemBody>")
    assert element_text(qti, {"p"}, {"choiceInteraction"}) == "Pick one\ntail"
