"""Generate several, keep the best: question candidates and distractor candidates ranked with the answering agent.

Retrieval already gets much right (ScienceQA is templated: the nearest exemplars' questions and options are
often exactly right), so the model adds what it is good at on top of it: it proposes, and it judges.

* Questions: the model's own (greedy, plus sampled ones) and the exemplars' questions adapted to the item.
  Each gets ``P(yes)`` that the key answers it given the material, plus the retrieval support of its template
  (how strongly the retrieved exemplars ask exactly it); a question that states its key is dropped.
* Distractors: the candidate pool (its ranking is the prior) plus the model's choices (a vote), re-ranked by
  how much probability each draws from the student while the key stays its answer, steered by the
  requested difficulty."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from .candidates import adapt, restates_answer, word_map
from .cues import question_cues
from .fit import answer_fit, misfit_reason
from .validation import normalize
from .student import Meter, judge, solve

# Weights of the ranking terms (checked on ScienceQA val; see the evaluation report).
SUPPORT_WEIGHT = 0.6
MODEL_QUESTION_BONUS = 0.05
POOL_WEIGHT = 1.0
VOTE_WEIGHT = 0.35
DRAW_WEIGHT = {"easy": -0.3, "medium": 0.3, "hard": 0.6}
ALTERNATIVE_BAND = 0.25


class QuestionCandidate(BaseModel):
    text: str
    source: str  # "model", "model-sampled" or an exemplar id
    support: float = 0.0  # share of retrieval score of the exemplars asking this question
    p_yes: float | None = None
    score: float | None = None
    dropped: str | None = None


def exemplar_questions(exemplars: list, answer: str, context: str, limit: int = 4) -> list[QuestionCandidate]:
    """The retrieved exemplars' questions, names carried over from exemplar to item (by the exemplar-context →
    item-context word map), one per distinct question, with the retrieval support of each."""
    total = sum(max(e.score, 0.0) for e in exemplars) or 1.0
    by_key: dict[str, QuestionCandidate] = {}
    for ex in exemplars:
        mapping = word_map(ex.context, context) if ex.context and context else {}
        text = adapt(ex.question, mapping) if mapping else ex.question
        key = normalize(text)
        if key not in by_key:
            by_key[key] = QuestionCandidate(text=text, source=ex.id)
        by_key[key].support += max(ex.score, 0.0) / total
    ranked = sorted(by_key.values(), key=lambda c: -c.support)
    return ranked[:limit]


def rank_questions(
    llm,
    item,
    candidates: list[QuestionCandidate],
    *,
    seed: int = 0,
    retriever=None,
    exclude_ids: list[str] | None = None,
    exclude_splits: list[str] | None = None,
) -> list[QuestionCandidate]:
    """Score every candidate and sort best first; dropped ones (stating the key, restating the answer, or a
    question the bank answers with other kinds of things than the key) last."""
    seen: set[str] = set()
    unique = []
    for c in candidates:
        if normalize(c.text) not in seen:
            seen.add(normalize(c.text))
            unique.append(c)
    meter = Meter()
    for c in unique:
        flags = [q.message for q in question_cues(c.text, item.answer) if q.severity == "flag"]
        if flags or restates_answer(c.text, item.answer) or normalize(c.text) == normalize(item.answer):
            c.dropped = flags[0] if flags else "restates the answer"
            continue
        if retriever is not None:
            fit = answer_fit(retriever, c.text, item.answer, exclude_ids=exclude_ids, exclude_splits=exclude_splits)
            if fit.misfit:
                c.dropped = misfit_reason(fit, item.answer)
                continue
        c.p_yes = judge(llm, item, c.text, [item.answer], meter=meter)[item.answer]
        bonus = MODEL_QUESTION_BONUS if c.source.startswith("model") else 0.0
        c.score = round(c.p_yes + SUPPORT_WEIGHT * c.support + bonus, 6)
    ranked = sorted(unique, key=lambda c: (c.score is None, -(c.score or 0.0)))
    return _alternative(ranked, seed, lambda c: c.score)


def _alternative(ranked: list, seed: int, score) -> list:
    """Seed 0 keeps the best first; another seed moves another near-best candidate (within ALTERNATIVE_BAND of
    the best score) to the front, so asking again gives a different item of about the same quality."""
    if not seed or not ranked or score(ranked[0]) is None:
        return ranked
    best = score(ranked[0])
    near = [c for c in ranked if score(c) is not None and score(c) >= best - ALTERNATIVE_BAND]
    chosen = near[seed % len(near)]
    return [chosen, *[c for c in ranked if c is not chosen]]


class DistractorChoice(BaseModel):
    chosen: list[str]
    ranking: list[dict[str, Any]]
    calls: int = 0


def rank_distractors(
    llm,
    item,
    question: str,
    pool: list[Any],
    votes: list[str],
    n: int,
    *,
    difficulty: str = "medium",
    exclude: list[str] | None = None,
    seed: int = 0,
    limit: int = 10,
) -> DistractorChoice:
    """``pool``: ``Candidate`` objects best first (their ``score`` is the prior); ``votes``: the options the
    model chose or wrote. Returns the best ``n`` and the full ranking for the trace."""
    excluded = {normalize(x) for x in exclude or []} | {normalize(item.answer)}
    prior: dict[str, float] = {}
    texts: dict[str, str] = {}
    top = max((c.score for c in pool), default=1.0) or 1.0
    for c in pool[:limit]:
        key = normalize(c.text)
        if key and key not in excluded and key not in prior:
            prior[key], texts[key] = c.score / top, c.text
    voted = set()
    for v in votes:
        key = normalize(v)
        if key and key not in excluded and not restates_answer(v, item.answer):
            voted.add(key)
            if key not in prior:
                prior[key], texts[key] = 0.3, v  # written by the model, not in the pool
    if not prior:
        return DistractorChoice(chosen=[], ranking=[])
    meter = Meter()
    keys = list(prior)
    probs = solve(llm, item, question, [item.answer, *[texts[k] for k in keys]], seed=seed, orders=1, meter=meter)
    # The draw is relative to an even spread, so the term does not shrink as the list grows.
    even = 1.0 / (len(keys) + 1)
    w = DRAW_WEIGHT.get(difficulty, DRAW_WEIGHT["medium"])
    rows: list[dict[str, Any]] = []
    for k in keys:
        draw = probs[texts[k]]
        score = POOL_WEIGHT * prior[k] + VOTE_WEIGHT * (k in voted) + w * math.tanh(draw / even - 1.0)
        rows.append(
            {
                "option": texts[k],
                "prior": round(prior[k], 4),
                "vote": k in voted,
                "draw": round(draw, 4),
                "score": round(score, 4),
            }
        )
    rows.sort(key=lambda r: -r["score"])
    chosen = rows[:n]
    if seed and len(rows) > n:  # another alternative: one chosen option gives way to a near-best other
        near = [r for r in rows[n:] if r["score"] >= rows[n - 1]["score"] - ALTERNATIVE_BAND]
        if near:
            chosen = list(chosen)
            chosen[n - 1 - (seed - 1) % n] = near[(seed - 1) % len(near)]
    return DistractorChoice(chosen=[r["option"] for r in chosen], ranking=rows, calls=meter.calls)
