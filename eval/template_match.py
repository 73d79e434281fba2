"""Whether a generated question is the gold question's template, and whether it gives the key away.

- ``template_exact``: equal to the gold question after ``normalize`` (case, punctuation, articles, spaces).
- ``template_near``: the same template with different slot fillers. ScienceQA writes the question proper on
  its first line and any passage or list on the following lines, so only first lines are compared, after
  masking the key, every number (digits, or words up to twelve) and every capitalised word that does not
  start a sentence (the names that fill a template: "What is the capital of Utah?" and "… of Ohio?" match;
  "Select the bird." and "Select the fish." do not, since a common noun changes what is asked).
  Exact implies near.
- ``states_key``: the question contains the key as a whole normalised word or phrase. Some gold questions
  do too ("Is a pencil a solid or a liquid?"), so ``states_key_gold`` is scored beside it as the reference.
"""

from __future__ import annotations

import re

from coe.agents.cues import contains_phrase
from coe.agents.validation import normalize

# Placeholders are plain lowercase words so that ``normalize`` keeps them.
_KEY, _NAME, _NUMBER = "qqkey", "qqname", "qqnum"
_SENTENCE_END = (".", "?", "!", ":")
_NUMBER_WORDS = set("zero one two three four five six seven eight nine ten eleven twelve".split())


def _mask_key(text: str, answer: str) -> str:
    words = normalize(answer).split()
    if not words:
        return text
    # Matched on the raw text so that the capitalisation of the remaining words is still there to read.
    pattern = r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)"
    return re.sub(pattern, f" {_KEY} ", text, flags=re.IGNORECASE)


def template_mask(question: str, answer: str) -> str:
    """The normalised first line with the key, numbers and names replaced by placeholders."""
    first = (question or "").strip().split("\n", 1)[0]
    tokens = _mask_key(first, answer).split()
    out = []
    for i, tok in enumerate(tokens):
        starts_sentence = i == 0 or tokens[i - 1].endswith(_SENTENCE_END)
        if any(ch.isdigit() for ch in tok) or normalize(tok) in _NUMBER_WORDS:
            out.append(_NUMBER)
        elif tok.lstrip("\"'(“‘[")[:1].isupper() and not starts_sentence:
            out.append(_NAME)
        else:
            out.append(tok)
    return normalize(" ".join(out))


def states_key(question: str | None, answer: str) -> bool:
    return contains_phrase(normalize(question or "", articles=True), answer)


def template_scores(question: str | None, gold: str, answer: str) -> dict[str, float]:
    """Per-item template scores of a generated question (``None`` when none came back: all zero)."""
    if not (question or "").strip():
        return {"template_exact": 0.0, "template_near": 0.0, "states_key": 0.0,
                "states_key_gold": float(states_key(gold, answer))}
    exact = normalize(question) == normalize(gold)
    near = exact or template_mask(question, answer) == template_mask(gold, answer)
    return {"template_exact": float(exact), "template_near": float(near),
            "states_key": float(states_key(question, answer)), "states_key_gold": float(states_key(gold, answer))}
