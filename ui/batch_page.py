"""The console's Batch page: open a batch run, filter it, review each item (edit every field, regenerate
distractors, accept, reject), accept every verified item at once, and export.

Every decision and edit goes straight to the run's ledger (``coe.batch.ledger``), so it survives a restart
of the console and is what ``coe batch export`` writes. Callbacks open the ledger themselves: a page run's
ledger is closed by the time a button's callback runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import streamlit as st
from coe.agents.validation import validate_distractors
from coe.agents.verify import recheck
from coe.batch.ledger import Ledger

from coe.errors import CoeError
from coe.settings import settings
from coe.ui.resources import plain_error, services_for_banks
from coe.ui.review_panel import verification_summary
from coe.ui.trace_view import render_trace

FILTERS = ("all", "verified", "unconfirmed", "flagged", "failed", "bad rows", "undecided", "accepted", "rejected")
PAGE_SIZE = 10


def _keep(entry: dict[str, Any], shown: str) -> bool:
    if shown == "all":
        return True
    if shown == "failed":
        return entry["state"] == "failed"
    if shown == "bad rows":
        return entry["state"] == "invalid"
    if entry["state"] != "done":
        return False
    if shown == "undecided":
        return entry["decision"] is None
    if shown in ("accepted", "rejected"):
        return entry["decision"] == shown
    return entry["status"] == shown


def still_verified(entries: list[dict[str, Any]]) -> list[str]:
    """Ids of the undecided verified items that today's model-free checks still pass (a run written before a
    check existed keeps its old verdicts in the ledger)."""
    return [
        e["id"]
        for e in entries
        if e["state"] == "done"
        and e["status"] == "verified"
        and e["decision"] is None
        and not recheck(e["item"], (e.get("input") or {}).get("context", ""))
    ]


def _act(run_dir: str, action) -> None:
    """Run ``action(ledger)`` in a callback; a failure is shown on the next page run."""
    try:
        with Ledger(run_dir, create=False) as ledger:
            action(ledger)
    except CoeError as exc:
        st.session_state["batch_flash"] = plain_error(exc)


def _fields(key: str, item: dict[str, Any]) -> dict[str, Any]:
    ss = st.session_state
    n = len(item.get("distractors") or [])
    notes = [*(item.get("distractor_notes") or []), *[""] * n]
    return {
        "question": ss.get(f"{key}_q", item["question"]),
        "answer": ss.get(f"{key}_a", item["answer"]),
        "distractors": [ss.get(f"{key}_d{i}", d) for i, d in enumerate(item.get("distractors") or [])],
        "rationale": ss.get(f"{key}_r", item.get("rationale") or ""),
        "distractor_notes": [ss.get(f"{key}_n{i}", notes[i]) for i in range(n)],
    }


def save_edits(run_dir: str, row_id: str, key: str, item: dict[str, Any], then: str | None = None) -> None:
    fields = _fields(key, item)
    verdict = validate_distractors(fields["distractors"], fields["answer"], len(fields["distractors"]))
    if not fields["question"].strip() or not verdict.valid:
        problems = verdict.problems + (["the question is empty"] if not fields["question"].strip() else [])
        st.session_state["batch_flash"] = f"Not saved ({row_id}): " + "; ".join(problems)
        return
    changed = {k: v for k, v in fields.items() if v != (item.get(k) if k != "rationale" else item.get(k) or "")}

    def action(ledger: Ledger) -> None:
        if changed:
            ledger.edit(row_id, changed)
        if then is not None:
            ledger.decide(row_id, then)

    _act(run_dir, action)


def regenerate(run_dir: str, row_id: str, key: str, item: dict[str, Any], model: str | None) -> None:
    """New distractors for the options whose *keep* box is off; kept ones stay in their slots."""
    from coe.batch.review import regenerate as regenerate_item

    ss = st.session_state
    keep = [d for i, d in enumerate(item.get("distractors") or []) if ss.get(f"{key}_k{i}")]
    with Ledger(run_dir, create=False) as ledger:  # the run's own exemplar banks, for the checks
        banks = tuple((ledger.meta().get("settings") or {}).get("banks") or ["default"])
    try:
        services = services_for_banks(settings().services or "", model, banks)
    except CoeError as exc:
        st.session_state["batch_flash"] = plain_error(exc)
        return
    _act(run_dir, lambda ledger: regenerate_item(ledger, row_id, keep, services))


def item_panel(run_dir: str, entry: dict[str, Any], model: str | None) -> None:
    row_id = entry["id"]
    with st.container(border=True, key=f"batch_item_{row_id}"):
        if entry["state"] != "done":
            kind = "Bad row" if entry["state"] == "invalid" else "Failed"
            st.markdown(f"**{row_id}** · manifest line {entry['line']} · {kind.lower()}")
            st.error(f"{kind}: {plain_error(entry['error'])}")
            return
        item = entry["item"]
        # widget keys follow the item's content: after a regeneration the fields show the new item
        key = f"b_{row_id}_" + hashlib.sha256(json.dumps(item.get("distractors")).encode()).hexdigest()[:8]
        decision = entry["decision"] or "undecided"
        st.markdown(
            f"**{row_id}** · manifest line {entry['line']} · {entry['status']} · **{decision}**"
            + (f" · edited: {', '.join(entry['edited'])}" if entry["edited"] else "")
        )
        left, right = st.columns([1, 3])
        if item.get("image"):
            left.image(item["image"], width=180)
        with right:
            st.text_area("Question", value=item["question"], key=f"{key}_q", height=68)
            st.text_input("Correct answer", value=item["answer"], key=f"{key}_a")
            for i, d in enumerate(item.get("distractors") or []):
                c1, c2, c3 = st.columns([3, 4, 1], vertical_alignment="bottom")
                c1.text_input(f"Wrong option {i + 1}", value=d, key=f"{key}_d{i}")
                notes = item.get("distractor_notes") or []
                c2.text_input(
                    f"Why a student may pick it ({i + 1})", value=notes[i] if i < len(notes) else "", key=f"{key}_n{i}"
                )
                c3.checkbox(
                    "keep", value=False, key=f"{key}_k{i}", help="Kept in its slot when regenerating distractors"
                )
            st.text_area("Rationale", value=item.get("rationale") or "", key=f"{key}_r", height=90)
            verification_summary(item)
            context = (entry.get("input") or {}).get("context", "")
            if entry["status"] == "verified" and (found := recheck(item, context)):
                st.warning("Verified when written, but not by today's checks:\n" + "\n".join(f"- {r}" for r in found))
        b1, b2, b3, b4 = st.columns(4)
        b1.button(
            "Accept",
            type="primary",
            key=f"{key}_accept",
            on_click=save_edits,
            args=(run_dir, row_id, key, item, "accepted"),
            width="stretch",
        )
        b2.button(
            "Reject",
            key=f"{key}_reject",
            on_click=_act,
            args=(run_dir, lambda ledger: ledger.decide(row_id, "rejected")),
            width="stretch",
        )
        b3.button(
            "Save edits", key=f"{key}_save", on_click=save_edits, args=(run_dir, row_id, key, item), width="stretch"
        )
        b4.button(
            "Regenerate distractors",
            key=f"{key}_regen",
            on_click=regenerate,
            args=(run_dir, row_id, key, item, model),
            width="stretch",
            help="Writes new options in place of those whose keep box is off",
        )
        if st.toggle("Show the trace", key=f"{key}_trace"):
            render_trace(item.get("trace") or [], key=f"{key}_tr", exemplars=item.get("exemplars"))


@st.cache_data(max_entries=8, show_spinner="Writing the export…")
def _rendered(run_dir: str, fmt: str, only: str, stamp: tuple) -> tuple[bytes, int]:
    """``render_run``, again only when the ledger changed (``stamp``): a page rerun must not re-encode
    every image of the run."""
    from coe.batch.export import render_run

    return render_run(run_dir, fmt, only=only)


def _stamp(run_dir: str) -> tuple:
    from pathlib import Path

    from coe.batch.ledger import LEDGER_NAME

    files = [Path(run_dir) / LEDGER_NAME, Path(run_dir) / f"{LEDGER_NAME}-wal"]
    return tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None for f in files)


def export_section(run_dir: str) -> None:
    from coe.batch.export import SELECTIONS
    from coe.exports import FORMATS, SUFFIXES

    st.subheader("Export")
    c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
    fmt = c1.selectbox("Format", FORMATS, key="batch_export_fmt")
    only = c2.selectbox(
        "Items",
        SELECTIONS,
        index=1,
        key="batch_export_only",
        help="all written items, the accepted ones, the verified ones not rejected, or all not rejected",
    )
    try:
        data, n = _rendered(run_dir, fmt, only, _stamp(run_dir))
    except CoeError as exc:
        c3.info(plain_error(exc))
        return
    c3.download_button(
        f"Export {n} items ({fmt})",
        data=data,
        file_name=f"coe-batch{SUFFIXES[fmt]}",
        key="batch_export",
        type="primary",
    )


def batch_page() -> None:
    run_dir = st.text_input(
        "Run folder", key="batch_dir", placeholder="e.g. the folder given to coe batch run --out"
    ).strip()
    if not run_dir:
        st.caption("Open a run written by `coe batch run MANIFEST --out FOLDER` to review its items.")
        return
    try:
        with Ledger(run_dir, create=False) as ledger:
            counts, entries = ledger.counts(), ledger.entries()
            model = (ledger.meta().get("settings") or {}).get("model")
    except CoeError as exc:
        st.error(plain_error(exc))
        return
    if flash := st.session_state.pop("batch_flash", None):
        st.warning(flash)
    cols = st.columns(7)
    for col, (label, k) in zip(
        cols,
        (
            ("rows", "total"),
            ("written", "done"),
            ("verified", "verified"),
            ("flagged", "flagged"),
            ("failed", "failed"),
            ("accepted", "accepted"),
            ("rejected", "rejected"),
        ),
    ):
        col.metric(label, counts[k])
    c1, c2 = st.columns([2, 2], vertical_alignment="bottom")
    shown = c1.selectbox("Show", FILTERS, key="batch_filter")
    sound = still_verified(entries)
    c2.button(
        f"Accept all verified ({len(sound)})",
        key="batch_accept_verified",
        on_click=_act,
        args=(run_dir, lambda ledger: [ledger.decide(row_id, "accepted") for row_id in sound]),
        help="Accepts every verified item nobody has decided on yet, unless today's checks flag it or "
        "leave a claim about its picture to check",
    )
    chosen = [e for e in entries if _keep(e, shown)]
    pages = max(1, -(-len(chosen) // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="batch_page_no")
    st.caption(f"{len(chosen)} of {len(entries)} rows shown")
    for entry in chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        item_panel(run_dir, entry, model)
    export_section(run_dir)
