"""Question candidates for an answer and their features, for the learned question ranker.

Candidates: the retrieved exemplars' questions (names carried over from exemplar to item, as the question
step does), the bank's questions asked with this very answer, and those asked with answers of its type.
Why the features should matter: a templated bank asks the same question of the same answer (P(question |
answer)); what the nearest exemplars ask is what the material is about (retrieval support); a question that
states its key, or asks for another kind of answer, is a bad item."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from coe.agents.candidates import adapt, word_map
from coe.agents.cues import contains_phrase
from coe.agents.validation import normalize
from coe.retrieval.answer_types import answer_type

from .bank import BankStats
from .features import ItemContext, per_thousand

QUESTION_SOURCES = ("exemplar", "answer", "type")
BY_ANSWER_LIMIT = 10
BY_TYPE_LIMIT = 10


@dataclass
class QuestionCandidate:
    text: str
    key: str
    sources: set[str] = field(default_factory=set)
    support: float = 0.0  # share of the retrieval score of the exemplars asking it
    same_answer: float = 0.0  # the same, counting only exemplars with this very answer
    best_rank: int = 99
    adapted: bool = False


def question_pool(
    answer: str, context: str, exemplars: list, stats: BankStats, *, exclude_ids: tuple[str, ...] = ()
) -> list[QuestionCandidate]:
    pool: dict[str, QuestionCandidate] = {}

    def add(text: str, source: str) -> QuestionCandidate | None:
        key = normalize(text)
        if not key:
            return None
        if key not in pool:
            pool[key] = QuestionCandidate(text=text.strip(), key=key)
        pool[key].sources.add(source)
        return pool[key]

    total = sum(max(e.score, 0.0) for e in exemplars) or 1.0
    target = normalize(answer)
    for rank, ex in enumerate(exemplars):
        mapping = word_map(ex.context, context) if ex.context and context else {}
        text = adapt(ex.question, mapping) if mapping else ex.question
        c = add(text, "exemplar")
        if c is None:
            continue
        share = max(ex.score, 0.0) / total
        c.support += share
        c.same_answer += share if normalize(ex.answer) == target else 0.0
        c.best_rank = min(c.best_rank, rank)
        c.adapted = c.adapted or text != ex.question
    by_answer, by_type = stats.questions(answer, exclude_ids)
    for q, _ in sorted(by_answer.items(), key=lambda kv: (-kv[1], kv[0]))[:BY_ANSWER_LIMIT]:
        add(stats.question_text.get(q, q), "answer")
    for q, _ in sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))[:BY_TYPE_LIMIT]:
        add(stats.question_text.get(q, q), "type")
    return list(pool.values())


def question_features(pool: list[QuestionCandidate], ctx: ItemContext) -> tuple[np.ndarray, list[str]]:
    by_answer, by_type = ctx.stats.questions(ctx.answer, ctx.exclude_ids)
    n_answer, n_type = sum(by_answer.values()), sum(by_type.values())
    per = per_thousand(ctx.stats.n - len(ctx.exclude_ids))
    answer_norm = normalize(ctx.answer)
    cols: dict[str, np.ndarray] = {
        "support": np.array([c.support for c in pool]),
        "same_answer_support": np.array([c.same_answer for c in pool]),
        "best_rank": np.array([c.best_rank for c in pool], float),
        "adapted": np.array([c.adapted for c in pool], float),
        "p_given_answer": np.array([by_answer.get(c.key, 0) / max(n_answer, 1) for c in pool]),
        "count_given_answer": np.array([math.log1p(by_answer.get(c.key, 0) * per) for c in pool]),
        "p_given_type": np.array([by_type.get(c.key, 0) / max(n_type, 1) for c in pool]),
        "answer_items_log": np.full(len(pool), math.log1p(n_answer * per)),
        "states_key": np.array(
            [contains_phrase(normalize(c.text, articles=True), ctx.answer) and c.key != answer_norm for c in pool],
            float,
        ),
        "question_words": np.array([len(c.key.split()) for c in pool], float),
        "key_type": np.full(
            len(pool),
            float(("boolean", "number", "quantity", "word", "phrase", "sentence").index(answer_type(ctx.answer))),
        ),
    }
    if ctx.embed is not None and pool:
        vecs = ctx.embed([c.text for c in pool] + [ctx.answer, ctx.material or ctx.answer])
        cols["sim_answer"] = vecs[:-2] @ vecs[-2]
        cols["sim_material"] = vecs[:-2] @ vecs[-1]
    else:
        cols["sim_answer"] = np.zeros(len(pool))
        cols["sim_material"] = np.zeros(len(pool))
    for s in QUESTION_SOURCES:
        cols[f"src_{s}"] = np.array([s in c.sources for c in pool], float)
    names = list(cols)
    x = np.column_stack([cols[n] for n in names]) if pool else np.zeros((0, len(names)))
    return x.astype(np.float64), names
