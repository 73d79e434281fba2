"""The review of an item: the verifier's verdict, every field editable, regenerate, accept, export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from coe.agents.validation import validate_distractors
from coe.ui.runs import Run

from coe.errors import CoeError

from coe.ui.markdown_text import literal
from coe.ui.resources import current_run, plain_error


def _review_values(run: Run, request: dict[str, Any]) -> tuple[str, str, list[str]]:
    ss, rid, r = st.session_state, run.run_id, run.round
    q = ss.get(f"rq_{rid}_{r}", request.get("question") or "")
    a = ss.get(f"ra_{rid}_{r}", request.get("answer") or "")
    ds = [ss.get(f"rd_{rid}_{r}_{i}", d) for i, d in enumerate(request.get("distractors") or [])]
    return q, a, ds


def _review_texts(run: Run, request: dict[str, Any]) -> dict[str, Any]:
    """The rationale and the misconception notes as the reviewer left them."""
    ss, rid, r = st.session_state, run.run_id, run.round
    notes = list(request.get("distractor_notes") or [])
    return {
        "rationale": ss.get(f"rr_{rid}_{r}", request.get("rationale") or ""),
        "distractor_notes": [
            ss.get(f"rn_{rid}_{r}_{i}", notes[i] if i < len(notes) else "")
            for i in range(len(request.get("distractors") or []))
        ],
    }


Decision = tuple[dict[str, Any], list[str | None] | None]  # the resume value, and the kept options by slot


def _decide(make: Callable[[Run, dict[str, Any]], Decision]) -> None:
    """Resume the current run with the decision made from the reviewer's values; a refusal is flashed."""
    run = current_run()
    request = run.review_request() if run is not None else None
    if run is None or request is None:
        return
    decision, slots = make(run, request)
    try:
        run.resume(decision, slots=slots)
    except CoeError as exc:
        st.session_state["flash"] = plain_error(exc)


def regenerate(index: int | None) -> None:
    """Regenerate every distractor (``index`` None) or only one, keeping the (edited) others in their slots."""

    def make(run: Run, request: dict[str, Any]) -> Decision:
        q, a, ds = _review_values(run, request)
        keep = [] if index is None else [d for i, d in enumerate(ds) if i != index]
        slots = None if index is None else [None if i == index else d for i, d in enumerate(ds)]
        return {"action": "regenerate_distractors", "keep": keep, "edits": {"question": q, "answer": a}}, slots

    _decide(make)


def swap_question(question: str) -> None:
    """Put one of the other questions the question step kept in; the rest of the item is written again for
    it and checked again."""

    def make(run: Run, request: dict[str, Any]) -> Decision:
        answer = _review_values(run, request)[1]
        return {"action": "swap_question", "question": question, "edits": {"answer": answer}}, None

    _decide(make)


def accept() -> None:
    def make(run: Run, request: dict[str, Any]) -> Decision:
        q, a, ds = _review_values(run, request)
        edits = {"question": q, "answer": a, "distractors": ds, **_review_texts(run, request)}
        return {"action": "accept", "edits": edits}, None

    _decide(make)


