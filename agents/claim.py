"""The claim an item's key makes, written out for the reviewer to check ("the copepod is the secondary
consumer in this food web"), when no model could confirm it — above all when the backend cannot see the
picture the question is about."""

from __future__ import annotations

import re

from coe.retrieval.answer_types import answer_type
from coe.text import one_line

# "Which (of the following|of these)? (NOUN)? VERB REST?" → "KEY VERB REST"
_WHICH = re.compile(
    r"^(?:which|what)(?:\s+of\s+(?:the\s+following|these|those))?"
    r"(?:\s+(?P<noun>[a-z'-]+(?:\s+[a-z'-]+)?))?"
    r"\s+(?P<verb>is|are|was|were|has|have|can|could|will|would|better\s+describes|describes|"
    r"best\s+describes|shows|contains|lives|eats)\s+(?P<rest>.+?)\s*\?$",
    re.I,
)
# "What is/are REST?" → "KEY is REST" ("What is the capital of Ohio?")
_WHAT_IS = re.compile(r"^(?:what|who)\s+(?P<verb>is|are|was|were)\s+(?P<rest>.+?)\s*\?$", re.I)
_ARTICLE = re.compile(r"^(a|an|the|this|that|these|those|his|her|its|their)\b", re.I)
_ABOUT_PICTURE = re.compile(
    r"\b(picture|image|diagram|map|photo|figure|food web|food chain|shown|highlighted|"
    r"marked|pictured|labeled|labelled|below|above|this|these)\b",
    re.I,
)


def _subject(key: str, noun: str | None) -> str:
    """The key as the subject of a sentence: "the copepod" when the question asks which organism, but
    "sample B" and "beaker 2" as they stand: a capital or a digit makes the key a label or a name."""
    k = key.strip().rstrip(".")
    plain = k[:1].islower() and not _ARTICLE.match(k) and answer_type(k) in ("word", "phrase")
    named = any(c.isupper() or c.isdigit() for c in k)
    return f"the {k}" if plain and noun and not named else k


def claim(question: str, key: str) -> str:
    """The statement the key makes as the answer to the question, ending with a full stop."""
    q = one_line(question)
    last = re.split(r"(?<=[.!])\s+", q)[-1]  # the question proper, after any lead-in sentences
    k = key.strip()
    m = _WHICH.match(last)
    if m and answer_type(k) != "sentence":
        noun = m.group("noun")
        if noun and noun.lower() in ("is", "are", "was", "were"):
            noun = None
        text = f"{_subject(k, noun)} {m.group('verb').lower()} {m.group('rest')}"
    elif (m := _WHAT_IS.match(last)) and answer_type(k) != "sentence":
        text = f"{_subject(k, None)} {m.group('verb').lower()} {m.group('rest')}"
    else:
        return f'the answer to "{q}" is "{k.rstrip(".")}".'
    return text[:1].lower() + text[1:] + "." if text[:1].isupper() and k[:1].islower() else text + "."


def about_picture(question: str) -> bool:
    """Whether the question is about what a picture shows (so only someone who sees it can confirm it)."""
    return bool(_ABOUT_PICTURE.search(question))


def check_line(question: str, key: str, *, picture: bool) -> str:
    """The reviewer's instruction: "Check in the picture: ..." when the claim is about the picture."""
    return f"Check in the picture: {claim(question, key)}" if picture else f"Check: {claim(question, key)}"
