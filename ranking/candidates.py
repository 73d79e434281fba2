"""The wide candidate pool for one item's distractors, each candidate with the sources that offered it.

Sources: ``exemplar`` (the retrieved exemplars' options, adapted to the item as the heuristic pool does),
``beside`` (options that stand beside the key in some bank item, leave-one-out), ``template`` (the bank's
distractors for this very question, and where its template asks for this same key), ``material`` (terms the
item's context and image text name that the bank knows as options), ``wordnet`` (sister terms of a common-noun
key, that the bank knows as options) and ``model`` (the model's own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coe.agents.candidates import candidate_pool, restates_answer
from coe.agents.validation import clean_option, is_placeholder, normalize
from coe.retrieval.answer_types import answer_type, compatible

from .bank import BankStats
from .sisters import sister_terms

SOURCES = ("exemplar", "beside", "template", "material", "wordnet", "model")
POOL_LIMIT = 30  # candidates the ranker scores per item
EXEMPLAR_LIMIT = 40
BESIDE_LIMIT = 15
TEMPLATE_LIMIT = 12
MATERIAL_LIMIT = 8
WORDNET_LIMIT = 6


@dataclass
class PoolCandidate:
    text: str
    key: str
    sources: set[str] = field(default_factory=set)
    heuristic: float = 0.0  # the heuristic pool's score (0 when not offered by it)
    exemplars: list[str] = field(default_factory=list)  # ids of the exemplars that offered it
    adapted: bool = False


def _usable(text: str, answer: str, want: str) -> bool:
    key = normalize(text)
    return (
        bool(key)
        and key != normalize(answer)
        and not is_placeholder(text)
        and compatible(want, answer_type(text))
        and not restates_answer(text, answer)
    )


def material_terms(material: str, stats: BankStats, limit: int = MATERIAL_LIMIT) -> list[str]:
    """Word n-grams (1–4 words) of the material that the bank knows as options: labels in a diagram, the
    organisms of a food web, the places of a map. Longer and more frequent ones first."""
    words = normalize(material).split()
    seen: dict[str, int] = {}
    for n in (4, 3, 2, 1):
        for i in range(len(words) - n + 1):
            gram = " ".join(words[i : i + n])
            if gram not in seen and stats.freq.get(gram, 0) > 0:
                seen[gram] = n
    ranked = sorted(seen, key=lambda g: (-seen[g], -stats.freq[g], g))
    return ranked[:limit]


def build_pool(
    answer: str,
    question: str,
    material: str,
    exemplars: list,
    stats: BankStats,
    *,
    exclude_ids: list[str] | tuple[str, ...] = (),
    model_options: list[str] | None = None,
    sisters: Callable[[str], Sequence[str]] | None = sister_terms,
    limit: int | None = None,
) -> list[PoolCandidate]:
    """Every candidate of every source, in a stable order (exemplar pool order, then the bank's by count).
    ``sisters``: the answer's sister terms (WordNet's by default; None leaves the source out), of which the
    pool takes those the bank knows as options, the most frequent first."""
    want = answer_type(answer)
    pool: dict[str, PoolCandidate] = {}

    def add(text: str, source: str) -> PoolCandidate | None:
        text = clean_option(text)
        if not _usable(text, answer, want):
            return None
        key = normalize(text)
        if key not in pool:
            pool[key] = PoolCandidate(text=text, key=key)
        pool[key].sources.add(source)
        return pool[key]

    for c in candidate_pool(answer, exemplars, material, question=question, limit=EXEMPLAR_LIMIT):
        cand = add(c.text, "exemplar")
        if cand is not None:
            cand.heuristic = max(cand.heuristic, c.score)
            cand.exemplars = [s.rstrip("*") for s in c.sources]
            cand.adapted = any(s.endswith("*") for s in c.sources)
    key = normalize(answer)
    for opt, _ in sorted(stats.beside(key, exclude_ids).items(), key=lambda kv: (-kv[1], kv[0]))[:BESIDE_LIMIT]:
        add(stats.text.get(opt, opt), "beside")
    if question:
        counts, _ = stats.as_distractor(question, exclude_ids)
        for opt, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TEMPLATE_LIMIT]:
            add(stats.text.get(opt, opt), "template")
        keyed, _ = stats.for_template_and_key(question, answer, exclude_ids)
        for opt, _ in sorted(keyed.items(), key=lambda kv: (-kv[1], kv[0]))[:TEMPLATE_LIMIT]:
            add(stats.text.get(opt, opt), "template")
    for term in material_terms(material, stats):
        add(stats.text.get(term, term), "material")
    if sisters is not None:
        terms = list(dict.fromkeys(normalize(t) for t in sisters(answer)))
        freq = {t: stats.frequency(t, exclude_ids) for t in terms}
        for term in sorted((t for t in terms if freq[t] > 0), key=lambda t: -freq[t])[:WORDNET_LIMIT]:
            add(stats.text.get(term, term), "wordnet")
    for opt in model_options or []:
        if isinstance(opt, str):
            add(opt, "model")
    out = list(pool.values())
    return out[:limit] if limit else out


def coverage(pool: list[PoolCandidate], gold: list[str]) -> dict[str, float]:
    """Gold distractors found per source and in the union (counts, not shares: sum over items, then divide)."""
    keys = {normalize(g) for g in gold if normalize(g)}
    out = {s: float(sum(1 for c in pool if c.key in keys and s in c.sources)) for s in SOURCES}
    out["union"] = float(sum(1 for c in pool if c.key in keys))
    out["gold"] = float(len(keys))
    return out
