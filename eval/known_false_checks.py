"""Known-false kinds for the faults teachers found in verified items (``coe.agents.item_checks``).

Each builder takes a gold item and a seeded generator and returns (question, distractors, note), or a reason
why the kind cannot be built for that item:

- ``subject_option``: a distractor replaced by the question's own subject (the content words after its verb,
  ``coe.agents.item_checks.question_subjects``), with an article as ScienceQA writes them ("a cup");
- ``near_duplicate``: a distractor replaced by another option said again — its inflection changed ("egg" /
  "eggs") or one content word swapped for a WordNet synonym — so two options say the same thing;
- ``other_form``: a distractor replaced by an option of another form from another item (a noun phrase among
  sentences, a sentence among short answers);
- ``other_names``: the people the question names replaced by the names of another item's question, the key
  kept (an exemplar's names carried into the question but not the options);
- ``rationale_true``: a distractor replaced by a statement of the item's own gold rationale (sentence
  options only): an option the explanation asserts;
- ``vague_question``: the question replaced by one that asks for no one thing about its topic ("What is the
  key to …?", "What does … involve?").

The subject, names and rationale kinds' labels hold by construction; a synonym swap can change the meaning
of a phrase, and a rationale sentence can fail to answer the question, so recall is a lower bound there."""

from __future__ import annotations

import random
import re

from coe.agents.item_checks import _FUNCTION, _NEGATION, names, question_subjects
from coe.agents.validation import normalize
from coe.retrieval.answer_types import answer_type

from .items import EvalItem

CHECK_KINDS = ("subject_option", "near_duplicate", "other_form", "other_names", "rationale_true", "vague_question")
Built = tuple[str, list[str], str] | str
_VAGUE = (
    "What is the key to {t}?",
    "What does {t} involve?",
    "What is important about {t}?",
    "Which of these is related to {t}?",
)


def _slot(item: EvalItem, rng: random.Random) -> int:
    return rng.randrange(len(item.gold_distractors))


def _replace(item: EvalItem, i: int, text: str) -> list[str]:
    out = list(item.gold_distractors)
    out[i] = text
    return out


def _content_phrases(question: str) -> list[str]:
    """Runs of up to three content words of the question's last sentence (its subject is among them)."""
    last = re.split(r"(?<=[.!?])\s+", question.strip())[-1]
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", last)
    runs, run = [], []
    for w in [*words, ""]:
        if w and w.lower() not in _FUNCTION:
            run.append(w)
        elif run:
            runs.append(" ".join(run[-3:]))
            run = []
    return runs


def subject_option(item: EvalItem, rng: random.Random) -> Built:
    if answer_type(item.answer) in ("boolean", "sentence"):
        return "yes/no or sentence options"
    taken = {normalize(o) for o in [item.answer, *item.gold_distractors]}
    phrases = [p for p in question_subjects(item.question) if normalize(p) not in taken and len(p) > 2]
    if not phrases:
        return "no subject after the question's verb"
    phrase = rng.choice(sorted(phrases))
    text = phrase if phrase[:1].isupper() else f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"
    i = _slot(item, rng)
    return item.question, _replace(item, i, text), f"{text!r} replaces {item.gold_distractors[i]!r}"


def _inflect(text: str) -> str | None:
    """``text`` with its last word's number changed ("egg." → "eggs.")."""
    m = list(re.finditer(r"[A-Za-z]{3,}", text))
    if not m:
        return None
    w = m[-1]
    word = w.group()
    if word.endswith("ies"):
        new = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        new = word[:-1]
    elif word.endswith("y") and word[-2:-1] not in "aeiou":
        new = word[:-1] + "ies"
    elif word.endswith(("s", "x", "ch", "sh")):
        new = word + "es"
    else:
        new = word + "s"
    return text[: w.start()] + new + text[w.end() :]


