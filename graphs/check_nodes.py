"""The graph's checking nodes: validation of the distractors (re-ask or repair), verification by a student
model (done, back to the question, or replace the distractors judged correct) and the misconception notes.
Like ``nodes``, each returns its update plus a trace entry and loads no model."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from coe.agents.generation import notes_call
from coe.agents.llm_call import prompt_tallied, run_call
from coe.agents.validation import clean_option, exemplar_options, fill_from_options, normalize, validate_distractors
from coe.agents.verify import verification_trace, verify_item
from coe.errors import ModelOutputError
from coe.retrieval.exemplars import Exemplar

from .node_inputs import item_input, pool_texts, rejected_options, run_settings, shown_exemplars
from .services import Services, services_of
from .settings import settings_from
from .state import CoEState


def validate(state: CoEState, config: RunnableConfig) -> dict[str, Any]:
    s = settings_from(config)
    n = state.get("n_distractors") or s.n_distractors
    rejected = rejected_options(state)
    candidates = list(state.get("candidate_distractors", []))
    back = [c for c in candidates if isinstance(c, str) and normalize(clean_option(c)) in rejected]
    complaints = [f"{clean_option(c)!r} was rejected by {rejected[normalize(clean_option(c))]}" for c in back]
    verdict = validate_distractors([c for c in candidates if c not in back], state["answer"], n)
    problems = [*complaints, *verdict.problems]
    entry: dict[str, Any] = {"attempt": state.get("attempts", 0), "valid": verdict.valid, "problems": problems}
    update: dict[str, Any] = {"valid": verdict.valid, "feedback": "; ".join(problems)}
    if verdict.valid:
        update["distractors"] = verdict.kept
    elif state.get("attempts", 0) > s.max_retries:
        exemplar_opts = exemplar_options([Exemplar(**e) for e in state.get("exemplars", [])])
        options = [o for o in pool_texts(state, config, n) + exemplar_opts if normalize(o) not in rejected]
        filled, added = fill_from_options(verdict.kept, state["answer"], n, options)
        final = validate_distractors(filled, state["answer"], n)
        entry.update({"repair": "filled from exemplars", "filled": added, "valid_after_repair": final.valid})
        checked = state.get("distractors") if state.get("distractor_rounds") else None
        if not final.valid and checked:
            # The verifier sent back options that nothing can replace (a template with few options): the set it
            # judged stays, with its flag and reasons, for a reviewer to decide; the item is not lost.
            entry.update({"repair": "kept the verified set: no valid replacement", "kept": list(checked)})
            update.update({"valid": True, "distractors": list(checked), "route": "kept"})
            update["reasons"] = [
                *state.get("reasons", []),
                f"no valid replacement for the options the verifier rejected ({final.feedback()}): they stay",
            ]
        elif not final.valid:
            raise ModelOutputError(f"could not produce {n} valid distractors: {final.feedback()}")
        else:
            update.update({"valid": True, "distractors": final.kept, "repaired": added})
    update["trace"] = [entry]
    return update


def after_validate(state: CoEState) -> str:
    """On to verification; back to the distractor step; or, for a verified set kept flagged, past verification."""
    if not state.get("valid"):
        return "retry"
    return "kept" if state.get("route") == "kept" else "done"


@prompt_tallied
def verify(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    """Take the finished item as a student would and decide: done, back to the question, or replace the
    distractors judged correct (each bounded); what still fails ends ``flagged`` with its reasons."""
    (s, _), llm = run_settings(config, runtime), services_of(runtime).llm
    if not s.verify:
        return {"status": "unverified", "reasons": [], "route": "done", "trace": [{"skipped": "verification off"}]}
    given = bool(state.get("question_given"))
    v = verify_item(
        llm,
        item_input(state),
        state["question"],
        state["distractors"],
        question_given=given,
        retriever=services_of(runtime).retriever,
        exclude_ids=state.get("exclude_ids", []),
        exclude_splits=s.exclude_splits,
        seed=s.seed,
        rationale=state.get("rationale"),
        settings=s,
    )
    update: dict[str, Any] = {
        "status": v.status,
        "reasons": v.reasons,
        "difficulty": v.difficulty,
        "verification": v.model_dump(mode="json"),
        "route": "done",
    }
    entry: dict[str, Any] = verification_trace(v)
    q_rounds, d_rounds = state.get("question_rounds", 0), state.get("distractor_rounds", 0)
    problems, bad = v.question_problems(), v.flagged_distractors()
    if v.status == "flagged" and problems and not given and q_rounds < s.max_question_rounds:
        update.update(
            {
                "route": "question",
                "question_rounds": q_rounds + 1,
                "attempts": 0,
                "question_feedback": "; ".join(problems),
                "rejected_questions": state.get("rejected_questions", []) + [state["question"]],
            }
        )
    elif v.status == "flagged" and bad and d_rounds < (s.max_distractor_rounds or 0):
        update.update(
            {
                "route": "distractors",
                "distractor_rounds": d_rounds + 1,
                "attempts": 0,
                "feedback": "",
                "rejected_options": state.get("rejected_options", []) + bad,
            }
        )
    entry["decision"] = update["route"]
    update["trace"] = [entry]
    return update


def after_verify(state: CoEState) -> str:
    return state.get("route", "done")


@prompt_tallied
def notes(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    """Why a student would pick each distractor, for the reviewer and the exports."""
    s, llm = settings_from(config), services_of(runtime).llm
    if not s.write_notes:
        return {"distractor_notes": [], "trace": [{"skipped": "notes off"}]}
    try:
        value, trace = run_call(
            llm,
            notes_call(llm, item_input(state), state["question"], state["distractors"], shown_exemplars(state, config)),
        )
    except ModelOutputError as exc:  # notes are an aid to the reviewer: their absence is recorded, not fatal
        return {"distractor_notes": [], "trace": [{**getattr(exc, "trace", {}), "error": str(exc)}]}
    return {"distractor_notes": value, "trace": [trace]}
