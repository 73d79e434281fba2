"""The verification of a finished item by the answering agent (``student``). From its answers the item gets:
the key's probability and whether it is the top choice, the strongest distractor, a per-option "is this also
a correct answer?" judgement (relative to the same judgement on the key, so a model that says Yes to
everything does not flag everything), a solve without the picture, the model-free cues, a status and an
estimated difficulty.

Every prompt of one item starts with the same material block, so llama.cpp's prefix cache evaluates it once
for all of these calls."""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from .claim import about_picture, check_line, claim
from .cues import Cue, common_word, kind_check_available, opposed, option_cues, question_cues
from .fit import Fit, answer_fit, misfit_reason, template_fit
from .item_checks import item_checks
from .student import Meter, judge, solve

VERIFY_VERSION = 3  # part of evaluation cache keys: bump when verification changes its verdicts


class VerifyThresholds(Protocol):
    """What verification reads from the run's settings: ``coe.graphs.settings.GraphSettings`` (documented
    there) has these fields; a Protocol, so the agents do not depend on the graph."""

    orders: int
    key_margin: float
    min_key_prob: float
    also_correct_yes: float
    also_correct_gap: float
    given_min_yes: float
    confirm_margin: float
    vague_spread: float
    text_only: bool | None  # None counts as off: the graph resolves it by backend first


class Verification(BaseModel):
    """``verified``: no check found a problem and the student model chose the key with a margin;
    ``unconfirmed``: no problem found, but the student could not confirm the key (a weak or text-only
    model on a question about a picture); ``flagged``: a check found a problem (``reasons``)."""

    key: str
    status: Literal["verified", "unconfirmed", "flagged"]
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    key_prob: float
    key_top: bool
    option_probs: dict[str, float]  # the student's probability of each option (key included)
    strongest_distractor: str | None = None
    strongest_prob: float = 0.0
    key_yes: float | None = None  # P("Yes") that the key answers the question
    also_correct: dict[str, float] = Field(default_factory=dict)  # P("Yes") per distractor
    second_keys: list[str] = Field(default_factory=list)
    text_only_key_prob: float | None = None
    needs_image: bool | None = None
    cues: list[Cue] = Field(default_factory=list)
    fit: Fit | None = None  # the key against what the bank answers such questions with
    claim: str = ""  # what the key asserts, written out ("the copepod is ...")
    check: str | None = None  # what a reviewer must check when no model could confirm it
    sees_picture: bool | None = None  # whether the student saw the picture (None: the item has none)
    blind: bool = False  # the question is about a picture the student did not see
    difficulty: Literal["easy", "medium", "hard"]
    method: str = ""
    seconds: float = 0.0
    calls: int = 0

    def flagged_distractors(self) -> list[str]:
        """Distractors to replace: judged correct too, or flagged by a cue."""
        cued = [c.option for c in self.cues if c.severity == "flag" and c.target == "distractor" and c.option]
        return list(dict.fromkeys([*self.second_keys, *cued]))

    def question_problems(self) -> list[str]:
        """Reasons that point at the question rather than an option."""
        out = [c.message for c in self.cues if c.severity == "flag" and c.target == "question"]
        if self.fit is not None and self.fit.misfit:
            out.append(misfit_reason(self.fit, self.key))
        if not self.key_top and self.strongest_distractor not in self.second_keys:
            out.append(
                f'a student model prefers "{self.strongest_distractor}" ({self.strongest_prob:.2f}) '
                f"to the key ({self.key_prob:.2f})"
            )
        return out


def check_given_question(
    llm,
    item,
    question: str,
    settings: VerifyThresholds,
    *,
    retriever=None,
    exclude_ids: list[str] | None = None,
    exclude_splits: list[str] | None = None,
) -> tuple[bool, float, str]:
    """Whether the teacher's answer answers the teacher's question at all: (ok, P(yes), why not). The
    exemplar bank decides when it knows such questions; the student's judgement otherwise."""
    yes = judge(llm, item, question, [item.answer])[item.answer]
    if retriever is not None:
        for fit_of in (answer_fit, template_fit):
            fit = fit_of(retriever, question, item.answer, exclude_ids=exclude_ids, exclude_splits=exclude_splits)
            if fit.known:
                return not fit.misfit, yes, misfit_reason(fit, item.answer) if fit.misfit else ""
    ok = yes >= settings.given_min_yes
    return ok, yes, "" if ok else f"a student model judged it with P(yes) {yes:.2f}"


