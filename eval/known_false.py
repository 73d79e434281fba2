"""Known-false items built from ScienceQA items, to measure whether the verifier flags what it should.

Each kind breaks one thing and keeps the rest of the gold item (material, key, other options):

- ``wrong_template``: the question of another item (any split) whose answer normalises equal to this key
  but whose question is another template (``template_mask`` differs, so not just other names or numbers).
- ``second_key``: one distractor replaced by a WordNet synonym of the key, which answers the question as
  well as the key does. The synonym comes from a sense the key heads (the synset is named after it), the
  sense chosen by simplified Lesk against the item's question, options, context and rationale. Items whose
  question is about the word itself (rhymes, spelling, dictionary order) are skipped: there a synonym is
  simply another word.
- ``key_in_question``: the question with "Answer: KEY" appended.
- ``unrelated_question``: the question of a random other item whose answer type differs.
- the kinds of ``coe.eval.known_false_checks`` (``CHECK_KINDS``): the faults teachers found in verified items
  (the question's subject as an option, two options that say the same thing, an option of another form,
  another item's names in the question, a distractor the rationale states, a vague question).

Every choice is drawn from a generator seeded by (seed, kind, pid), so an item's known-false version does
not depend on which other items are in the sample. A kind that cannot be built for an item is skipped with
a counted reason. The labels hold by construction for most items, not all: a sibling question can happen to
fit ("farthest east" for an item whose key is also the farthest west), and the most frequent sense can be the
wrong one ("Washington D.C." for the state), so recall on these kinds is a lower bound."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from functools import cache
from typing import Any

from coe.agents.validation import normalize
from coe.retrieval.answer_types import answer_type

from . import known_false_checks as checks
from .items import EvalItem
from .template_match import template_mask

KINDS = ("wrong_template", "second_key", "key_in_question", "unrelated_question", *checks.CHECK_KINDS)
_ABOUT_WORDS = re.compile(
    r"\b(word|words|rhymes?|spell\w*|alphabetical|dictionary|guide words|syllables?|"
    r"vowels?|letters?)\b",
    re.I,
)


def _rng(seed: int, kind: str, pid: str) -> random.Random:
    return random.Random(f"{seed}:{kind}:{pid}")  # str seeds hash with SHA-512: stable across runs


@cache
def _mask(question: str, answer: str) -> str:
    return template_mask(question, answer)


class Pool:
    """Every item of the dataset, indexed by normalised answer and by answer type."""

    def __init__(self, items: list[EvalItem]) -> None:
        self.items = sorted(items, key=lambda i: (i.split, i.pid))
        self.by_answer: dict[str, list[EvalItem]] = defaultdict(list)
        self.by_type: dict[str, list[EvalItem]] = defaultdict(list)
        for it in self.items:
            self.by_answer[normalize(it.answer)].append(it)
            self.by_type[answer_type(it.answer)].append(it)


def wrong_template(item: EvalItem, pool: Pool, rng: random.Random) -> tuple[str, str] | str:
    own = _mask(item.question, item.answer)
    siblings: dict[str, EvalItem] = {}
    for o in pool.by_answer[normalize(item.answer)]:
        if o.pid != item.pid and _mask(o.question, item.answer) != own:
            siblings.setdefault(o.question, o)
    if not siblings:
        return "no item of another template has the same answer"
    other = siblings[rng.choice(sorted(siblings))]
    return other.question, f"from {other.split} {other.pid}"


def unrelated_question(item: EvalItem, pool: Pool, rng: random.Random, tries: int = 20) -> tuple[str, str] | str:
    own = answer_type(item.answer)
    others = [t for t in sorted(pool.by_type) if t != own]
    total = sum(len(pool.by_type[t]) for t in others)
    for _ in range(tries if total else 0):
        k = rng.randrange(total)
        for t in others:  # the k-th item of the other types, without building their concatenation
            if k < len(pool.by_type[t]):
                other = pool.by_type[t][k]
                break
            k -= len(pool.by_type[t])
        # Templates shared across answer types ("Which statement is true?") are not unrelated.
        if normalize(other.question) != normalize(item.question):
            return other.question, f"from {other.split} {other.pid} ({t} answer)"
    return "no item with another answer type and another question"


def _wordnet():
    """The run-time WordNet reader; this kind cannot be built without it, so its absence stops the run with
    the reason ``ensure_wordnet`` gives."""
    from coe.modelstore.wordnet import ensure_wordnet, wordnet_reader

    wn = wordnet_reader()
    if wn is None:
        ensure_wordnet()
    return wn


def _pos(wn, text: str) -> set[str]:
    return {"a" if s.pos() == "s" else s.pos() for s in wn.synsets("_".join(normalize(text).split()))}


def synonym(key: str, exclude: list[str]) -> tuple[str, str] | None:
    """A WordNet synonym of ``key`` in its most frequent sense: (synonym, synset name), or None.

    The options of one item share a part of speech, so the senses are limited to the parts of speech every
    option in ``exclude`` (the other options) that WordNet knows has there, when they have one in common: "compound"
    beside "simple" and "complex" is the adjective, not the verb "intensify"."""
    wn = _wordnet()
    lemma = "_".join(normalize(key).split())
    if not lemma:
        return None
    known = [p for p in (_pos(wn, e) for e in exclude) if p]  # options WordNet does not know say nothing
    shared = set.intersection(*known) if known else set()

    def count(sense) -> int:  # how often SemCor tags the key with this sense
        return sum(lem.count() for lem in sense.lemmas() if lem.name().lower() == lemma.lower())

    # The most frequent sense, and only an attested one: "pot.n.09" lists "grass" too. Simplified Lesk was
    # tried here and picked worse senses on ScienceQA ("glassful" for the material glass).
    senses = [s for s in wn.synsets(lemma) if count(s) > 0 and (not shared or s.pos().replace("s", "a") in shared)]
    if not senses:
        return None
    sense = max(senses, key=count)  # max keeps WordNet's order on ties
    taken = {normalize(key), *(normalize(e) for e in exclude)}
    for lem in sorted(sense.lemmas(), key=lambda lem: -lem.count()):  # the synonym used most in that sense
        text = lem.name().replace("_", " ")
        if normalize(text) and normalize(text) not in taken:
            return text, sense.name()
    return None


def second_key(item: EvalItem, rng: random.Random) -> tuple[list[str], str] | str:
    if _ABOUT_WORDS.search(item.question):
        return "question about the word itself"
    found = synonym(item.answer, item.gold_distractors)
    if found is None:
        return "no WordNet synonym of the key"
    text, sense = found
    options = list(item.gold_distractors)
    i = rng.randrange(len(options))
    options[i] = text
    return options, f"{text} ({sense}) replaces {item.gold_distractors[i]}"


def _check_kind(kind: str, item: EvalItem, pool: Pool, rng: random.Random):
    from coe.agents.cues import common_word

    if kind == "subject_option":
        return checks.subject_option(item, rng)
    if kind == "near_duplicate":
        return checks.near_duplicate(item, rng, synonym=lambda word, exclude: synonym(word, exclude))
    if kind == "other_form":
        return checks.other_form(item, rng, pool)
    if kind == "other_names":
        return checks.other_names(item, rng, pool, is_common=common_word)
    if kind == "rationale_true":
        return checks.rationale_true(item, rng)
    return checks.vague_question(item, rng)


def build(
    items: list[EvalItem], pool: Pool, *, seed: int = 0, kinds: tuple[str, ...] = KINDS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(known-false items, skips): ``{"kind", "pid", "question", "distractors", "note"}`` and
    ``{"kind", "pid", "reason"}``. Items need gold distractors (the DG sample has them)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown known-false kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    built, skipped = [], []
    for item in items:
        for kind in kinds:
            rng = _rng(seed, kind, item.pid)
            question, distractors, note = item.question, list(item.gold_distractors), ""
            if not distractors:
                out: Any = "item has no distractors"
            elif kind == "wrong_template":
                out = wrong_template(item, pool, rng)
            elif kind == "unrelated_question":
                out = unrelated_question(item, pool, rng)
            elif kind == "second_key":
                out = second_key(item, rng)
            elif kind in checks.CHECK_KINDS:
                out = _check_kind(kind, item, pool, rng)
            else:
                out = (f"{item.question.rstrip()} Answer: {item.answer}", "")
            if isinstance(out, str):
                skipped.append({"kind": kind, "pid": item.pid, "reason": out})
                continue
            if kind == "second_key":
                distractors, note = out
            elif kind in checks.CHECK_KINDS:
                question, distractors, note = out
            else:
                question, note = out
            built.append(
                {"kind": kind, "pid": item.pid, "question": question, "distractors": distractors, "note": note}
            )
    return built, skipped