def review_panel(run: Run) -> None:
    request = run.review_request()
    if request is None:
        st.warning("This run is not waiting for a review.")
        return
    rid, r = run.run_id, run.round
    st.subheader("Review")
    if request.get("problems"):
        st.warning("The last decision was refused: " + "; ".join(request["problems"]))
    if request.get("repaired"):
        st.info("Filled in from exemplar options by the repair step: " + ", ".join(request["repaired"]))
    verification_summary(request)
    v = request.get("verification") or {}
    probs, also = v.get("option_probs") or {}, v.get("also_correct") or {}
    st.text_area("Question", value=request.get("question") or "", key=f"rq_{rid}_{r}")
    others = request.get("questions") or []
    if others:
        st.caption(
            "Other questions kept for this answer — one click puts one in, then the explanation, the "
            "wrong options and the checks are done again for it:"
        )
        for i, other in enumerate(others):
            st.button(
                f"⇄ {literal(other)}",
                key=f"swapq_{rid}_{r}_{i}",
                on_click=swap_question,
                args=(other,),
                help="Swap this question in and check the item again",
            )
    st.text_input("Correct answer", value=request.get("answer") or "", key=f"ra_{rid}_{r}")
    if request.get("answer") in probs:
        st.caption(f"Student model's probability on the key: {probs[request['answer']]:.2f}")
    st.text_area(
        "Rationale",
        value=request.get("rationale") or "",
        key=f"rr_{rid}_{r}",
        placeholder="Why the answer is correct (shown as feedback in the exports)",
    )
    note_list = list(request.get("distractor_notes") or [])
    for i, d in enumerate(request.get("distractors") or []):
        c1, c2 = st.columns([8, 2], vertical_alignment="bottom")
        c1.text_input(f"Distractor {i + 1}", value=d, key=f"rd_{rid}_{r}_{i}")
        c2.button(
            "↻ Regenerate",
            key=f"regen_{rid}_{r}_{i}",
            help="Regenerate only this distractor",
            on_click=regenerate,
            args=(i,),
        )
        checks = []
        if d in probs:
            checks.append(f"draws {probs[d]:.2f} of a student's choice")
        if d in also:
            flagged = " — FLAGGED" if d in v.get("second_keys", []) else ""
            checks.append(f"judged also correct with P {also[d]:.2f}{flagged}")
        if checks:
            c1.caption(" · ".join(checks))
        c1.text_input(
            f"Why a student would pick distractor {i + 1}",
            value=note_list[i] if i < len(note_list) else "",
            key=f"rn_{rid}_{r}_{i}",
            placeholder="e.g. confuses eaters and eaten",
        )
    q, a, ds = _review_values(run, request)
    n = run.state.get("n_distractors") or len(ds)
    verdict = validate_distractors(ds, a, n)
    problems = list(verdict.problems) + (["the question is empty"] if not q.strip() else [])
    if problems:
        st.error("Validator: " + "; ".join(problems))
    else:
        st.success(f"Validator: {n} distinct distractors, none equal to the answer.")
    c1, c2 = st.columns(2)
    c1.button(
        "Regenerate all distractors", key=f"regen_all_{rid}_{r}", on_click=regenerate, args=(None,), width="stretch"
    )
    c2.button(
        "Accept", type="primary", key=f"accept_{rid}_{r}", on_click=accept, disabled=bool(problems), width="stretch"
    )


def verification_summary(item: dict[str, Any]) -> None:
    """The verifier's verdict in plain words: verified, or flagged with its reasons."""
    status = item.get("status")
    if status == "verified":
        st.success(f"Verified by a student model · difficulty {item.get('difficulty') or '-'}")
    check = item_check(item)
    if status == "unconfirmed":
        st.warning(
            "Unconfirmed: no check found a problem, but no model could confirm the key."
            + (f"\n\n**{literal(check)}**" if check else "")
        )
    elif status == "flagged":
        st.error("Flagged — check before use:\n" + "\n".join(f"- {literal(r)}" for r in item.get("reasons") or []))
    elif status == "unverified":
        st.info("Not verified (verification was off).")
    for w in (item.get("verification") or {}).get("warnings") or []:
        if w != check:
            st.caption(f"Note: {literal(w)}")


def item_check(item: dict[str, Any]) -> str | None:
    """The claim a reviewer must check on an item no model confirmed ("Check in the picture: ...")."""
    if item.get("status") != "unconfirmed":
        return None
    return item.get("check") or (item.get("verification") or {}).get("check")


def export_panel(run: Run, item: dict[str, Any]) -> None:
    """*Export item* in every LMS format (the image embedded where the format can hold one)."""
    from coe.exports import FORMATS, SUFFIXES, ExportItem, render

    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    fmt = c1.selectbox(
        "Export format",
        FORMATS,
        key=f"export_fmt_{run.run_id}",
        help="Moodle XML and QTI 2.1 carry the image; GIFT and Aiken cannot (GIFT names it in a comment).",
    )
    try:
        data = render([ExportItem.from_console(item, id=run.run_id)], fmt)
    except CoeError as exc:
        c2.error(f"Cannot export as {fmt}. {plain_error(exc)}")
        return
    c2.download_button(
        f"Export item ({fmt})",
        data=data,
        file_name=f"coe-item-{run.run_id}{SUFFIXES[fmt]}",
        key=f"export_{run.run_id}",
        type="primary",
    )


def options_markdown(item: dict[str, Any]) -> str:
    """The options as a list, the key marked in words and with a Material icon (Streamlit ships the icon font:
    no emoji font needed)."""
    return "\n".join(
        [
            f"- :material/check_circle: {literal(item.get('answer'))} **(correct)**",
            *[f"- {literal(d)}" for d in item.get("distractors") or []],
        ]
    )


def accepted_panel(run: Run) -> None:
    item = run.item()
    st.subheader("Accepted item")
    st.markdown(f"**{literal(item['question'])}**")
    st.markdown(options_markdown(item))
    if item.get("rationale"):
        st.caption(f"Rationale: {literal(item['rationale'])}")
    export_panel(run, item)
