"""Each LLM step's reply contract: the requests every step sends (prompt text and JSON schema) are those the
README's quality numbers were measured with, byte for byte; the parsers accept and refuse what they did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
        # byte for byte: the transformers plugins and OpenAI's "none" mode spell the schema out in the prompt
        assert json.dumps(got[name]) == json.dumps(expected[name]), name


if __name__ == "__main__":  # writes the expectation: only ever from the prompts the numbers were measured with
    RENDERS.write_text(json.dumps({n: rendered(c) for n, c in step_calls().items()}, indent=1, ensure_ascii=False)
                       + "\n", encoding="utf-8")


def test_generation_templates_leave_the_reply_format_to_the_contract():
    from coe.agents.prompting import PROMPT_DIR

    for stage in ("question", "rationale", "distractors", "notes"):
        for path in PROMPT_DIR.glob(f"{stage}.*.txt"):
            text = path.read_text(encoding="utf-8")
            assert text.count("{reply_format}") == 1, path.name
            assert "JSON" not in text and "Respond" not in text, path.name


def test_the_schema_and_the_reply_format_follow_the_contract():
    from coe.agents.contracts import distractors_reply, notes_reply

    three = distractors_reply(3, ["grass", "fox", "hawk", "owl"])
    spec = three.json_schema()["properties"]["distractors"]
    assert (spec["minItems"], spec["maxItems"]) == (3, 3)
    assert spec["items"] == {"type": "string", "enum": ["grass", "fox", "hawk", "owl"]}
    assert three.reply_format() == 'Reply with JSON: {"distractors": [...3 strings...]}'
    assert three.reply_format("coe") == 'Respond with one distractor per line, numbered "(1) ...", "(2) ...".'
    assert notes_reply(4).reply_format() == 'Reply with JSON: {"notes": [...4 strings...]}'
    assert "enum" not in distractors_reply(2).json_schema()["properties"]["distractors"]["items"]


def test_the_distractors_count_and_pool_are_the_decoders_the_notes_count_is_checked():
    """Distractors are judged after parsing (validation.validate_distractors), which tells the model what
    was wrong; notes have no such step, so their contract checks the count itself."""
    from coe.agents.contracts import distractors_reply, notes_reply

    two_of_pool = distractors_reply(2, ["grass", "fox"])
    assert two_of_pool.parse({"distractors": ["grass", "hawk", "owl"]}, "") == ["grass", "hawk", "owl"]
    with pytest.raises(ValueError, match="valid string"):
        two_of_pool.parse({"distractors": ["grass", 7]}, "")
    notes = notes_reply(2)
    assert notes.parse({"notes": [" Thinks  foxes\neat grass. ", "x" * 400]}, "") == ["Thinks foxes eat grass.",
                                                                                    "x" * 300]
    with pytest.raises(ValueError, match="at least 2"):
        notes.parse({"notes": ["Thinks foxes eat grass."]}, "")
    with pytest.raises(ValueError, match="a note is empty"):
        notes.parse({"notes": ["Thinks foxes eat grass.", " "]}, "")
    with pytest.raises(ValueError, match="repeat each other"):
        notes.parse({"notes": ["Same idea.", "same idea"]}, "")


def test_every_schema_compiles_to_a_llamacpp_grammar():
    from llama_cpp import llama_grammar as grammar  # part of the default install (coe[llamacpp])

    schemas = {name: call.schema for name, call in step_calls().items() if call.schema is not None}
    assert schemas  # the steps whose reply a schema constrains
    for name, schema in schemas.items():
        gbnf = grammar.json_schema_to_gbnf(json.dumps(schema))
        assert "root ::=" in gbnf, name
        for option in schema["properties"].get("distractors", {}).get("items", {}).get("enum", []):
            assert f'\\"{option}\\"' in gbnf, (name, option)
