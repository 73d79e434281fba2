"""Model-free checks for the faults teachers found in items that a student model had passed.

Each returns ``Cue`` records like ``coe.agents.cues`` (same severities and targets), so the verifier and the
graph's decision treat them alike:

- ``subject_option``: an option that is the question's own subject ("a cup" for "Is a cup a solid or a
  liquid?"); options the question lists as choices ("... a solid or a liquid?") are not subjects;
- ``near_duplicate``: two options that say the same thing, by normalised text (inflections aside: "a
  fertilized egg" / "fertilized eggs") or by sentence embedding (MiniLM) when an embedder is given;
- ``other_form``: one option of another form than the rest (a noun phrase among sentences, or a sentence
  among names);
- ``names_mismatch``: the question names people the key does not (or the reverse): the names of an exemplar
  carried into one but not the other;
- ``rationale_states``: a distractor that the item's own rationale states as true;
- ``vague_question``: a question that asks for no one thing ("What is the key to the water cycle?").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import combinations

import numpy as np

from coe.retrieval.answer_types import answer_type

from .cues import Cue
from .validation import normalize

Embed = Callable[[list[str]], np.ndarray]

# Two options whose MiniLM cosine reaches this say the same thing, unless a number, a negation, a pair of
# opposites or word order sets them apart (``_contrast``). Among ScienceQA val gold items (2,277), 12 option
# pairs that nothing sets apart reach it (0.5 % of items; 0.90 would take 45, 0.97 one).
DUPLICATE_COSINE = 0.93

_FUNCTION = frozenset(
    "a an the this that these those it its they them their he she his her we you your i my our there here "
    "which what who whom whose where when why how is are was were be been being do does did can could will "
    "would should shall may might must has have had of in on at for from to by with and or but not no nor yes "
    "so as if than then each both all any some select complete choose look read think compare identify use "
    "based consider imagine suppose answer".split()
)
_NEGATION = re.compile(
    r"\b(not|no|never|neither|nor|cannot|can't|isn't|aren't|doesn't|don't|won't|wasn't|"
    r"weren't|without|instead|incorrect|false|wrong)\b",
    re.I,
)
_ABOUT_LANGUAGE = re.compile(
    r"\b(word|words|sentence|sentences|text|pronoun|formal|capitaliz\w*|punctuat\w*|"
    r"closing|greeting|spell\w*|idiom|verb|noun|adjective|tense|fragment|run-on|"
    r"allusion|figure of speech|rhymes?|syllables?|letter)\b",
    re.I,
)
_COMPARISON = re.compile(r"\b(than|whereas|while|unlike|compared)\b", re.I)
_VAGUE = re.compile(
    r"^(what|which)\s+(is|are)\s+(the\s+)?(key|main idea|important thing|point|secret)\s+(to|of|about)\b|"
    r"^what\s+(process|thing|things|part|role)?\s*(does|do)\s+.+\s+involve\b|"
    r"^what\s+is\s+important\s+about\b|"
    r"^(what|which)(\s+of\s+these)?\s+(is|are)\s+(related|connected|linked)\s+to\b|"
    r"^what\s+(can|do)\s+you\s+(say|tell)\s+about\b|"
    r"^what\s+is\s+(true|special)\s+about\b",
    re.I,
)
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’-]*")


def _stem(word: str) -> str:
    """Plural and third-person endings off, so "egg"/"eggs" and "fuse"/"fuses" compare equal."""
    for end, keep in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("s", "")):
        if word.endswith(end) and len(word) - len(end) >= 3 and not word.endswith(("ss", "us", "is")):
            return word[: len(word) - len(end)] + keep
    return word


def loose_form(text: str) -> str:
    """Normalised text with articles dropped and each word's inflection stripped."""
    return " ".join(_stem(w) for w in normalize(text).split())


def _content(text: str) -> list[str]:
    return [_stem(w) for w in normalize(text).split() if w not in _FUNCTION]


def _enumerated(question: str, option: str) -> bool:
    """Whether the question names ``option`` as one of its choices ("..., X, or Y?")."""
    q = question.lower()
    pattern = re.escape(option.strip().lower().rstrip("."))
    for m in re.finditer(rf"(?<![a-z]){pattern}(?![a-z])", q):
        before = re.sub(r"\s(a|an|the)$", "", q[: m.start()].rstrip())
        after = re.sub(r"^\w+(?=\s+(or\b|,))", "", q[m.end() :].lstrip()).lstrip()  # "an open syllable or ..."
        if (
            before.endswith((",", " or", " either", ":"))
            or after.startswith((",", "or ", "?"))
            and re.search(r"\bor\b", q)
        ):
            return True
    return False


