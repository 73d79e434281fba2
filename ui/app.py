"""coe review console: write an item from a diagram, watch each graph step, review, export.

Run with ``coe ui`` (or ``streamlit run ui/app.py``). Every session drives its own thread of the review
graph (``coe.graphs.review``); the model and the exemplar index are loaded once per process and shared.
"""

from __future__ import annotations

import json

import streamlit as st
from coe.ui.markdown_text import literal
from coe.ui.runs import Run
from coe.ui.steps import STEP_WORDS, first_step_progress
from coe.ui.trace_view import render_trace

from coe.errors import CoeError, InputError
from coe.generate import MAX_DISTRACTORS, check_inputs
from coe.graphs.settings import check_settings
from coe.paths import coe_home, scienceqa_dir
from coe.settings import settings
from coe.ui.batch_page import batch_page
from coe.ui.history_panel import history_panel
from coe.ui.material_page import material_page
from coe.ui.resources import (
    DEFAULT_MODEL,
    DIFFICULTIES,
    bank_names,
    POLL_SECONDS,
    SOURCES,
    VARIANTS,
    current_run,
    dataset,
    llm_presets,
    plain_error,
    services_for_banks,
    shared_graph,
    test_items,
)
from coe.ui.review_panel import accepted_panel, review_panel
from coe.ui.settings_form import changed_settings, settings_form
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
        upload = st.file_uploader("Diagram or photo (PNG, JPEG, …; up to 50 MB)", key="upload", max_upload_size=50)
        image_path, error = checked_upload(upload)
        if error:
            st.error(f"Cannot use this upload. {plain_error(error)}")
        elif image_path and upload is not None:
            st.image(str(image_path), width=240, caption=upload.name)
    else:
        items = test_items(str(scienceqa_dir()))
        if not items:
            st.warning(f"No ScienceQA test split found in {scienceqa_dir()} (set COE_SCIENCEQA_DIR).")
        else:
            pid = st.selectbox(
                "ScienceQA test item",
                list(items),
                index=None,
                format_func=items.__getitem__,
                key="sqa_pid",
                on_change=prefill_from_item,
                placeholder="Type an id or words",
            )
            if pid:
                p = dataset().get(pid)
                image_path, subject, grade, exclude = p.image_path, p.subject, p.grade, [pid]
                if p.image_path:
                    st.image(str(p.image_path), width=240, caption=f"ScienceQA {pid}")
                else:
                    st.caption("This item has no image file.")
                st.caption(f"Original question: {literal(p.question)} (options: {literal(', '.join(p.choices))})")
    # hints, not values: a teacher must not mistake them for filled-in fields
    st.text_area(
        "Context",
        key="context",
        height=80,
        placeholder='e.g. the text that goes with the picture: "Below is a food web from a tundra…"',
    )
    st.text_input("Answer", key="answer", placeholder='e.g. the correct option, such as "grizzly bear"')
    st.text_input(
        "Question (optional: written by the model when empty)",
        key="question",
        placeholder='e.g. leave empty, or "Which animal eats the fish?"',
    )
    c1, c2, c3 = st.columns(3)
    c1.number_input("Distractors", min_value=1, max_value=MAX_DISTRACTORS, value=3, step=1, key="n")
    c2.selectbox("Model", [DEFAULT_MODEL, *llm_presets()], key="model")
    c3.selectbox(
        "Variant",
        list(VARIANTS),
        key="variant",
        help="Ablations: all CoE steps, no retrieved exemplars, no rationale, or the paper's "
        "free-text prompt shapes instead of JSON.",
    )
    d1, d2 = st.columns(2)
    d1.selectbox(
        "Difficulty",
        DIFFICULTIES,
        index=1,
        key="difficulty",
        help="Steers which distractors are kept: hard ones draw a student model's choice, easy ones less.",
    )
    d1.checkbox(
        "Misconception notes",
        value=True,
        key="write_notes",
        help="Also write why a student would pick each wrong option, for review (one more model call).",
    )
    try:
        banks = bank_names(settings().services or "")
    except CoeError as exc:
        banks = ["default"]
        st.caption(plain_error(exc))
    d2.multiselect(
        "Exemplar banks",
        banks,
        default=["default"] if "default" in banks else banks[:1],
        key="banks",
        help="Whose example questions guide the item: ScienceQA's (default) and the banks imported "
        "with coe bank import.",
    )
    settings_form()
    upload_error = source == SOURCES[0] and st.session_state.get("upload") is not None and image_path is None
    b1, b2 = st.columns(2)
    if b1.button("Generate", type="primary", key="generate", disabled=busy, width="stretch"):
        st.session_state["seed"] = 0
        start_run(image_path, subject=subject, grade=grade, exclude=exclude, upload_error=upload_error)
    if b2.button(
        "Generate again",
        key="generate_again",
        disabled=busy or current_run() is None,
        width="stretch",
        help="The same input, another alternative (the next seed) instead of the identical item.",
    ):
        st.session_state["seed"] = st.session_state.get("seed", 0) + 1
        start_run(image_path, subject=subject, grade=grade, exclude=exclude, upload_error=upload_error)


