"""What the bank says about an answer: which options stand beside it, which questions ask for it.

Counts are per item. ``exclude_ids`` takes an item's own contribution back out (leave-one-out), so an item
that is itself in the bank never sees its own options counted as evidence."""

from __future__ import annotations

import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from coe.agents.validation import clean_option, normalize
from coe.retrieval.answer_types import answer_type

from .templates import template_mask


class BankItem:
    __slots__ = ("id", "split", "question", "answer", "options", "distractors", "asked", "_template")

    def __init__(
        self,
        id: str,
        split: str,
        question: str,
        answer: str,
        options: tuple[str, ...],
        distractors: frozenset[str],
        asked: str = "",
    ):
        self.id, self.split, self.question, self.answer = id, split, question, answer
        self.options, self.distractors, self.asked = options, distractors, asked
        self._template: str | None = None

    @property
    def template(self) -> str:
        """The question's template with its key masked; computed when first asked for (masking runs a regex
        per item, seconds over a whole bank, and only items with the key of the moment are ever asked)."""
        if self._template is None:
            self._template = template_mask(self.asked, self.answer)
        return self._template


class BankStats:
    """Counts over bank records (anything with ``id``, ``split``, ``question``, ``answer``, ``distractors``)."""

    def __init__(self, records: Iterable[Any]):
        self.items: dict[str, BankItem] = {}
        self.text: dict[str, str] = {}  # normalised option → one surface form (the first seen)
        self.question_text: dict[str, str] = {}  # normalised question → its surface form
        self.freq: Counter[str] = Counter()  # items an option stands in
        self.beside_counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.template: dict[str, Counter[str]] = defaultdict(Counter)  # question → its distractors
        self.template_n: Counter[str] = Counter()
        self.questions_for: dict[str, Counter[str]] = defaultdict(Counter)  # answer → its questions
        self.questions_for_type: dict[str, Counter[str]] = defaultdict(Counter)  # answer type → questions
        self.with_answer: dict[str, list[BankItem]] = defaultdict(list)  # answer → its items
        for r in records:
            self._add(r)
        self.n = len(self.items)

    def _add(self, r: Any) -> None:
        answer = normalize(r.answer)
        if not answer or r.id in self.items:
            return
        distractors = []
        for d in r.distractors:
            text = clean_option(d)
            key = normalize(text)
            if key and key != answer and key not in distractors:
                distractors.append(key)
                self.text.setdefault(key, text)
        self.text.setdefault(answer, clean_option(r.answer))
        q = normalize(r.question)
        self.question_text.setdefault(q, r.question.strip())
        options = (answer, *distractors)
        item = BankItem(r.id, getattr(r, "split", ""), q, answer, options, frozenset(distractors), r.question)
        self.items[r.id] = item
        self.with_answer[answer].append(item)
        for o in options:
            self.freq[o] += 1
            for other in options:
                if other != o:
                    self.beside_counts[o][other] += 1
        self.template_n[q] += 1
        for d in distractors:
            self.template[q][d] += 1
        self.questions_for[answer][q] += 1
        self.questions_for_type[answer_type(r.answer)][q] += 1

    def _own(self, exclude_ids: Iterable[str]) -> list[BankItem]:
        return [self.items[i] for i in exclude_ids or () if i in self.items]

    def beside(self, key: str, exclude_ids: Iterable[str] = ()) -> Counter[str]:
        """Options that stand beside ``key`` (normalised) in some item, with the number of such items."""
        out = Counter(self.beside_counts.get(key, {}))
        for it in self._own(exclude_ids):
            if key in it.options:
                out.subtract({o: 1 for o in it.options if o != key})
        return +out

    def frequency(self, option: str, exclude_ids: Iterable[str] = ()) -> int:
        return self.freq.get(option, 0) - sum(option in it.options for it in self._own(exclude_ids))

    def as_distractor(self, question: str, exclude_ids: Iterable[str] = ()) -> tuple[Counter[str], int]:
        """The distractors the bank gives for this exact question (normalised), and how many items ask it."""
        q = normalize(question)
        out, n = Counter(self.template.get(q, {})), self.template_n.get(q, 0)
        for it in self._own(exclude_ids):
            if it.question == q:
                out.subtract({d: 1 for d in it.distractors})
                n -= 1
        return +out, n

    def for_template_and_key(
        self, question: str, answer: str, exclude_ids: Iterable[str] = ()
    ) -> tuple[Counter[str], int]:
        """The distractors the bank gives where the question's template asks for this same key ("What is the
        capital of X?" answered Denver, whichever state X is), and how many items do."""
        key, mask, skip = normalize(answer), template_mask(question, answer), set(exclude_ids or ())
        same = [it for it in self.with_answer.get(key, ()) if it.id not in skip and it.template == mask]
        return Counter(d for it in same for d in it.distractors), len(same)

    def questions(self, answer: str, exclude_ids: Iterable[str] = ()) -> tuple[Counter[str], Counter[str]]:
        """The questions the bank asks with this answer, and with answers of its type (normalised)."""
        key = normalize(answer)
        by_answer = Counter(self.questions_for.get(key, {}))
        by_type = Counter(self.questions_for_type.get(answer_type(answer), {}))
        for it in self._own(exclude_ids):
            if it.answer == key:
                by_answer[it.question] -= 1
            if answer_type(self.text.get(it.answer, it.answer)) == answer_type(answer):
                by_type[it.question] -= 1
        return +by_answer, +by_type


def bank_records(retriever, exclude_splits: Iterable[str] = ()) -> list[Any]:
    """Every record of the retriever's banks (from the answer collection's metadata), without the excluded
    splits: the same bank retrieval searches."""
    from coe.retrieval.exemplars import Exemplar

    excluded = set(exclude_splits)
    out = []
    for bank, view in retriever.views.items():
        name = f"{bank}-answer"
        ids, _, metas, _ = view.get_all(name)  # an in-memory bank answers from what it holds
        out += [
            Exemplar.from_metadata(i, m or {}) for i, m in zip(ids, metas) if (m or {}).get("split", "") not in excluded
        ]
    return out


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# a batch runs its items in threads: the first items would each build the same counts (a second apiece)
_BUILDING = threading.Lock()


def stats_for(retriever, exclude_splits: Iterable[str] = ()) -> BankStats:
    """One ``BankStats`` per retriever (while it lives) and set of excluded splits in a process."""
    key = tuple(sorted(set(exclude_splits)))
    with _BUILDING:
        per = _CACHE.setdefault(retriever, {})
        if key not in per:
            per[key] = BankStats(bank_records(retriever, exclude_splits))
        return per[key]
