"""Cheap cues checked without a model: the mistakes a test-wise student exploits or a teacher spots at once.

Each check returns ``Cue`` records. ``severity="flag"`` makes an item flagged (the decision policy may send
it back); ``"warn"`` is shown to the reviewer but does not by itself flag the item, because the pattern also
occurs in good items (ScienceQA's own keys are sometimes the longest option)."""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from pydantic import BaseModel

from coe.modelstore.wordnet import WORDNET_LOCK, wordnet_reader
from coe.retrieval.answer_types import answer_type, compatible

from .validation import normalize


class Cue(BaseModel):
    check: str
    severity: Literal["flag", "warn"]
    message: str
    option: str | None = None  # the option the cue is about, when it is about one
    target: Literal["question", "distractor", "item"] = "item"


# Questions about what the material shows: options must then come from the material.
_ABOUT_MATERIAL = re.compile(
    r"\b(this|these|the following|shown|highlighted|pictured|below|above|in the (picture|image|diagram|map|"
    r"photo|figure|table|passage|text|food web|food chain))\b",
    re.I,
)
_ANSWER_SUFFIX = re.compile(r"\b(answer|correct answer|solution)\s*(is|:)", re.I)


def contains_phrase(haystack_norm: str, needle: str) -> bool:
    """Whether the phrase occurs in a text normalised with ``normalize(text, articles=True)``."""
    n = normalize(needle, articles=True)
    return bool(n) and re.search(rf"(^| ){re.escape(n)}( |$)", haystack_norm) is not None


def _run_together(haystack_norm: str, needle: str) -> bool:
    """Whether a phrase of several words occurs with its spaces dropped, as OCR reads a diagram's two-word
    labels ("blackcrappie", "greenalgae"). One word is never matched this way: inside another word it would
    be found where it is not ("ant" in "plant")."""
    words = normalize(needle, articles=True).split()
    return len(words) > 1 and contains_phrase(haystack_norm, "".join(words))


def question_cues(question: str, answer: str, distractors: list[str] | None = None) -> list[Cue]:
    """Cues on the question alone (``distractors`` tell an enumeration of choices from a giveaway)."""
    cues: list[Cue] = []
    qn = normalize(question, articles=True)
    if _ANSWER_SUFFIX.search(question):
        cues.append(
            Cue(
                check="answer_in_question",
                severity="flag",
                target="question",
                message="the question announces its answer",
            )
        )
    elif answer_type(answer) != "boolean" and contains_phrase(qn, answer):
        # "Is a pencil a solid, a liquid, or a gas?" names every choice; that is not a giveaway.
        named = [d for d in distractors or [] if contains_phrase(qn, d)]
        if not named:
            cues.append(
                Cue(
                    check="key_in_question",
                    severity="flag",
                    target="question",
                    message=f'the question states the key "{answer}"',
                )
            )
    if not question.rstrip().endswith(("?", ".", ":")):
        cues.append(
            Cue(
                check="unfinished_question",
                severity="warn",
                target="question",
                message="the question does not end like a question or instruction",
            )
        )
    return cues


def option_cues(question: str, answer: str, distractors: list[str], material: str = "") -> list[Cue]:
    """Cues on the option list: another kind than the key, absent from the material, length giveaways."""
    cues: list[Cue] = []
    want = answer_type(answer)
    for d in distractors:
        if not compatible(want, answer_type(d)):
            cues.append(
                Cue(
                    check="other_kind",
                    severity="flag",
                    target="distractor",
                    option=d,
                    message=f'"{d}" is not the same kind of answer as "{answer}"',
                )
            )
            continue
        if same_meaning(answer, d):
            cues.append(
                Cue(
                    check="synonym_of_key",
                    severity="flag",
                    target="distractor",
                    option=d,
                    message=f'"{d}" means the same as the key "{answer}" (a dictionary synonym)',
                )
            )
            continue
        kind = _instance_kind_clash(answer, d)
        if kind:
            cues.append(
                Cue(
                    check="other_kind",
                    severity="flag",
                    target="distractor",
                    option=d,
                    message=f'"{d}" is {kind[1]}, but the key is {kind[0]}',
                )
            )
    material_norm = normalize(material, articles=True)
    if material_norm and _ABOUT_MATERIAL.search(question) and contains_phrase(material_norm, answer):
        # The key is named in the material, so the question is about what the material lists: an option
        # it never mentions ("rotifer" for a tundra food web) is implausible at a glance.
        for d in distractors:
            if not contains_phrase(material_norm, d) and not _run_together(material_norm, d):
                # A warning only: map labels and OCR are often partial (gold items name states the OCR missed).
                cues.append(
                    Cue(
                        check="not_in_material",
                        severity="warn",
                        target="distractor",
                        option=d,
                        message=f'"{d}" does not appear in the material the question is about',
                    )
                )
    lengths = [len(d) for d in distractors]
    if len(distractors) >= 2 and len(answer) > 1.6 * max(lengths) and len(answer) - max(lengths) >= 8:
        cues.append(
            Cue(
                check="key_longest",
                severity="warn",
                target="item",
                message="the key is much longer than every distractor",
            )
        )
    if (
        distractors
        and _shape(answer) != "mixed"
        and all(_shape(d) not in (_shape(answer), "mixed") for d in distractors)
    ):
        cues.append(
            Cue(
                check="format_mismatch",
                severity="warn",
                target="item",
                message="the key is written differently from every distractor (case or final stop)",
            )
        )
    return cues


