"""coe review console: write an item from a diagram, watch each graph step, review, export.

Run with ``coe ui`` (or ``streamlit run ui/app.py``). Every session drives its own thread of the review
graph (``coe.graphs.review``); the model and the exemplar index are loaded once per process and shared.
"""

from __future__ import annotations

import json

import streamlit as st
from coe.ui.runs import VARIANTS, Run, llm_presets
from coe.ui.trace_view import render_trace

from coe.errors import CoeError, InputError
from coe.generate import MAX_DISTRACTORS, check_inputs
from coe.paths import coe_home, scienceqa_dir
from coe.settings import settings
from coe.ui.history_panel import history_panel
from coe.ui.resources import (DEFAULT_MODEL, DIFFICULTIES, POLL_SECONDS, SOURCES, current_run, dataset, one_line,
                              shared_graph, shared_services, test_items)
from coe.ui.review_panel import accepted_panel, review_panel
from coe.ui.uploads import checked_upload


def prefill_from_item() -> None:
    pid = st.session_state.get("sqa_pid")
    ds = dataset()
    if not pid or ds is None:
        return
    p = ds.get(pid)
    st.session_state["context"] = "" if p.hint_missing else p.hint
    st.session_state["answer"] = p.answer
    st.session_state["question"] = ""


def input_panel(busy: bool) -> None:
    source = st.radio("Image source", SOURCES, horizontal=True, key="source")
    image_path, subject, grade, exclude = None, None, None, []
    if source == SOURCES[0]:
        upload = st.file_uploader("Diagram or photo (PNG, JPEG, …; up to 50 MB)", key="upload",
                                  max_upload_size=50)
        image_path, error = checked_upload(upload)
        if error:
            st.error(f"Cannot use this upload: {error}")
        elif image_path:
            st.image(str(image_path), width=240, caption=upload.name)
    else:
        items = test_items(str(scienceqa_dir()))
        if not items:
            st.warning(f"No ScienceQA test split found in {scienceqa_dir()} (set COE_SCIENCEQA_DIR).")
        else:
            pid = st.selectbox("ScienceQA test item", list(items), index=None, format_func=items.get,
                               key="sqa_pid", on_change=prefill_from_item, placeholder="Type an id or words")
            if pid:
                p = dataset().get(pid)
                image_path, subject, grade, exclude = p.image_path, p.subject, p.grade, [pid]
                if p.image_path:
                    st.image(str(p.image_path), width=240, caption=f"ScienceQA {pid}")
                else:
                    st.caption("This item has no image file.")
                st.caption(f"Original question: {p.question} (options: {', '.join(p.choices)})")
    st.text_area("Context", key="context", height=80,
                 placeholder="Below is a food web from a tundra ecosystem.")
    st.text_input("Answer", key="answer", placeholder="grizzly bear")
    st.text_input("Question (optional: written by the model when empty)", key="question")
    c1, c2, c3 = st.columns(3)
    c1.number_input("Distractors", min_value=1, max_value=MAX_DISTRACTORS, value=3, step=1, key="n")
    c2.selectbox("Model", [DEFAULT_MODEL, *llm_presets()], key="model")
    c3.selectbox("Variant", list(VARIANTS), key="variant",
                 help="Ablations: all CoE steps, no retrieved exemplars, no rationale, or the paper's "
                      "free-text prompt shapes instead of JSON.")
    st.selectbox("Difficulty", DIFFICULTIES, index=1, key="difficulty",
                 help="Steers which distractors are kept: hard ones draw a student model's choice, easy ones less.")
    upload_error = (source == SOURCES[0] and st.session_state.get("upload") is not None and image_path is None)
    b1, b2 = st.columns(2)
    if b1.button("Generate", type="primary", key="generate", disabled=busy, width="stretch"):
        st.session_state["seed"] = 0
        start_run(image_path, subject=subject, grade=grade, exclude=exclude, upload_error=upload_error)
    if b2.button("Generate again", key="generate_again", disabled=busy or current_run() is None, width="stretch",
                 help="The same input, another alternative (the next seed) instead of the identical item."):
        st.session_state["seed"] = st.session_state.get("seed", 0) + 1
        start_run(image_path, subject=subject, grade=grade, exclude=exclude, upload_error=upload_error)


