"""Runs recorded by the console and the CLI: listed, reopened, downloaded; a review resumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st
from coe.ui.runs import Run
from coe.ui.trace_view import render_trace

from coe import history
from coe.errors import CoeError
from coe.paths import coe_home
from coe.settings import settings

from coe.ui.resources import dataset, plain_error, shared_graph, shared_services
from coe.ui.markdown_text import literal
from coe.ui.review_panel import options_markdown


# -- history ------------------------------------------------------------------------------------


def reopen(record: dict[str, Any]) -> None:
    model = (record.get("settings") or {}).get("model")
    try:
        services = shared_services(settings().services or "", model)
        run = Run.reopen(shared_graph(str(coe_home())), services, record)
    except CoeError as exc:
        st.session_state["flash"] = plain_error(exc)
        return
    st.session_state["run"] = run
    st.session_state["flash"] = f"Run {run.run_id} reopened: it waits for your review."


def history_panel() -> None:
    runs = history.list_runs()
    if not runs:
        st.info(f"No runs recorded yet in {history.traces_dir()}.")
        return
    st.dataframe(
        [
            {k: r.get(k) for k in ("run_id", "created", "source", "status", "variant", "answer", "question", "model")}
            for r in runs
        ],
        hide_index=True,
        width="stretch",
    )
    labels = {r["run_id"]: f"{r['run_id']} · {r.get('source')} · {r.get('status')} · {r.get('answer')}" for r in runs}
    pick = st.selectbox(
        "Open a run",
        list(labels),
        index=None,
        format_func=labels.__getitem__,
        key="history_pick",
        placeholder="Choose a run",
    )
    if not pick:
        return
    try:
        record = history.load_run(pick)
    except CoeError as exc:
        st.error(plain_error(exc))
        return
    item = record.get("item") or {}
    st.markdown(f"**{literal(item.get('question'))}**")
    st.markdown(options_markdown(item))
    if record.get("source") == "ui" and record.get("status") == "review":
        st.button(
            "Resume the review",
            key=f"resume_{pick}",
            on_click=reopen,
            args=(record,),
            help="Open this run where it waits for review (its thread is kept across restarts).",
        )
    st.caption(
        f"{record.get('source')} · {record.get('status')} · {record.get('variant') or ''} · "
        f"model {item.get('model') or '-'} · created {record.get('created')}"
    )
    if record.get("error"):
        st.error(plain_error(record["error"]))
    if item.get("image") and Path(item["image"]).is_file():
        st.image(item["image"], width=160)
    st.download_button(
        "Download trace (JSON)",
        data=json.dumps(record, ensure_ascii=False, indent=1),
        file_name=f"coe-trace-{pick}.json",
        mime="application/json",
        key=f"history_dl_{pick}",
    )
    render_trace(record.get("trace") or [], key=f"history_{pick}", exemplars=item.get("exemplars"), dataset=dataset())
