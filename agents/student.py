"""The answering agent: a student-like model takes an item — material (pixels for vision backends, image text
for text backends), question, options in shuffled order — and the backend scores every option
(``score_options``: token log-probabilities where the backend has them, else a constrained choice).
``solve`` gives its probability of each option, ``judge`` its P("Yes") that an option is a correct answer."""

from __future__ import annotations

import random

from coe.plugins.llm.protocol import Message, OptionScoreRequest, OptionScores, score_options
from coe.text import LETTERS

from .prompting import defang, load_prompt, material_block


class Meter:
    """Calls, seconds and usage of one verification, for its trace entry."""

    def __init__(self) -> None:
        self.calls, self.prompt_tokens, self.method = 0, 0, ""

    def score(self, llm, request: OptionScoreRequest) -> OptionScores:
        out = score_options(llm, request)
        self.calls += 1
        self.prompt_tokens += out.usage.prompt_tokens
        self.method = out.method
        return out


def _material(item, use_image: bool, llm) -> tuple[str, list]:
    """Pixels for a vision backend, image text otherwise; nothing of the picture when ``use_image`` is off."""
    vision = llm.supports_images and bool(item.images)
    if not use_image:
        return material_block(item.context, ""), []
    return material_block(item.context, "" if vision else item.image_text), (list(item.images) if vision else [])


def _messages(body: str, images: list) -> list[Message]:
    return [Message(role="system", content=load_prompt("student")), Message(role="user", content=body, images=images)]


def solve(
    llm,
    item,
    question: str,
    options: list[str],
    *,
    seed: int = 0,
    use_image: bool = True,
    orders: int = 2,
    meter: Meter | None = None,
) -> dict[str, float]:
    """The student's probability of each option, averaged over ``orders`` shuffles of the option list
    (the first seeded, then its reverse, then further seeded shuffles)."""
    meter = meter or Meter()
    material, images = _material(item, use_image, llm)
    rng = random.Random(seed)
    base = list(range(len(options)))
    rng.shuffle(base)
    count = max(1, orders)
    perms = [base, base[::-1]][:count]
    while len(perms) < count:
        p = list(base)
        rng.shuffle(p)
        perms.append(p)
    total = {o: 0.0 for o in options}
    for perm in perms:
        labels = list(LETTERS[: len(options)])
        listed = "\n".join(f"{labels[i]}. {defang(options[j])}" for i, j in enumerate(perm))
        body = load_prompt("answer").format(material=material, question=defang(question), options=listed)
        scores = meter.score(llm, OptionScoreRequest(messages=_messages(body, images), labels=labels))
        for i, j in enumerate(perm):
            total[options[j]] += scores.probs[i]
    return {o: round(p / count, 6) for o, p in total.items()}


def judge(llm, item, question: str, options: list[str], *, meter: Meter | None = None) -> dict[str, float]:
    """P("Yes") that each option is a correct answer to the question, judged one option at a time."""
    meter = meter or Meter()
    material, images = _material(item, True, llm)
    out = {}
    for option in options:
        body = load_prompt("judge").format(material=material, question=defang(question), option=defang(option))
        scores = meter.score(llm, OptionScoreRequest(messages=_messages(body, images), labels=["Yes", "No"]))
        out[option] = round(scores.prob("Yes"), 6)
    return out
