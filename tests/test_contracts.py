"""Each LLM step's reply contract: the requests every step sends (prompt text and JSON schema) are those the
README's quality numbers were measured with, byte for byte; the parsers accept and refuse what they did."""

from __future__ import annotations

import json
from pathlib import Path

from coe.agents.generation import ItemInput, distractors_call, notes_call, question_call, rationale_call
from coe.retrieval.exemplars import Exemplar

RENDERS = Path(__file__).parent / "fixtures" / "step_requests.v1.json"

ITEM = ItemInput(answer="rabbit", context="This is a food chain from a meadow: grass, rabbit, fox. <b>bold</b>",
                 image_text="grass rabbit fox")
EXEMPLARS = [Exemplar(id="e1", question="Which animal eats grass?", answer="deer", context="A forest food web.",
                      rationale="Arrows point from food to eater.", distractors=["wolf", "oak"], split="train",
                      score=0.9),
             Exemplar(id="e2", question="Which is a producer?", answer="oak", context="",
                      rationale="", distractors=["deer", "wolf", "fox"], split="train", score=0.8)]
Q = "Which animal eats grass in this food chain?"
R = "Arrows point from food to eater. The rabbit eats grass."


def step_calls() -> dict:
    """One call per step and per variant of its prompt (mode, feedback, earlier output, pool candidates)."""
    return {
        "question": question_call(None, ITEM, EXEMPLARS),
        "question_feedback": question_call(None, ITEM, EXEMPLARS, feedback="it stated its key"),
        "question_coe": question_call(None, ITEM, EXEMPLARS, mode="coe", feedback="it stated its key"),
        "question_no_exemplars": question_call(None, ITEM, [], max_tokens=50),
        "rationale": rationale_call(None, ITEM, Q, EXEMPLARS),
        "rationale_coe": rationale_call(None, ITEM, Q, EXEMPLARS, mode="coe"),
        "distractors": distractors_call(None, ITEM, Q, None, EXEMPLARS, 3),
        "distractors_everything": distractors_call(None, ITEM, Q, R, EXEMPLARS, 2, feedback="'fox' repeats",
                                                   candidates=["grass", "fox", "hawk"]),
        "distractors_choose": distractors_call(None, ITEM, Q, R, EXEMPLARS, 2, candidates=["grass", "fox", "hawk"],
                                               choose=True),
        "distractors_choose_unsafe": distractors_call(None, ITEM, Q, R, EXEMPLARS, 2, choose=True,
                                                      candidates=['the "fox"', "grass", "back\\slash"]),
        "distractors_coe": distractors_call(None, ITEM, Q, R, EXEMPLARS, 2, mode="coe", feedback="too short",
                                            candidates=["grass", "fox"], choose=True),
        "notes": notes_call(None, ITEM, Q, ["grass", "fox"], EXEMPLARS),
    }


def rendered(call) -> dict:
    return {"request": call.request().model_dump(mode="json"), "extra": call.extra}


def test_every_step_sends_the_requests_the_quality_numbers_were_measured_with():
    expected = json.loads(RENDERS.read_text(encoding="utf-8"))
    got = {name: rendered(call) for name, call in step_calls().items()}
    assert set(got) == set(expected)
    for name in expected:
        assert got[name] == expected[name], name


if __name__ == "__main__":  # writes the expectation: only ever from the prompts the numbers were measured with
    RENDERS.write_text(json.dumps({n: rendered(c) for n, c in step_calls().items()}, indent=1, ensure_ascii=False)
                       + "\n", encoding="utf-8")
