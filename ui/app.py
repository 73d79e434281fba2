"""coe review console: write an item from a diagram, watch each graph step, review, export.

Run with ``coe ui`` (or ``streamlit run ui/app.py``). Every session drives its own thread of the review
graph (``coe.graphs.review``); the model and the exemplar index are loaded once per process and shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import streamlit as st
from coe.agents.validation import validate_distractors
from coe.graphs.services import load_services
from coe.ui.runs import VARIANTS, Run, llm_presets
from coe.ui.trace_view import render_trace

from coe import history
from coe.errors import CoeError, ConfigError, InputError
from coe.generate import MAX_DISTRACTORS, check_inputs
from coe.imageio import DEFAULT_MAX_IMAGE_BYTES, load_image
from coe.paths import coe_home, scienceqa_dir
from coe.settings import settings

SOURCES = ("Upload an image", "ScienceQA test item")
DEFAULT_MODEL = "default"
DIFFICULTIES = ("easy", "medium", "hard")
POLL_SECONDS = 0.5


# -- shared resources (one per process, used by every session) ------------------------------

@st.cache_resource(show_spinner="Loading the model and the exemplar index…")
def shared_services(spec: str, model: str | None):
    """One model instance for all sessions; ``spec`` keys the cache on the services factory."""
    return load_services(model)


@st.cache_resource(show_spinner=False)
def shared_graph(home: str):
    """The review graph, its threads kept in ``COE_HOME/console-threads.sqlite``: a run left waiting for review
    can be reopened from History after a restart."""
    import sqlite3

    from coe.graphs.review import build_review_graph
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(home) / "console-threads.sqlite"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
        saver.setup()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot keep review threads in {path} ({exc}); make COE_HOME writable") from None
    return build_review_graph(saver)


@st.cache_resource(show_spinner=False)
def shared_dataset(root: str):
    from coe.datasets import ScienceQA

    try:
        dataset = ScienceQA(root)
        dataset.splits()
        return dataset
    except CoeError:
        return None


@st.cache_data(show_spinner="Reading the ScienceQA test split…")
def test_items(root: str) -> dict[str, str]:
    dataset = shared_dataset(root)
    if dataset is None or "test" not in dataset.splits():
        return {}
    return {p.pid: f"{p.pid} · {p.question[:80]}{' · 🖼' if p.image_path else ''}" for p in dataset.split("test")}


def dataset():
    return shared_dataset(str(scienceqa_dir()))


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- inputs --------------------------------------------------------------------------------

def save_upload(name: str, data: bytes) -> Path:
    """Keep an upload under ``coe_home()/uploads`` (named by content) once it proves to be an image."""
    if len(data) > DEFAULT_MAX_IMAGE_BYTES:
        raise InputError(f"image too large: {name} ({len(data)} bytes, limit {DEFAULT_MAX_IMAGE_BYTES})")
    suffix = Path(name).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
    folder = coe_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    try:
        load_image(path)
    except InputError as exc:
        path.unlink(missing_ok=True)
        raise InputError(str(exc).replace(str(path), name)) from None
    return path


def checked_upload(upload) -> tuple[Path | None, str | None]:
    """(path, error) for the current upload, checked once per uploaded file."""
    if upload is None:
        return None, None
    cache = st.session_state.setdefault("_uploads", {})
    if upload.file_id not in cache:
        try:
            cache[upload.file_id] = (save_upload(upload.name, upload.getvalue()), None)
        except InputError as exc:
            cache[upload.file_id] = (None, one_line(exc))
    return cache[upload.file_id]


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

def current_run() -> Run | None:
    return st.session_state.get("run")


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


def _review_values(run: Run, request: dict[str, Any]) -> tuple[str, str, list[str]]:
    ss, rid, r = st.session_state, run.run_id, run.round
    q = ss.get(f"rq_{rid}_{r}", request.get("question") or "")
    a = ss.get(f"ra_{rid}_{r}", request.get("answer") or "")
    ds = [ss.get(f"rd_{rid}_{r}_{i}", d) for i, d in enumerate(request.get("distractors") or [])]
    return q, a, ds


def regenerate(index: int | None) -> None:
    """Regenerate every distractor (``index`` None) or only one, keeping the (edited) others."""
    run = current_run()
    request = run.review_request() if run else None
    if request is None:
        return
    q, a, ds = _review_values(run, request)
    keep = [] if index is None else [d for i, d in enumerate(ds) if i != index]
    try:
        run.resume({"action": "regenerate_distractors", "keep": keep, "edits": {"question": q, "answer": a}})
    except CoeError as exc:
        st.session_state["flash"] = one_line(exc)


def accept() -> None:
    run = current_run()
    request = run.review_request() if run else None
    if request is None:
        return
    q, a, ds = _review_values(run, request)
    try:
        run.resume({"action": "accept", "edits": {"question": q, "answer": a, "distractors": ds}})
    except CoeError as exc:
        st.session_state["flash"] = one_line(exc)


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
    notes = dict(zip(request.get("distractors") or [], request.get("distractor_notes") or []))
    st.text_area("Question", value=request.get("question") or "", key=f"rq_{rid}_{r}")
    st.text_input("Answer", value=request.get("answer") or "", key=f"ra_{rid}_{r}")
    if request.get("answer") in probs:
        st.caption(f"Student model's probability on the key: {probs[request['answer']]:.2f}")
    if request.get("rationale"):
        st.caption(f"Rationale: {request['rationale']}")
    for i, d in enumerate(request.get("distractors") or []):
        c1, c2 = st.columns([8, 2], vertical_alignment="bottom")
        c1.text_input(f"Distractor {i + 1}", value=d, key=f"rd_{rid}_{r}_{i}")
        c2.button("↻ Regenerate", key=f"regen_{rid}_{r}_{i}", help="Regenerate only this distractor",
                  on_click=regenerate, args=(i,))
        checks = []
        if d in probs:
            checks.append(f"draws {probs[d]:.2f} of a student's choice")
        if d in also:
            checks.append(f"judged also correct with P {also[d]:.2f}" + (" — FLAGGED" if d in v.get("second_keys", []) else ""))
        if d in notes:
            checks.append(f"why tempting: {notes[d]}")
        if checks:
            c1.caption(" · ".join(checks))
    q, a, ds = _review_values(run, request)
    n = run.state.get("n_distractors") or len(ds)
    verdict = validate_distractors(ds, a, n)
    problems = list(verdict.problems) + (["the question is empty"] if not q.strip() else [])
    if problems:
        st.error("Validator: " + "; ".join(problems))
    else:
        st.success(f"Validator: {n} distinct distractors, none equal to the answer.")
    c1, c2 = st.columns(2)
    c1.button("Regenerate all distractors", key=f"regen_all_{rid}_{r}", on_click=regenerate, args=(None,),
              width="stretch")
    c2.button("Accept", type="primary", key=f"accept_{rid}_{r}", on_click=accept, disabled=bool(problems),
              width="stretch")


def verification_summary(item: dict[str, Any]) -> None:
    """The verifier's verdict in plain words: verified, or flagged with its reasons."""
    status = item.get("status")
    if status == "verified":
        st.success(f"Verified by a student model · difficulty {item.get('difficulty') or '-'}")
    elif status == "unconfirmed":
        st.warning("Unconfirmed: no check found a problem, but a student model could not confirm the key.")
    elif status == "flagged":
        st.error("Flagged — check before use:\n" + "\n".join(f"- {r}" for r in item.get("reasons") or []))
    elif status == "unverified":
        st.info("Not verified (verification was off).")
    for w in (item.get("verification") or {}).get("warnings") or []:
        st.caption(f"Note: {w}")


