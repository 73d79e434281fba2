from hypothesis import example, given, settings, strategies as st

from coe.agents.validation import (clean_option, fill_from_exemplars, is_placeholder, normalize,
                                   validate_distractors)
from coe.retrieval.exemplars import Exemplar


def test_normalize_ignores_case_punctuation_articles_whitespace():
    assert normalize("  The Grizzly-Bear! ") == normalize("grizzly bear") == "grizzly bear"
    assert normalize("an owl") == normalize("Owl.")


def test_valid_list_passes():
    v = validate_distractors(["wolf", "moose", "a snowy owl"], "grizzly bear", 3)
    assert v.valid and v.kept == ["wolf", "moose", "a snowy owl"] and not v.problems


def test_each_problem_is_reported():
    v = validate_distractors(["Grizzly bear.", "wolf", "The wolf", "option B", "", "none of the above"],
                             "grizzly bear", 3)
    assert not v.valid
    text = v.feedback()
    assert "is the correct answer" in text
    assert "repeats another option" in text
    assert "placeholder" in text
    assert "expected exactly 3" in text
    assert v.kept == ["wolf"]


def test_wrong_count_is_invalid_even_if_each_is_fine():
    assert not validate_distractors(["wolf", "moose"], "bear", 3).valid
    assert not validate_distractors(["wolf", "moose", "fox", "lynx"], "bear", 3).valid


def test_non_text_items_are_rejected():
    assert not validate_distractors(["wolf", 3, None], "bear", 3).valid


def test_list_markers_are_stripped():
    assert clean_option("(B) moose") == "moose"
    assert clean_option('"wolf"') == "wolf"
    assert clean_option("2. a fox") == "a fox"


def test_placeholders():
    for p in ["Answer one", "option A", "All of the above", "none of these", "C", "", "  ", "N/A"]:
        assert is_placeholder(p), p
    for ok in ["wolf", "Ohio", "a balance", "3 meters"]:
        assert not is_placeholder(ok), ok


def _ex(i, answer, distractors):
    return Exemplar(id=str(i), question="q", answer=answer, distractors=distractors)


def test_fill_uses_compatible_exemplar_options_only():
    exemplars = [_ex(1, "5 meters", ["The sentence is long and not a number at all here."]),
                 _ex(2, "owl", ["hawk", "grizzly bear", "a ruler"]),
                 _ex(3, "snake", ["mouse"])]
    out, filled = fill_from_exemplars(["wolf"], "grizzly bear", 3, exemplars)
    assert out == ["wolf", "hawk", "a ruler"]
    assert filled == ["hawk", "a ruler"]
    assert validate_distractors(out, "grizzly bear", 3).valid


def test_fill_may_fall_short_when_exemplars_lack_options():
    out, filled = fill_from_exemplars([], "yes", 2, [_ex(1, "owl", ["hawk"])])
    assert out == [] and filled == []


messy = st.lists(st.one_of(
    st.text(max_size=30),
    st.sampled_from(["Bear", "the bear", "BEAR!", "option A", "none of the above", "", "wolf", "Wolf.",
                     "(1) moose", "lynx", "a lynx"]),
    st.integers(), st.none()), max_size=8)


@settings(max_examples=300, deadline=None)
@given(messy, st.integers(min_value=1, max_value=5))
@example(["wolf", "lynx"], 2)  # a valid list, so the accepted case is always checked
def test_validation_never_accepts_an_invalid_list(items, n):
    v = validate_distractors(items, "bear", n)
    norms = [normalize(d) for d in v.kept]
    sound = (len(v.kept) == n == len(items) and len(set(norms)) == n and normalize("bear") not in norms
             and not any(is_placeholder(d) for d in v.kept))
    assert sound or not v.valid, (items, n, v)
    assert len(v.kept) <= n