_AUXILIARY = re.compile(
    r"\b(?:is|are|was|were|does|do|did|can|could|will|would|has|have)\s+(?:(?:a|an|the)\s+)?"
    r"([a-z][\w'-]*(?:\s+[a-z][\w'-]*){0,2})",
    re.I,
)


def question_subjects(question: str) -> list[str]:
    """The subjects of the question proper: the content words right after its verb ("Is a cup a solid or a
    liquid?" → "cup"; "What is a fern made of?" → "fern")."""
    last = re.split(r"(?<=[.!?])\s+", question.strip().splitlines()[0] if question.strip() else "")[-1]
    out = []
    for m in _AUXILIARY.finditer(last):
        words = []
        for w in m.group(1).split():
            if w.lower() in _FUNCTION:
                break
            words.append(w)
        if words:
            out.append(" ".join(words))
    return out


def subject_options(question: str, answer: str, distractors: list[str]) -> list[Cue]:
    out: list[Cue] = []
    if answer_type(answer) in ("boolean", "sentence"):
        return out  # yes/no items and sentence options restate the question by nature
    last = re.split(r"(?<=[.!?])\s+", question.strip().splitlines()[0] if question.strip() else "")[-1]
    subjects = {normalize(x) for x in question_subjects(question)}
    for d in distractors:
        if normalize(d) in subjects and normalize(d) != normalize(answer) and not _enumerated(last, d):
            out.append(
                Cue(
                    check="subject_option",
                    severity="flag",
                    target="distractor",
                    option=d,
                    message=f'"{d}" is what the question asks about, not an answer to it',
                )
            )
    return out


def near_duplicates(
    answer: str,
    distractors: list[str],
    embed: Embed | None = None,
    threshold: float = DUPLICATE_COSINE,
    opposed: Callable[[str, str], bool | None] | None = None,
    question: str = "",
) -> list[Cue]:
    """Pairs of options that say the same thing; the later distractor of a pair is the one to replace.
    Questions about language (a word's sense, a vague pronoun, a sentence's form) pair near-identical
    texts on purpose, so they are left alone."""
    if _ABOUT_LANGUAGE.search(question):
        return []
    options = [answer, *distractors]
    out: list[Cue] = []
    seen: set[str] = set()
    sims = None
    if embed is not None and len(options) > 1:
        vectors = np.asarray(embed(options), dtype=float)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        sims = vectors @ vectors.T
    for i, j in combinations(range(len(options)), 2):
        a, b = options[i], options[j]
        if b in seen or normalize(a) == normalize(b):
            continue  # exact repeats are the validator's business
        by_text = loose_form(a) == loose_form(b)
        sim = None if sims is None else float(sims[i, j])
        by_meaning = sim is not None and sim >= threshold and not _contrast(a, b, opposed)
        if by_text or by_meaning:
            seen.add(b)
            how = "the same words" if by_text else f"embedding similarity {sim:.2f}"
            what = "the key" if i == 0 else f'"{a}"'
            out.append(
                Cue(
                    check="near_duplicate",
                    severity="flag",
                    target="distractor",
                    option=b,
                    message=f'"{b}" says the same thing as {what} ({how})',
                )
            )
    return out


def _contrast(a: str, b: str, opposed: Callable[[str, str], bool | None] | None = None) -> bool:
    """Options that differ in a number, a negation, a pair of opposites or only in word order contrast even
    when their embeddings are close ("in Pair 1" / "in Pair 2", "is" / "is not", "smaller" / "larger",
    "from A to B" / "from B to A"). Without a way
    to tell opposites (``opposed``, WordNet's), any word on each side counts as a contrast."""
    ta, tb = set(_content(a)), set(_content(b))
    if any(any(c.isdigit() for c in w) for w in ta ^ tb):
        return True
    if bool(_NEGATION.search(a)) != bool(_NEGATION.search(b)):
        return True
    only_a, only_b = ta - tb, tb - ta
    if not only_a and not only_b:
        return True  # the same words in another order or case: what questions about form ask about
    if opposed is None:
        return bool(only_a) and bool(only_b)
    return any(opposed(x, y) or opposed(y, x) for x in only_a for y in only_b)


def option_form(option: str) -> str:
    """``sentence`` (three words or more and a final stop), ``short`` (a word or a phrase without one), or
    ``other`` (numbers, yes/no, long phrases without a stop: lists and definitions, which stand beside both)."""
    text = option.strip()
    if text.endswith((".", "!", "?")) and len(text.split()) >= 3:
        return "sentence"
    return "short" if answer_type(text) in ("word", "phrase") else "other"