def export_json(run: Run) -> str:
    item = run.item()
    return json.dumps({"run_id": run.run_id, **item}, ensure_ascii=False, indent=2)


def accepted_panel(run: Run) -> None:
    item = run.item()
    st.subheader("Accepted item")
    st.markdown(f"**{item['question']}**")
    st.markdown("\n".join([f"- {item['answer']} **(correct)**", *[f"- {d}" for d in item["distractors"]]]))
    if item.get("rationale"):
        st.caption(f"Rationale: {item['rationale']}")
    st.download_button("Export item (JSON)", data=export_json(run), file_name=f"coe-item-{run.run_id}.json",
                       mime="application/json", key=f"export_{run.run_id}", type="primary")


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


# -- history ------------------------------------------------------------------------------------

def reopen(record: dict[str, Any]) -> None:
    model = (record.get("settings") or {}).get("model")
    try:
        services = shared_services(settings().services or "", model)
        run = Run.reopen(shared_graph(str(coe_home())), services, record)
    except CoeError as exc:
        st.session_state["flash"] = one_line(exc)
        return
    st.session_state["run"] = run
    st.session_state["flash"] = f"Run {run.run_id} reopened: it waits for your review."

def history_panel() -> None:
    runs = history.list_runs()
    if not runs:
        st.info(f"No runs recorded yet in {history.traces_dir()}.")
        return
    st.dataframe([{k: r.get(k) for k in ("run_id", "created", "source", "status", "variant", "answer",
                                         "question", "model")} for r in runs],
                 hide_index=True, width="stretch")
    labels = {r["run_id"]: f"{r['run_id']} · {r.get('source')} · {r.get('status')} · {r.get('answer')}"
              for r in runs}
    pick = st.selectbox("Open a run", list(labels), index=None, format_func=labels.get, key="history_pick",
                        placeholder="Choose a run")
    if not pick:
        return
    try:
        record = history.load_run(pick)
    except CoeError as exc:
        st.error(one_line(exc))
        return
    item = record.get("item") or {}
    st.markdown(f"**{item.get('question')}**")
    st.markdown("\n".join([f"- {item.get('answer')} **(correct)**", *[f"- {d}" for d in item.get("distractors") or []]]))
    if record.get("source") == "ui" and record.get("status") == "review":
        st.button("Resume the review", key=f"resume_{pick}", on_click=reopen, args=(record,),
                  help="Open this run where it waits for review (its thread is kept across restarts).")
    st.caption(f"{record.get('source')} · {record.get('status')} · {record.get('variant') or ''} · "
               f"model {item.get('model') or '-'} · created {record.get('created')}")
    if record.get("error"):
        st.error(record["error"])
    if item.get("image") and Path(item["image"]).is_file():
        st.image(item["image"], width=160)
    st.download_button("Download trace (JSON)", data=json.dumps(record, ensure_ascii=False, indent=1),
                       file_name=f"coe-trace-{pick}.json", mime="application/json", key=f"history_dl_{pick}")
    render_trace(record.get("trace") or [], key=f"history_{pick}", exemplars=item.get("exemplars"),
                 dataset=dataset())


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