def start_run(image_path, *, subject, grade, exclude, upload_error: bool, source: dict | None = None) -> None:
    ss = st.session_state
    try:
        if upload_error:
            raise InputError("the uploaded file is not an image this console can use (see above)")
        state = check_inputs(
            image=str(image_path) if image_path else None,
            context=ss.get("context", ""),
            answer=ss.get("answer", ""),
            question=ss.get("question") or None,
            n_distractors=int(ss.get("n", 3)),
        )
        state.update({"subject": subject, "grade": grade, "exclude_ids": exclude})
        if source:  # a material's passage and figure: where the item comes from (as coe generate --material)
            state["source"] = source
        # the variant, then the form's changes; "seed" in the session counts the alternatives from the form's seed
        chosen = {
            **VARIANTS[ss.get("variant") or "Full CoE"],
            "n_distractors": int(ss.get("n", 3)),
            "difficulty": ss.get("difficulty") or "medium",
            "write_notes": bool(ss.get("write_notes", True)),
            **changed_settings(ss),
        }
        chosen["seed"] = chosen.get("seed", 0) + ss.get("seed", 0)
        run_settings = check_settings(chosen).model_dump(exclude_unset=True)
        model = None if ss.get("model") in (None, DEFAULT_MODEL) else ss["model"]
        banks = tuple(ss.get("banks") or ["default"])
        services = services_for_banks(settings().services or "", model, banks)
    except CoeError as exc:
        st.error(plain_error(exc))
        return
    old = current_run()
    if old is not None and old.job is not None and old.job.running:
        old.cancel()  # its worker records it as cancelled and drops its thread
    # a run left waiting for review keeps its thread: History can reopen it
    run = Run(
        shared_graph(str(coe_home())),
        services,
        state,
        settings=run_settings,
        variant=ss.get("variant") or "Full CoE",
        model=model,
    )
    ss["run"] = run  # main() starts it once the page shows it in place of the previous item
    st.rerun()


# -- a run: progress, review, result ----------------------------------------------------------


def step_statuses(job) -> None:
    for u in list(job.updates):
        label = f"{STEP_WORDS.get(u['node'], u['node']).capitalize()} · {u['seconds']:.2f} s"
        if u.get("tokens"):
            label += f" · {u['tokens']} tokens"
        if u.get("skipped"):
            label += " · skipped"
        if u.get("failed"):
            label += " · failed"
        with st.status(label, state="error" if u.get("failed") else "complete", expanded=False):
            st.write(u.get("text") or u.get("skipped") or "done")
            st.caption(f"graph step `{u['node']}`")
    if job.running:
        st.status(f"{STEP_WORDS.get(job.next_node(), job.next_node()).capitalize()} …", state="running", expanded=False)