def other_forms(answer: str, distractors: list[str]) -> list[Cue]:
    """An option whose form differs from that of all the others, when they (key included) share one. With
    one distractor the key is the one to follow: of ScienceQA's 9,654 two-option items, one pairs a
    sentence with a short answer (a song title written with and without quotation marks)."""
    options = [answer, *distractors]
    if len(options) < 2:
        return []
    forms = [option_form(o) for o in options]
    out = []
    for i, d in enumerate(distractors, start=1):
        rest = {f for k, f in enumerate(forms) if k != i}
        if len(rest) == 1 and forms[i] not in rest and {forms[i], *rest} == {"sentence", "short"}:
            want = "sentences" if "sentence" in rest else "short answers"
            out.append(
                Cue(
                    check="other_form",
                    severity="flag",
                    target="distractor",
                    option=d,
                    message=f'"{d}" is not written like the other options ({want})',
                )
            )
    return out


def names(text: str, is_common: Callable[[str], bool] | None = None) -> set[str]:
    """Capitalised words that are names: any capitalised word after a sentence's first, and a first word
    that is no function word and (when ``is_common`` can tell) no common word."""
    out = set()
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", text):
        for k, m in enumerate(_TOKEN.finditer(sentence)):
            word = re.sub(r"['’]s$", "", m.group())
            if not word[:1].isupper() or len(word) < 2 or word.lower() in _CALENDAR:
                continue
            if k == 0 and (word.lower() in _FUNCTION or (is_common or (lambda w: True))(word.lower())):
                continue
            out.add(word)
    return out


def names_mismatch(
    question: str, answer: str, material: str = "", is_common: Callable[[str], bool] | None = None
) -> list[Cue]:
    """A sentence key naming people, beside a question naming others: one of them came from another item."""
    if option_form(answer) != "sentence":
        return []
    in_question, in_key = names(question, is_common), names(answer, is_common)
    if not in_question or not in_key or in_question & in_key:
        return []
    stray = sorted(in_key - names(material, is_common) - in_question)
    if not stray:
        return []
    return [
        Cue(
            check="names_mismatch",
            severity="flag",
            target="question",
            message=f"the question names {', '.join(sorted(in_question))} but the key names {', '.join(stray)}",
        )
    ]


def rationale_states(rationale: str | None, answer: str, distractors: list[str]) -> list[Cue]:
    """A distractor (a sentence of at least four content words) that one sentence of the rationale asserts, without a
    negation: the item's own explanation makes it a second key."""
    if not rationale:
        return []
    sentences = [s for s in re.split(r"(?<=[.!?;])\s+|\n+", rationale) if s.strip()]
    out = []
    for d in distractors:
        words = set(_content(d))
        if option_form(d) != "sentence" or len(words) < 4 or loose_form(d) == loose_form(answer):
            continue
        denied = False  # inside a list introduced by a denial ("The following statement does not describe ...:")
        for s in sentences:
            if ":" in s:
                denied = bool(_NEGATION.search(s.split(":")[0]))
                continue
            if denied or _NEGATION.search(s) or _COMPARISON.search(s):
                continue  # "stronger in Pair 2 than in Pair 1" names both sides of a contrast
            covered = len(words & set(_content(s))) / len(words)
            if covered >= 0.85:
                out.append(
                    Cue(
                        check="rationale_states",
                        severity="flag",
                        target="distractor",
                        option=d,
                        message=f'the rationale states "{d}" as true ("{s.strip()[:120]}")',
                    )
                )
                break
    return out


def vague_question(question: str) -> list[Cue]:
    if _VAGUE.search(question.strip()):
        return [
            Cue(
                check="vague_question",
                severity="flag",
                target="question",
                message="the question is too vague to have one answer",
            )
        ]
    return []


def item_checks(
    question: str,
    answer: str,
    distractors: list[str],
    *,
    rationale: str | None = None,
    material: str = "",
    embed: Embed | None = None,
    is_common: Callable[[str], bool] | None = None,
    opposed: Callable[[str, str], bool | None] | None = None,
) -> list[Cue]:
    """Every check above on one item (``is_common`` and ``opposed``: WordNet's, when it is set up)."""
    return [
        *subject_options(question, answer, distractors),
        *near_duplicates(answer, distractors, embed, opposed=opposed, question=question),
        *other_forms(answer, distractors),
        *names_mismatch(question, answer, material, is_common),
        *rationale_states(rationale, answer, distractors),
        *vague_question(question),
    ]
