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

from coe.agents.cues import contains_phrase
from coe.agents.validation import normalize

from coe.ranking.templates import template_mask  # noqa: F401  (the template, shared with the question ranker)


def states_key(question: str | None, answer: str) -> bool:
    return contains_phrase(normalize(question or "", articles=True), answer)


def template_scores(question: str | None, gold: str, answer: str) -> dict[str, float]:
    """Per-item template scores of a generated question (``None`` when none came back: all zero)."""
    if question is None or not question.strip():
        return {
            "template_exact": 0.0,
            "template_near": 0.0,
            "states_key": 0.0,
            "states_key_gold": float(states_key(gold, answer)),
        }
    exact = normalize(question) == normalize(gold)
    near = exact or template_mask(question, answer) == template_mask(gold, answer)
    return {
        "template_exact": float(exact),
        "template_near": float(near),
        "states_key": float(states_key(question, answer)),
        "states_key_gold": float(states_key(gold, answer)),
    }
