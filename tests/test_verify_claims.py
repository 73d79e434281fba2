"""What a reviewer is told to check when no model could confirm the key, from the verify step to the printed
item, ``--json``, the exports and the console's batch review."""

import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from coe.agents.verify import recheck
from coe.exports import ExportItem, render
from coe.generate import mcq_from_output
from coe.graphs import Services, graph
from coe.render import show_item
from tests.test_graph import StubReader
from tests.verify_support import ScriptedStudent, task_of

QUESTION = "Which organism is eaten by the fox in this food chain?"
CHECK = "Check in the picture: the rabbit is eaten by the fox in this food chain."
BASE = {"question_exemplars": 0, "question_samples": 0, "pool_selection": "model", "question_selection": "model",
        "n_distractors": 2, "write_notes": False}


def reply(request):
    task = task_of(request)
    if task == "question":
        return {"question": QUESTION}
    if task == "rationale":
        return {"rationale": "Arrows point from food to eater. The fox eats the rabbit."}
    return {"distractors": ["grass", "fox"]}


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "chain.png"
    Image.new("RGB", (64, 48), "white").save(path)
    return str(path)


def run(llm, retriever, picture, **settings):
    state = {"answer": "rabbit", "context": "Below is a food chain from a meadow.", "image_path": picture,
             "n_distractors": 2}
    return graph.invoke(state, config={"configurable": {**BASE, **settings}},
                        context=Services(llm=llm, retriever=retriever, image_reader=StubReader()))


def student(*, sees: bool) -> ScriptedStudent:
    llm = ScriptedStudent(reply, prefer=lambda q, options: {"rabbit": 0.9},
                          yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    llm.supports_images = sees
    return llm


def test_a_text_only_student_cannot_verify_a_claim_about_the_picture(fixture_index, picture):
    out = run(student(sees=False), fixture_index, picture)
    # the student is sure of the key, but it never saw the food chain: the item names what to check
    assert out["status"] == "unconfirmed" and out["reasons"] == []
    v = out["verification"]
    assert v["check"] == CHECK and v["blind"] and v["sees_picture"] is False
    assert v["claim"] == "the rabbit is eaten by the fox in this food chain."
    item = mcq_from_output(out, k=3, image=picture)
    assert item.check == CHECK and json.loads(item.model_dump_json())["check"] == CHECK

    console = Console(width=200, record=True)
    show_item(item, console)
    printed = console.export_text()
    assert "Unconfirmed" in printed and CHECK in printed and printed.count(CHECK) == 1

    export = ExportItem.from_mcq(item, id="q1")
    assert export.review_notes() == [CHECK]
    assert f"// review: {CHECK}" in render([export], "gift").decode()
    assert f"<!-- review: {CHECK} -->" in render([export], "moodle-xml").decode()
    assert json.loads(render([export], "jsonl").decode())["check"] == CHECK


def test_a_student_that_sees_the_picture_verifies_it(fixture_index, picture):
    out = run(student(sees=True), fixture_index, picture)
    assert out["status"] == "verified" and out["verification"]["check"] is None
    assert mcq_from_output(out, k=3, image=picture).check is None


def test_stored_verified_items_are_rechecked_before_accept_all():
    cup = {"question": "Is a cup a solid or a liquid?", "answer": "a solid", "distractors": ["a liquid", "a cup"],
           "status": "verified", "verification": {}}
    assert recheck(cup) == ['"a cup" is what the question asks about, not an answer to it']
    # written before the student recorded what it saw: a question about the picture counts as unseen
    city = {"question": "Which of these cities is marked on the map?", "answer": "Denver",
            "distractors": ["Boise", "Helena"], "image": "map.png", "status": "verified", "verification": {}}
    assert recheck(city) == ["Check in the picture: Denver is marked on the map."]
    assert recheck({**city, "verification": {"blind": False}}) == []


class LikeBank:
    """A bank whose nearest question is the same template about another place (cosine 0.7, below "the same
    question"), with a toy embedder: cities and organisms are two clusters, and a question with its names
    masked ("What is the capital of X?") is one point."""

    AXES = {"Lincoln": 0, "Omaha": 0, "Denver": 0, "Paris": 0, "copepod": 1, "What is the capital of X?": 3}

    def __init__(self):
        from coe.retrieval.exemplars import Exemplar
        self.exemplar = Exemplar(id="n1", question="What is the capital of Nebraska?", answer="Lincoln",
                                 distractors=["Omaha", "Denver"], score=0.7)
        self.similarity = self

    def embed(self, texts):
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.AXES.get(t, 2)] = 1.0
        return out

    def same_questions(self, question, *, min_similarity, **kw):
        return [self.exemplar] if "capital of" in question and self.exemplar.score >= min_similarity else []


def test_a_given_question_like_a_bank_template_is_refused_when_the_answer_does_not_fit():
    from coe.agents.generation import ItemInput
    from coe.agents.verify import check_given_question
    from coe.graphs.settings import GraphSettings

    llm = ScriptedStudent(lambda r: {}, yes=lambda q, o: 0.26)  # the student alone would let it through
    ok, _, why = check_given_question(llm, ItemInput(answer="copepod"), "What is the capital of France?",
                                      GraphSettings(), retriever=LikeBank())
    assert not ok and "Lincoln" in why
    ok, _, _ = check_given_question(llm, ItemInput(answer="Paris"), "What is the capital of France?",
                                    GraphSettings(), retriever=LikeBank())
    assert ok
    # another template is no evidence either way: the student decides
    ok, _, why = check_given_question(llm, ItemInput(answer="copepod"), "Why is the capital of France old?",
                                      GraphSettings(), retriever=LikeBank())
    assert ok and why == ""


def test_only_a_backend_that_sees_the_picture_solves_again_without_it(fixture_index, picture):
    def verify_entry(out):
        return next(e for e in out["trace"] if e.get("node") == "verify" and "calls" in e)

    blind = run(student(sees=False), fixture_index, picture)
    seeing = run(student(sees=True), fixture_index, picture)
    # the picture's text is all a text-only student read: solving without it says nothing about the picture
    assert blind["verification"]["text_only_key_prob"] is None and verify_entry(blind)["calls"] == 2 + 3
    assert seeing["verification"]["text_only_key_prob"] is not None and verify_entry(seeing)["calls"] == 2 + 3 + 2
    # forced on, a text-only backend solves without the picture's text too
    forced = run(student(sees=False), fixture_index, picture, text_only=True)
    assert forced["verification"]["text_only_key_prob"] is not None and verify_entry(forced)["calls"] == 7
