"""A question's template: its first line with the key, numbers and names masked, so "What is the capital of
Utah?" and "... of Ohio?" are one template (the question ranker's label; the evaluation's ``template_near``)."""

from __future__ import annotations

import re

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
