import pytest
from hypothesis import given, strategies as st

from coe.agents.parsing import list_field, numbered_list, prefixed, text_field
from coe.plugins.llm.reply import parse_json_text


def test_numbered_list_shapes():
    assert numbered_list("(1) wolf\n(2) moose\n(3) lynx") == ["wolf", "moose", "lynx"]
    assert numbered_list("1. wolf 2. moose 3. lynx") == ["wolf", "moose", "lynx"]
    assert numbered_list("Distractors:\n(1) a red fox\n(2) snowy owl\n") == ["a red fox", "snowy owl"]
    assert numbered_list("- wolf\n- moose") == ["wolf", "moose"]


def test_prefixed():
    assert prefixed("Sure!\nQuestion: Which animal eats the lichen?", "Question") == \
        "Which animal eats the lichen?"
    assert prefixed("Which animal eats grass?", "Question") == "Which animal eats grass?"


def test_parse_json_text_with_fences_and_prose():
    assert parse_json_text('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_text('Here it is: {"a": [1, 2]} hope that helps') == {"a": [1, 2]}
    with pytest.raises(ValueError):
        parse_json_text("no json here")


def test_text_field_rejects_empty_wrong_type_and_long():
    with pytest.raises(ValueError):
        text_field({"question": "   "}, "", "question", "json", "Question", 100)
    with pytest.raises(ValueError):
        text_field({"question": 5}, "", "question", "json", "Question", 100)
    with pytest.raises(ValueError):
        text_field({"question": "x" * 101}, "", "question", "json", "Question", 100)
    with pytest.raises(ValueError):
        text_field(None, '{"other": "x"}', "question", "json", "Question", 100)
    assert text_field(None, '{"question": " Why?\\n "}', "question", "json", "Question", 100) == "Why?"


def test_list_field_json_and_coe():
    assert list_field({"distractors": ["a", "b"]}, "", "distractors", "json") == ["a", "b"]
    assert list_field(None, "(1) a\n(2) b", "distractors", "coe") == ["a", "b"]
    with pytest.raises(ValueError):
        list_field({"distractors": "a, b"}, "", "distractors", "json")


@given(st.lists(st.text(alphabet=st.characters(whitelist_categories=("L",)), min_size=1, max_size=12),
                min_size=1, max_size=6))
def test_numbered_list_round_trip(items):
    text = "\n".join(f"({i}) {x}" for i, x in enumerate(items, 1))
    assert numbered_list(text) == items


def test_truncated_rationale_keeps_complete_sentences():
    from coe.agents.parsing import salvage_truncated
    cut = '{"rationale": "Copepods eat algae. The arrow points from algae to \\"cope'
    assert salvage_truncated(cut, "rationale") == "Copepods eat algae."
    assert text_field(None, cut, "rationale", "json", "Rationale", 100, salvage=True) == "Copepods eat algae."
    with pytest.raises(ValueError):
        text_field(None, cut, "rationale", "json", "Rationale", 100)
    assert salvage_truncated('{"rationale": "no full stop', "rationale") is None
    assert salvage_truncated('{"other": "A. B', "rationale") is None
    assert salvage_truncated('{"rationale": "Complete. Not cut."}', "rationale") is None  # not cut off
    # the cut value need not be the first key
    assert salvage_truncated('{"question": "Why?", "rationale": "A. B', "rationale") == "A."


def test_repeated_sentences_are_dropped():
    from coe.agents.parsing import drop_repeated_sentences
    text = "Copepods eat algae. The arrow shows it. Copepods eat algae. The arrow shows it!"
    assert drop_repeated_sentences(text) == "Copepods eat algae. The arrow shows it."