def difficulty_of(key_prob: float, strongest_prob: float) -> Literal["easy", "medium", "hard"]:
    """Easy when the student is sure of the key; hard when it is unsure or a distractor draws much."""
    if key_prob >= 0.75 and strongest_prob < 0.15:
        return "easy"
    if key_prob < 0.45 or strongest_prob >= 0.3:
        return "hard"
    return "medium"


def verify_item(
    llm,
    item,
    question: str,
    distractors: list[str],
    *,
    settings: VerifyThresholds,
    question_given: bool = False,
    seed: int = 0,
    retriever=None,
    exclude_ids: list[str] | None = None,
    exclude_splits: list[str] | None = None,
    rationale: str | None = None,
    model_free_first: bool = False,
) -> Verification:
    """``retriever`` (the exemplar bank) adds the model-free question-answer fit check and the embedding
    near-duplicate check; ``rationale`` (the item's own) lets a distractor it states as true be caught.
    ``model_free_first``: an item the model-free checks flag is returned flagged without asking the student
    (the evaluation's shortcut; the graph asks anyway, to send every problem back). ``settings``: the
    thresholds (``GraphSettings``)."""
    s = settings
    t0 = time.perf_counter()
    meter = Meter()
    key = item.answer
    options = [key, *distractors]
    fit = (
        answer_fit(retriever, question, key, exclude_ids=exclude_ids, exclude_splits=exclude_splits)
        if retriever is not None
        else None
    )
    cues = model_free_cues(item, question, distractors, rationale=rationale, retriever=retriever)
    if model_free_first and (fit is not None and fit.misfit or any(c.severity == "flag" for c in cues)):
        return _flagged_without_student(item, question, distractors, cues, fit, t0)
    probs = solve(llm, item, question, options, seed=seed, orders=s.orders, meter=meter)
    key_prob = probs[key]
    strongest = max(distractors, key=lambda d: probs[d]) if distractors else None
    strongest_prob = probs[strongest] if strongest else 0.0
    yes = judge(llm, item, question, options, meter=meter)
    key_yes = yes[key]
    also = {d: yes[d] for d in distractors}
    second = [d for d in distractors if also[d] >= s.also_correct_yes and also[d] >= key_yes - s.also_correct_gap]
    text_only = needs_image = None
    if s.text_only and (item.images or item.image_text):
        text_probs = solve(llm, item, question, options, seed=seed, use_image=False, orders=s.orders, meter=meter)
        text_only = text_probs[key]
        needs_image = not (text_only >= max(text_probs.values()) and text_only >= 0.5)
    if fit is not None and not fit.known and _spread(probs) < s.vague_spread:
        cues.append(
            Cue(
                check="vague_question",
                severity="flag",
                target="question",
                message="no exemplar asks this question and a student model cannot tell the options "
                "apart: it may have no one answer",
            )
        )
    reasons: list[str] = []
    warnings = [c.message for c in cues if c.severity == "warn"]
    if not kind_check_available():
        warnings.append("proper-noun kind check not made (WordNet is not set up)")
    if needs_image is False:
        warnings.append("answerable without the picture")
    reasons += [c.message for c in cues if c.severity == "flag"]
    if fit is not None and fit.misfit:
        reasons.append(misfit_reason(fit, key))
    reasons += [f'"{d}" may also be a correct answer (P(yes) {also[d]:.2f} vs key {key_yes:.2f})' for d in second]
    if strongest is not None and strongest_prob > key_prob + s.key_margin:
        reasons.append(f'a student model prefers "{strongest}" ({strongest_prob:.2f}) to the key ({key_prob:.2f})')
    if key_prob < s.min_key_prob:
        reasons.append(f"the key gets only {key_prob:.2f} from a student model")
    if question_given and key_yes < s.given_min_yes and not (fit is not None and fit.known):
        reasons.append(f'"{key}" does not seem to answer the given question (P(yes) {key_yes:.2f})')
    has_picture = bool(item.images or item.image_text)
    sees = (llm.supports_images and bool(item.images)) if has_picture else None
    blind = has_picture and not sees and about_picture(question)
    status, must_check = decide(reasons, key_prob, strongest, strongest_prob, s.confirm_margin, blind_to_picture=blind)
    check = check_line(question, key, picture=blind) if must_check else None
    if check:
        warnings.insert(0, check)
    if status == "unconfirmed" and strongest is not None:
        warnings.insert(
            1 if check else 0,
            f"a student model could not confirm the key ({key_prob:.2f} against "
            f'{strongest_prob:.2f} for "{strongest}")',
        )
    return Verification(
        key=key,
        fit=fit,
        status=status,
        reasons=reasons,
        warnings=warnings,
        claim=claim(question, key),
        check=check,
        sees_picture=sees,
        blind=blind,
        key_prob=key_prob,
        key_top=key_prob >= max(probs.values()),
        option_probs=probs,
        strongest_distractor=strongest,
        strongest_prob=strongest_prob,
        key_yes=key_yes,
        also_correct=also,
        second_keys=second,
        text_only_key_prob=text_only,
        needs_image=needs_image,
        cues=cues,
        difficulty=difficulty_of(key_prob, strongest_prob),
        method=meter.method,
        seconds=round(time.perf_counter() - t0, 3),
        calls=meter.calls,
    )


