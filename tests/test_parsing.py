import pytest
from hypothesis import given, strategies as st

from coe.agents.contracts import DistractorsReply, QuestionReply, RationaleReply
from coe.agents.parsing import numbered_list, prefixed
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


def test_a_text_reply_refuses_empty_wrong_type_and_long():
    with pytest.raises(ValueError, match="question is empty"):
        QuestionReply.parse({"question": "   "}, "")
    with pytest.raises(ValueError, match="valid string"):
        QuestionReply.parse({"question": 5}, "")
    with pytest.raises(ValueError, match="longer than 400"):
        QuestionReply.parse({"question": "x" * 401}, "")
    with pytest.raises(ValueError, match="lacks 'question'"):
        QuestionReply.parse(None, '{"other": "x"}')
    with pytest.raises(ValueError, match="no JSON"):
        QuestionReply.parse(None, "Which animal eats grass?")
    assert QuestionReply.parse(None, '{"question": " Why?\\n "}') == "Why?"
    assert QuestionReply.parse({"question": "x" * 400}, "") == "x" * 400


def test_a_question_that_only_restates_the_answer_is_refused():
    with pytest.raises(ValueError, match="restates the answer"):
        QuestionReply.parse({"question": "The Rabbit."}, "", context={"answer": "rabbit"})
    assert QuestionReply.parse({"question": "Which animal eats grass?"}, "", context={"answer": "rabbit"})


def test_list_reply_json_and_coe():
    assert DistractorsReply.parse({"distractors": ["a", "b"]}, "") == ["a", "b"]
    assert DistractorsReply.parse(None, "(1) a\n(2) b", "coe") == ["a", "b"]
    assert QuestionReply.parse(None, "Sure!\nQuestion: Which one?", "coe") == "Which one?"
    with pytest.raises(ValueError):
        DistractorsReply.parse({"distractors": "a, b"}, "")
    with pytest.raises(ValueError, match="not an object"):
        DistractorsReply.parse(["a", "b"], "")


@given(st.lists(st.text(alphabet=st.characters(whitelist_categories=("L",)), min_size=1, max_size=12),
                min_size=1, max_size=6))
def test_numbered_list_round_trip(items):
    text = "\n".join(f"({i}) {x}" for i, x in enumerate(items, 1))
    assert numbered_list(text) == items


def test_truncated_rationale_keeps_complete_sentences():
    from coe.agents.parsing import salvage_truncated
    cut = '{"rationale": "Copepods eat algae. The arrow points from algae to \\"cope'
    assert salvage_truncated(cut, "rationale") == "Copepods eat algae."
    assert RationaleReply.parse(None, cut) == "Copepods eat algae."
    with pytest.raises(ValueError):  # only the rationale's contract salvages a cut-off reply
        QuestionReply.parse(None, cut.replace("rationale", "question"))
    with pytest.raises(ValueError):  # nothing complete in it: the parse error stands
        RationaleReply.parse(None, '{"rationale": "no full stop')
    assert salvage_truncated('{"rationale": "no full stop', "rationale") is None
    assert salvage_truncated('{"other": "A. B', "rationale") is None
    assert salvage_truncated('{"rationale": "Complete. Not cut."}', "rationale") is None  # not cut off
    # the cut value need not be the first key
    assert salvage_truncated('{"question": "Why?", "rationale": "A. B', "rationale") == "A."
    assert RationaleReply.parse(None, '{"question": "Why?", "rationale": "A. B') == "A."
    # a rationale that says a sentence twice keeps it once
    assert RationaleReply.parse({"rationale": "It eats. It eats. Done."}, "") == "It eats. Done."


def test_repeated_sentences_are_dropped():
    from coe.agents.parsing import drop_repeated_sentences
    text = "Copepods eat algae. The arrow shows it. Copepods eat algae. The arrow shows it!"
    assert drop_repeated_sentences(text) == "Copepods eat algae. The arrow shows it."
