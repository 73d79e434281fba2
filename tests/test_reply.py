"""Reading a reply's JSON (``coe.plugins.llm.reply``): whole replies amid prose, and cut-off replies salvaged
on generated documents cut at every length."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from coe.plugins.llm.reply import CUT, cut_off_value, parse_json_text, repair_json, schema_data

_text = st.text(alphabet=st.characters(blacklist_characters=CUT[-1]), max_size=8)
_docs = st.recursive(st.none() | st.booleans() | st.integers() | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=12).filter(lambda d: isinstance(d, (dict, list)) and d)


@settings(max_examples=300, deadline=None)
@given(_docs, st.booleans(), st.data())
def test_any_cut_keeps_no_marker_and_a_whole_reply_round_trips(doc, ascii_only, data):
    text = json.dumps(doc, ensure_ascii=ascii_only)
    cut = data.draw(st.integers(1, len(text)))
    repaired = repair_json(text[:cut])
    assert repaired is None or CUT[-1] not in json.dumps(repaired, ensure_ascii=False)
    assert repair_json(text) == doc


def test_cut_off_value_only_for_a_value_the_cut_fell_into():
    assert cut_off_value('{"q": "Why?", "rationale": "It rains. The gro', "rationale") == "It rains. The gro"
    assert cut_off_value('{"rationale": "It rains.", "q": "Wh', "rationale") is None
    assert cut_off_value('{"rationale": "It rains.", "n": 3', "rationale") is None
    assert cut_off_value("not json at all", "rationale") is None


def test_a_whole_reply_is_read_amid_prose_and_quoting_slips():
    assert parse_json_text('Sure! {"a": "x"} and then {"b": 2}') == {"a": "x"}  # the first of several
    assert parse_json_text("{'distractors': ['owl', 'hawk',]}") == {"distractors": ["owl", "hawk"]}
    assert parse_json_text('Here: [{"a": 1}, {"b": 2}] as asked') == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("text", ['{"d": ["x", "y", "z', '{"a": "half a sent', '{"a": 1, "b": tr', "[" * 5000,
                                  "no json here"])
def test_a_cut_off_or_missing_reply_is_refused(text):
    with pytest.raises(ValueError):
        parse_json_text(text)
    assert schema_data(text, {"type": "object"}) is None