def _flagged_without_student(
    item, question: str, distractors: list[str], cues: list[Cue], fit: Fit | None, t0: float
) -> Verification:
    reasons = [c.message for c in cues if c.severity == "flag"]
    if fit is not None and fit.misfit:
        reasons.append(misfit_reason(fit, item.answer))
    return Verification(
        key=item.answer,
        fit=fit,
        status="flagged",
        reasons=reasons,
        warnings=[c.message for c in cues if c.severity == "warn"],
        claim=claim(question, item.answer),
        key_prob=0.0,
        key_top=False,
        option_probs={},
        cues=cues,
        difficulty="hard",
        method="model-free",
        seconds=round(time.perf_counter() - t0, 3),
        calls=0,
    )


def model_free_cues(
    item, question: str, distractors: list[str], *, rationale: str | None = None, retriever=None
) -> list[Cue]:
    """Every check that needs no language model (text, WordNet, and the retriever's similarity model when
    given)."""
    key = item.answer
    material = " ".join((item.context, item.image_text))
    embedder = getattr(retriever, "similarity", None)
    return [
        *question_cues(question, key, distractors),
        *option_cues(question, key, distractors, material),
        *item_checks(
            question,
            key,
            distractors,
            rationale=rationale,
            material=material,
            embed=embedder.embed if embedder is not None else None,
            is_common=common_word if kind_check_available() else None,
            opposed=opposed if kind_check_available() else None,
        ),
    ]


def recheck(item: dict[str, Any], context: str = "") -> list[str]:
    """What today's model-free checks find in a stored item (a batch run's, edits applied): their flags'
    reasons, and for an item about a picture that no student saw, its claim to check. Empty when nothing
    stands in the way of a "verified" the item already carries — so "Accept all verified" never accepts what
    these checks would now flag or leave unconfirmed."""
    from types import SimpleNamespace

    if not item.get("question") or not item.get("answer"):
        return ["the item has no question or answer"]
    question, distractors = item["question"], list(item.get("distractors") or [])
    stored = item.get("verification") or {}
    stand_in = SimpleNamespace(answer=item["answer"], context=context, image_text="")
    out = [
        c.message
        for c in model_free_cues(stand_in, question, distractors, rationale=item.get("rationale"))
        if c.severity == "flag"
    ]
    # items written before the student recorded what it saw: a picture question counts as unseen
    blind = stored["blind"] if "blind" in stored else bool(item.get("image")) and about_picture(question)
    if blind:
        out.append(check_line(question, item["answer"], picture=True))
    return out


def _spread(probs: dict[str, float]) -> float:
    top = sorted(probs.values(), reverse=True)
    return top[0] - top[1] if len(top) > 1 else 1.0


def decide(
    reasons: list[str],
    key_prob: float,
    strongest: str | None,
    strongest_prob: float,
    margin: float,
    *,
    blind_to_picture: bool = False,
) -> tuple[str, bool]:
    """(status, whether the reviewer must check the key's claim). ``verified`` needs no reason to flag, the
    key ahead of every distractor by ``margin``, and a student that saw what the question is about: a
    text-only model cannot confirm what a picture shows."""
    if reasons:
        return "flagged", False
    if blind_to_picture:
        return "unconfirmed", True
    if strongest is not None and key_prob < strongest_prob + margin:
        return "unconfirmed", True
    return "verified", False


def verification_trace(v: Verification) -> dict[str, Any]:
    return {
        "status": v.status,
        "reasons": v.reasons,
        "warnings": v.warnings,
        "key_prob": v.key_prob,
        "fit": v.fit.model_dump() if v.fit else None,
        "option_probs": v.option_probs,
        "also_correct": v.also_correct,
        "key_yes": v.key_yes,
        "text_only_key_prob": v.text_only_key_prob,
        "difficulty": v.difficulty,
        "method": v.method,
        "check": v.check,
        "claim": v.claim,
        "calls": v.calls,
    }