@st.fragment(run_every=POLL_SECONDS)
def live_steps() -> None:
    run = current_run()
    if run is None:
        return
    if run.job is None:  # drawn before the run starts (see main)
        k, n, line = first_step_progress()
        st.progress(0.0, text=line)
        return
    if run.job.running:
        k, n, line = run.job.progress()
        st.progress((k - 1) / n, text=line)
    step_statuses(run.job)
    if not run.job.running:
        st.rerun()


def cancel_run() -> None:
    run = current_run()
    if run is not None:
        run.cancel()


def scroll_to_run(run_id: str) -> None:
    """Bring a new run into view: at laptop sizes it starts below the form. The script differs per run, so
    it runs once when the run appears, not on every rerun."""
    st.html(
        f"""<script>
        setTimeout(() => document.querySelector(".st-key-run_{run_id}")?.scrollIntoView({{block: "start"}}), 50);
        </script>""",
        unsafe_allow_javascript=True,
    )


def run_panel(run: Run, busy: bool) -> None:
    scroll_to_run(run.run_id)
    status = "cancelling" if run.cancelling else "starting" if run.status == "new" else run.status
    st.markdown(
        f"**Run** `{run.run_id}` · {run.variant} · model {run.item().get('model') or run.model or '-'} "
        f"· status **{status}**"
    )
    if run.state.get("image_path"):
        st.image(run.state["image_path"], width=160)
    if run.state.get("source"):
        from coe.ingest.retrieve import describe_source

        st.caption(f"Source: {describe_source(run.state['source'])}")
    if flash := st.session_state.pop("flash", None):
        st.warning(plain_error(flash))
    job = run.job
    if busy:  # decided once per page run, so the page never mixes "running" and "done"
        st.button(
            "Cancel",
            key=f"cancel_{run.run_id}",
            on_click=cancel_run,
            disabled=run.cancelling,
            help="Stops after the step in progress",
        )
        if run.cancelling:
            st.caption("Cancelling after the step in progress…")
        live_steps()
        return
    if job is not None:
        step_statuses(job)
    if run.notice:
        st.info(run.notice)
    if run.error:
        st.error(plain_error(run.error))
    if run.status == "review":
        review_panel(run)
    elif run.status == "accepted":
        accepted_panel(run)
    trace = run.trace()
    if trace:
        st.subheader("Trace")
        st.download_button(
            "Download trace (JSON)",
            data=json.dumps(run.record_dict(), ensure_ascii=False, indent=1, default=str),
            file_name=f"coe-trace-{run.run_id}.json",
            mime="application/json",
            key=f"trace_dl_{run.run_id}",
        )
        render_trace(trace, key=f"trace_{run.run_id}", exemplars=run.item()["exemplars"], dataset=dataset())


# -- page ---------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="coe review console", page_icon="📝", layout="wide")
    # example hints in light italics, so they never pass for filled-in values
    st.html("<style>input::placeholder, textarea::placeholder {font-style: italic; opacity: .45}</style>")
    st.title("coe review console")
    st.caption(
        "Chain-of-Exemplar: retrieve exemplars, then write question → rationale → distractors; validate; review."
    )
    # a reopened run shows under Generate
    generate_tab, batch_tab, material_tab, history_tab = st.tabs(["Generate", "Batch", "Material", "History"])
    run = current_run()
    busy = bool(run is not None and (run.status == "new" or (run.job is not None and run.job.running)))
    with generate_tab:
        input_panel(busy)
        if run is not None:
            st.divider()
            # keyed by run: the browser drops the previous run's panel at once instead of showing it, faded,
            # until the page is drawn again
            with st.container(key=f"run_{run.run_id}"):
                run_panel(run, busy)
    with batch_tab:
        batch_page()
    with material_tab:
        material_page(start_run, busy)
    with history_tab:
        history_panel()
    if run is not None and run.status == "new":
        # Started once the page is drawn: a model step competes with the page for the CPU, and until the
        # page is drawn the browser keeps showing the previous item.
        run.start()


main()
