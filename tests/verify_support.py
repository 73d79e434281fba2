"""A scripted student for verification tests: replies come from functions of the prompt, never from a model."""

from __future__ import annotations

import re

from coe.plugins.llm.protocol import OptionScores
from tests.scripted_llm import ScriptedLLM


def task_of(request) -> str:
    text = request.messages[-1].content
    if "Proposed answer:" in text:
        return "judge"
    if "Which option is correct?" in text:
        return "answer"
    task = text.rsplit("</image_text>", 1)[-1]
    if "write the question" in task or "generate a question" in task:
        return "question"
    if "misconception" in task:
        return "notes"
    return "rationale" if "explain step by step" in task or "rationale for" in task else "distractors"


def listed_options(request) -> dict[str, str]:
    """label → option text of an answering prompt."""
    return dict(re.findall(r"^([A-Z])\. (.+)$", request.messages[-1].content, re.M))


def asked_question(request) -> str:
    return re.search(r"^Question: (.+)$", request.messages[-1].content, re.M).group(1)


def judged_option(request) -> str:
    return re.search(r"^Proposed answer: (.+)$", request.messages[-1].content, re.M).group(1)


class ScriptedStudent(ScriptedLLM):
    """``reply(request)`` answers generation; ``prefer(question, options) -> {option: weight}`` scores an
    answering prompt and ``yes(question, option) -> P(yes)`` a judgement."""

    def __init__(self, reply, *, prefer=None, yes=None) -> None:
        super().__init__(reply)
        self.prefer = prefer or (lambda q, options: {})
        self.yes = yes or (lambda q, option: 0.1)
        self.scored: list = []

    def score_options(self, request):
        self.scored.append(request)
        if task_of(request) == "judge":
            p = self.yes(asked_question(request), judged_option(request))
            probs = [p, 1 - p]
        else:
            options = listed_options(request)
            weights = self.prefer(asked_question(request), list(options.values()))
            raw = [weights.get(options[label], 0.1) for label in request.labels]
            probs = [w / sum(raw) for w in raw]
        return OptionScores(labels=list(request.labels), probs=probs, logprobs=[None] * len(probs),
                            method="logprobs", model=self.model_id)
