"""Features of distractor candidates, one function per family, each returning named columns for one item.

The families and why they should matter:

* exemplar: a retrieved exemplar that asks the same kind of question usually offers the right option set;
  the closer the exemplar (score, rank), and the more of them agree, the likelier.
* bank: ScienceQA and teachers' banks are templated, so the options that stand beside the key elsewhere
  (count per 1,000 bank items, share of the key's items, PMI against the option's own frequency), the
  distractors the bank gives for this very question, and those it gives where the question's template (names
  and numbers masked) asks for this same key, are strong evidence, independent of what retrieval found.
* form: siblings look alike (answer type, length, shared prefix or suffix, singular/plural, digits, a
  capital letter, a final stop).
* material: an option the picture or context names is the one a student hesitates over.
* similarity: MiniLM similarity to the key (near, but not the same) and to the question (on topic).
* source: which generators offered it, and how many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from coe.agents.validation import normalize
from coe.retrieval.answer_types import TYPES, answer_type, compatible

from .bank import BankStats
from .candidates import SOURCES, PoolCandidate


@dataclass
class ItemContext:
    answer: str
    question: str
    material: str
    exemplars: list
    stats: BankStats
    exclude_ids: tuple[str, ...] = ()
    embed: Callable[[list[str]], np.ndarray] | None = None


def exemplar_family(pool: list[PoolCandidate], ctx: ItemContext) -> dict[str, np.ndarray]:
    rank = {e.id: r for r, e in enumerate(ctx.exemplars)}
    score = {e.id: max(e.score, 0.0) for e in ctx.exemplars}
    key, q = normalize(ctx.answer), normalize(ctx.question)
    same_answer = {e.id for e in ctx.exemplars if normalize(e.answer) == key}
    same_question = {e.id for e in ctx.exemplars if q and normalize(e.question) == q}
    top = max((c.heuristic for c in pool), default=0.0) or 1.0
    ids = [[i for i in c.exemplars if i in rank] for c in pool]
    return {
        "ex_heuristic": np.array([c.heuristic / top for c in pool]),
        "ex_count": np.array([len(set(i)) for i in ids], float),
        "ex_score_max": np.array([max((score[i] for i in x), default=0.0) for x in ids]),
        "ex_score_sum": np.array([sum(score[i] for i in set(x)) for x in ids]),
        "ex_best_rank": np.array([min((rank[i] for i in x), default=len(rank) + 5) for x in ids], float),
        "ex_same_answer": np.array([len(set(x) & same_answer) for x in ids], float),
        "ex_same_question": np.array([len(set(x) & same_question) for x in ids], float),
        "ex_adapted": np.array([c.adapted for c in pool], float),
    }


def bank_family(pool: list[PoolCandidate], ctx: ItemContext) -> dict[str, np.ndarray]:
    s, key = ctx.stats, normalize(ctx.answer)
    beside = s.beside(key, ctx.exclude_ids)
    key_freq = max(s.frequency(key, ctx.exclude_ids), 0)
    template, n_template = s.as_distractor(ctx.question, ctx.exclude_ids) if ctx.question else ({}, 0)
    n = max(s.n - len(ctx.exclude_ids), 1)
    freq = np.array([max(s.frequency(c.key, ctx.exclude_ids), 0) for c in pool], float)
    count = np.array([beside.get(c.key, 0) for c in pool], float)
    pmi = np.where(count > 0, np.log(np.maximum(count, 1) * n / (max(key_freq, 1) * np.maximum(freq, 1))), -5.0)
    tcount = np.array([template.get(c.key, 0) for c in pool], float)
    keyed, n_keyed = s.for_template_and_key(ctx.question, ctx.answer, ctx.exclude_ids) if ctx.question else ({}, 0)
    kcount = np.array([keyed.get(c.key, 0) for c in pool], float)
    per = per_thousand(n)
    return {
        "beside_count": count * per,
        "beside_share": count / max(key_freq, 1),
        "beside_pmi": pmi,
        "template_count": tcount * per,
        "template_share": tcount / max(n_template, 1),
        "template_items": np.full(len(pool), n_template * per),
        "keyed_count": kcount * per,
        "keyed_share": kcount / max(n_keyed, 1),
        "keyed_items": np.full(len(pool), n_keyed * per),
        "option_freq_log": np.log1p(freq * per),
        "key_freq_log": np.full(len(pool), math.log1p(key_freq * per)),
    }


def per_thousand(n_items: int) -> float:
    """Counts per 1,000 bank items: the rankers train on the train split alone and run on train+val (a third
    larger), so an absolute count would mean more at run time than it did in training."""
    return 1000.0 / max(n_items, 1)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def form_family(pool: list[PoolCandidate], ctx: ItemContext) -> dict[str, np.ndarray]:
    a = ctx.answer.strip()
    ak = normalize(a)
    want = answer_type(a)
    aw = set(ak.split())
    plural = lambda t: t.endswith("s") and not t.endswith("ss")  # noqa: E731
    digit = lambda t: any(ch.isdigit() for ch in t)  # noqa: E731
    cap = lambda t: t[:1].isupper()  # noqa: E731
    rows = []
    for c in pool:
        t, k = c.text.strip(), c.key
        ratio = max(len(k.split()), 1) / max(len(ak.split()), 1)
        cw = set(k.split())
        rows.append(
            (
                float(compatible(want, answer_type(t), strict=True)),
                float(answer_type(t) == want),
                abs(math.log(ratio)),
                abs(math.log(max(len(k), 1) / max(len(ak), 1))),
                _common_prefix(k, ak) / max(min(len(k), len(ak)), 1),
                _common_prefix(k[::-1], ak[::-1]) / max(min(len(k), len(ak)), 1),
                len(cw & aw) / max(len(cw | aw), 1),
                float(plural(k) == plural(ak)),
                float(digit(k) == digit(ak)),
                float(cap(t) == cap(a)),
                float(t.endswith(".") == a.endswith(".")),
            )
        )
    names = [
        "type_strict",
        "type_same",
        "words_log_ratio",
        "chars_log_ratio",
        "prefix_share",
        "suffix_share",
        "word_jaccard",
        "plural_agree",
        "digit_agree",
        "capital_agree",
        "stop_agree",
    ]
    arr = np.array(rows, float).reshape(len(pool), len(names))
    out = {n: arr[:, i] for i, n in enumerate(names)}
    out["key_type"] = np.full(len(pool), float(TYPES.index(want)))
    return out


def material_family(pool: list[PoolCandidate], ctx: ItemContext) -> dict[str, np.ndarray]:
    material = f" {normalize(ctx.material)} "
    question = f" {normalize(ctx.question)} "
    return {
        "in_material": np.array([f" {c.key} " in material for c in pool], float),
        "in_question": np.array([f" {c.key} " in question for c in pool], float),
    }


def similarity_family(pool: list[PoolCandidate], ctx: ItemContext) -> dict[str, np.ndarray]:
    if ctx.embed is None or not pool:
        return {"sim_key": np.zeros(len(pool)), "sim_question": np.zeros(len(pool))}
    vecs = ctx.embed([c.text for c in pool] + [ctx.answer, ctx.question or ctx.answer])
    opts, key, q = vecs[:-2], vecs[-2], vecs[-1]
    return {"sim_key": opts @ key, "sim_question": opts @ q}


def source_family(pool: list[PoolCandidate], ctx: ItemContext) -> dict[str, np.ndarray]:
    out = {f"src_{s}": np.array([s in c.sources for c in pool], float) for s in SOURCES}
    out["n_sources"] = np.array([len(c.sources) for c in pool], float)
    return out


FAMILIES = (exemplar_family, bank_family, form_family, material_family, similarity_family, source_family)


def features(pool: list[PoolCandidate], ctx: ItemContext) -> tuple[np.ndarray, list[str]]:
    """The item's feature matrix (one row per candidate) and the column names, in a fixed order."""
    cols: dict[str, np.ndarray] = {}
    for family in FAMILIES:
        cols.update(family(pool, ctx))
    names = list(cols)
    matrix = np.column_stack([cols[n] for n in names]) if pool else np.zeros((0, len(names)))
    return matrix.astype(np.float64), names