def near_duplicate(item: EvalItem, rng: random.Random, synonym=None) -> Built:
    """``synonym(word, exclude) -> (text, sense) | None`` swaps a word (WordNet's, in the evaluation)."""
    options = [item.answer, *item.gold_distractors]
    i = _slot(item, rng)
    # repeat another option: the key when the item has one distractor, else another distractor
    source = options[0] if len(options) == 2 else rng.choice([o for k, o in enumerate(options[1:]) if k != i])
    words = [w for w in re.findall(r"[A-Za-z]{4,}", source) if w.lower() not in _FUNCTION]
    variant, how = None, ""
    if synonym is not None and len(words) >= 2 and rng.random() < 0.5:
        w = rng.choice(words)
        found = synonym(w, [])
        if found and normalize(found[0]) != normalize(w):
            variant, how = re.sub(rf"\b{re.escape(w)}\b", found[0], source, count=1), f"{w} → {found[0]}"
    if variant is None:
        variant, how = _inflect(source), "inflection"
    if not variant or normalize(variant) in {normalize(o) for o in options}:
        return "no variant of an option"
    return (
        item.question,
        _replace(item, i, variant),
        f"{variant!r} ({how} of {source!r}) replaces {item.gold_distractors[i]!r}",
    )


def other_form(item: EvalItem, rng: random.Random, pool) -> Built:
    from coe.agents.item_checks import option_form

    forms = {option_form(o) for o in [item.answer, *item.gold_distractors]}
    if len(forms) != 1 or forms.pop() not in ("sentence", "short"):
        return "options of mixed forms"
    sentence = option_form(item.answer) == "sentence"
    kinds = ("phrase",) if sentence else ("sentence",)
    candidates = [o for t in kinds for o in pool.by_type.get(t, [])]
    for _ in range(20 if candidates else 0):
        other = candidates[rng.randrange(len(candidates))]
        text = other.answer if not sentence else other.answer.rstrip(".")
        if option_form(text) != ("sentence" if sentence else "short") and normalize(text) != normalize(item.answer):
            i = _slot(item, rng)
            return (
                item.question,
                _replace(item, i, text),
                f"{text!r} (from {other.pid}) replaces {item.gold_distractors[i]!r}",
            )
    return "no option of another form found"


def other_names(item: EvalItem, rng: random.Random, pool, is_common=None) -> Built:
    own = names(item.question, is_common)
    if answer_type(item.answer) != "sentence" or not own or not own & names(item.answer, is_common):
        return "no names shared by the question and a sentence key"
    others = sorted(
        {
            n
            for it in pool.items[:: max(1, len(pool.items) // 2000)]
            if answer_type(it.answer) == "sentence"
            for n in names(it.question, is_common)
        }
        - own
        - names(" ".join([item.answer, *item.gold_distractors, item.context]), is_common)
    )
    if len(others) < len(own):
        return "not enough other names"
    swap = dict(zip(sorted(own), rng.sample(others, len(own))))
    question = re.sub(r"\b(" + "|".join(map(re.escape, swap)) + r")\b", lambda m: swap[m.group()], item.question)
    return question, list(item.gold_distractors), ", ".join(f"{a} → {b}" for a, b in swap.items())


def rationale_true(item: EvalItem, rng: random.Random) -> Built:
    if answer_type(item.answer) != "sentence":
        return "options are not sentences"
    taken = {normalize(o) for o in [item.answer, *item.gold_distractors]}
    sentences = [
        s.strip()
        for s in re.split(r"(?<=[.!?])\s+|\n+", item.gold_rationale)
        if 4 <= len(s.split()) <= 25
        and not _NEGATION.search(s)
        and s.strip().endswith(".")
        and normalize(s) not in taken
        and not s.rstrip().endswith(":")
    ]
    if not sentences:
        return "no plain statement in the rationale"
    text = rng.choice(sentences)
    i = _slot(item, rng)
    return item.question, _replace(item, i, text), f"{text!r} replaces {item.gold_distractors[i]!r}"


def vague_question(item: EvalItem, rng: random.Random) -> Built:
    phrases = [p for p in _content_phrases(item.question) if len(p.split()) >= 1 and len(p) > 3]
    if not phrases:
        return "no topic phrase in the question"
    topic = rng.choice(sorted(phrases))
    topic = topic if topic[:1].isupper() else f"the {topic.lower()}"
    return rng.choice(_VAGUE).format(t=topic), list(item.gold_distractors), f"topic {topic!r}"