def _shape(option: str) -> str:
    """Capitalisation and final stop: options of one item usually share them."""
    o = option.strip()
    if not o or not o[0].isalpha():
        return "mixed"
    return ("upper" if o[0].isupper() else "lower") + ("." if o.endswith(".") else "")


def kind_check_available() -> bool:
    return wordnet_reader() is not None


# Two kinds are "the same kind" when they meet within this many hypernym steps (state capital and town meet
# at municipality; continent and country only at "location"-level abstractions, further up).
KIND_STEPS = 3


@cache
def _instance_kinds(text: str) -> tuple:
    """What a proper noun is an instance of ("Asia" → continent; "Vanuatu" → country), from WordNet."""
    wn = wordnet_reader()
    if wn is None or not text[:1].isupper():
        return ()
    with WORDNET_LOCK:
        return tuple({h for s in wn.synsets(text.strip().replace(" ", "_"), pos="n") for h in s.instance_hypernyms()})


@cache
def _near_kinds(kind) -> frozenset:
    out, frontier = {kind}, {kind}
    with WORDNET_LOCK:
        for _ in range(KIND_STEPS):
            frontier = {h for k in frontier for h in k.hypernyms()}
            out |= frontier
    return frozenset(out)


def _instance_kind_clash(answer: str, option: str) -> tuple[str, str] | None:
    a, o = _instance_kinds(answer), _instance_kinds(option)
    if not a or not o:
        return None
    if any(_near_kinds(x) & _near_kinds(y) for x in a for y in o):
        return None
    name = lambda k: k.lemmas()[0].name().replace("_", " ")  # noqa: E731
    return name(sorted(a, key=name)[0]), name(sorted(o, key=name)[0])


@cache
def _senses(text: str) -> frozenset:
    wn = wordnet_reader()
    if wn is None:
        return frozenset()
    with WORDNET_LOCK:
        return frozenset(wn.synsets(normalize(text).replace(" ", "_")))


def same_meaning(a: str, b: str) -> bool:
    """Two different words or phrases that share a WordNet sense ("car" and "automobile"): a second key."""
    if normalize(a) == normalize(b):
        return False
    return bool(_senses(a) & _senses(b))


@cache
def common_word(word: str) -> bool:
    """Whether WordNet knows ``word`` as a common word (a sense that is no instance of something): the
    first word of a sentence is then not taken for a name. Without WordNet every first word counts as common."""
    wn = wordnet_reader()
    if wn is None:
        return True
    with WORDNET_LOCK:
        return any(not s.instance_hypernyms() for s in wn.synsets(word))


@cache
def opposed(a: str, b: str) -> bool | None:
    """Whether two words are WordNet antonyms ("smaller" / "larger" through their base forms); None without
    WordNet, when nobody can tell."""
    wn = wordnet_reader()
    if wn is None:
        return None
    with WORDNET_LOCK:
        bases_b = {wn.morphy(b, pos) or b for pos in ("a", "n", "v", "r")} | {b}
        for pos in ("a", "n", "v", "r"):
            base = wn.morphy(a, pos) or a
            for s in wn.synsets(base, pos=pos):
                for lem in s.lemmas():
                    if any(x.name() in bases_b for x in lem.antonyms()):
                        return True
                    for sim in s.similar_tos():  # "hot" is opposed to "cold" through "warm"'s head
                        if any(x.name() in bases_b for l2 in sim.lemmas() for x in l2.antonyms()):
                            return True
    return False