class EmbedCache:
    """MiniLM vectors per distinct text. Most candidates are the bank's own answers and questions, whose
    vectors the index already holds (``known``), so only new texts (adapted options, material terms) are
    encoded, in one batch per item with the plain embedder (the retriever's per-text query cache would
    encode them one at a time)."""

    def __init__(self, embedder, max_items: int = 200_000, known: dict[str, np.ndarray] | None = None):
        self.embedder = getattr(embedder, "embedder", embedder)  # unwrap the retriever's query cache
        self.max_items = max_items
        self.known = known or {}
        self.vecs: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.vecs and t not in self.known))
        if todo:
            if len(self.vecs) + len(todo) > self.max_items:
                self.vecs.clear()
            for t, v in zip(todo, self.embedder.embed(todo)):
                self.vecs[t] = np.asarray(v, dtype=np.float32)
        return np.stack([self.known[t] if t in self.known else self.vecs[t] for t in texts])


def index_vectors(retriever) -> dict[str, np.ndarray]:
    """Text → vector for every answer and question the retriever's in-memory banks hold."""
    out: dict[str, np.ndarray] = {}
    from coe.retrieval.memory_bank import InMemoryBank

    for bank, view in getattr(retriever, "views", {}).items():
        for field in ("answer", "question"):
            col = view.loaded(f"{bank}-{field}") if isinstance(view, InMemoryBank) else None
            if col is None:
                continue
            # a text field's document is its exemplar's field as the metadata holds it (``index.field_text``)
            for meta, vec in zip(col.metadatas, col.vectors):
                text = (meta or {}).get(field, "")
                if text and text not in out:
                    out[text] = vec
    return out