def start_run(image_path, *, subject, grade, exclude, upload_error: bool) -> None:
    ss = st.session_state
    try:
        if upload_error:
            raise InputError("the uploaded file is not a usable image (see above)")
        state = check_inputs(image=str(image_path) if image_path else None, context=ss.get("context", ""),
                             answer=ss.get("answer", ""), question=ss.get("question") or None,
                             n_distractors=int(ss.get("n", 3)))
        state.update({"subject": subject, "grade": grade, "exclude_ids": exclude})
        model = None if ss.get("model") in (None, DEFAULT_MODEL) else ss["model"]
        services = shared_services(settings().services or "", model)
    except CoeError as exc:
        st.error(one_line(exc))
        return
    old = current_run()
    if old is not None and old.job is not None and old.job.running:
        old.cancel()  # its worker records it as cancelled and drops its thread
    # a run left waiting for review keeps its thread: History can reopen it
    run_settings = {**VARIANTS[ss.get("variant") or "Full CoE"], "seed": ss.get("seed", 0),
                    "difficulty": ss.get("difficulty") or "medium"}
    run = Run(shared_graph(str(coe_home())), services, state, settings=run_settings, variant=ss.get("variant") or "Full CoE",
              model=model)
    ss["run"] = run
    run.start()
    st.rerun()


# -- a run: progress, review, result ----------------------------------------------------------

def step_statuses(job) -> None:
    for u in list(job.updates):
        label = f"{u['node']} · {u['seconds']:.2f} s"
        if u.get("tokens"):
            label += f" · {u['tokens']} tokens"
        if u.get("skipped"):
            label += " · skipped"
        with st.status(label, state="complete", expanded=False):
            st.write(u.get("text") or u.get("skipped") or "done")
    if job.running:
        st.status(f"{job.next_node()} …", state="running", expanded=False)


@st.fragment(run_every=POLL_SECONDS)
def progress() -> None:
    run = current_run()
    if run is None or run.job is None:
        return
    step_statuses(run.job)
    if not run.job.running:
        st.rerun()


def cancel_run() -> None:
    run = current_run()
    if run is not None:
        run.cancel()

def run_panel(run: Run, busy: bool) -> None:
    st.divider()
    status = "cancelling" if run.cancelling else run.status
    st.markdown(f"**Run** `{run.run_id}` · {run.variant} · model {run.item().get('model') or run.model or '-'} "
                f"· status **{status}**")
    if run.state.get("image_path"):
        st.image(run.state["image_path"], width=160)
    if flash := st.session_state.pop("flash", None):
        st.warning(flash)
    job = run.job
    if busy:  # decided once per page run, so the page never mixes "running" and "done"
        st.button("Cancel", key=f"cancel_{run.run_id}", on_click=cancel_run, disabled=run.cancelling,
                  help="Stops after the step in progress")
        if run.cancelling:
            st.caption("Cancelling after the step in progress…")
        progress()
        return
    if job is not None:
        step_statuses(job)
    if run.notice:
        st.info(run.notice)
    if run.error:
        st.error(run.error)
    if run.status == "review":
        review_panel(run)
    elif run.status == "accepted":
        accepted_panel(run)
    trace = run.trace()
    if trace:
        st.subheader("Trace")
        st.download_button("Download trace (JSON)", data=json.dumps(run.record_dict(), ensure_ascii=False,
                                                                     indent=1, default=str),
                           file_name=f"coe-trace-{run.run_id}.json", mime="application/json",
                           key=f"trace_dl_{run.run_id}")
        render_trace(trace, key=f"trace_{run.run_id}", exemplars=run.item()["exemplars"], dataset=dataset())

# -- page ---------------------------------------------------------------------------------------

def main() -> None:
    st.set_page_config(page_title="coe review console", page_icon="📝", layout="wide")
    st.title("coe review console")
    st.caption("Chain-of-Exemplar: retrieve exemplars, then write question → rationale → distractors; "
               "validate; review.")
    generate_tab, history_tab = st.tabs(["Generate", "History"])  # a reopened run shows under Generate
    run = current_run()
    busy = bool(run is not None and run.job is not None and run.job.running)
    with generate_tab:
        input_panel(busy)
        if run is not None:
            run_panel(run, busy)
    with history_tab:
        history_panel()


main()
