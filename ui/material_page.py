"""The console's Material tab: read PDFs, slides, documents and pictures into a material, browse its passages
and figures, and write an item from one passage (its figure as the picture).

The item is written by the Generate tab's own run (``start_run``, passed in by the app): the passage becomes
the context, the figure the picture, and the run records where they came from as its ``source``, as
``coe generate --material`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from coe.ingest import store
from coe.ingest.figures import load
from coe.ingest.readers import MAX_DOCUMENT_BYTES, SUPPORTED
from coe.ingest.retrieve import describe_source, source_of
from coe.text import one_line
from coe.ui.resources import current_run, plain_error

from coe.atomic import write_bytes
from coe.errors import CoeError, InputError
from coe.generate import MAX_CONTEXT_CHARS
from coe.imageio import MiB
from coe.paths import coe_home, writable_dir

PAGE_SIZE = 10
EXCERPT_CHARS = 320
PLACES = (("page_label", "page"), ("slide", "slide"), ("section", "section"))
NO_PICTURE = "No picture"


def _md(text: str) -> str:
    """Text shown as itself in Markdown (file names and passages carry ``*``, ``_``, ``#`` …)."""
    return re.sub(r"([\\`*_\[\]<>#|~$])", r"\\\1", text)


# -- adding files --------------------------------------------------------------------------------


def save_material_file(material: str, name: str, data: bytes) -> Path:
    """Keep an uploaded file under ``coe_home()/uploads/materials/MATERIAL`` by its own name, so the
    material's passages name the file the teacher knows, and a new version of it replaces the old one."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"file too large: {name} (limit {MAX_DOCUMENT_BYTES // MiB} MB)")
    safe = re.sub(r"[^\w.\- ]", "_", Path(name).name).strip(" .") or "file"
    folder = writable_dir(coe_home() / "uploads" / "materials" / material, "uploads", "COE_HOME")
    return write_bytes(folder / safe, data)


def file_error(path: str, error: str) -> str:
    """A file's ingest error in plain words: the name the teacher uploaded (not the saved copy's path), without
    the parser's exception name that readers add for the log."""
    text = error.replace(path, Path(path).name)
    text = re.sub(r" \([A-Z]\w*(?:Error|Exception)\b[^)]*\)$", "", text)
    return plain_error(re.sub(r"\b[A-Z]\w*(?:Error|Exception): ", "", text))


def ingest_uploads(material: str, uploads: list) -> dict[str, Any]:
    """Save and ingest the uploads (``coe ingest``'s function); what the page shows of the report."""
    from coe.ingest.pipeline import ingest

    name = store.check_name(material)
    if not uploads:
        raise InputError("choose one or more files to add")
    paths = [save_material_file(name, u.name, u.getvalue()) for u in uploads]
    with st.spinner(f"Reading {len(paths)} file(s) into {name}…"):
        report = ingest([str(p) for p in paths], name)
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("new", "changed", "unchanged", "failed") if report.count(s))
    return {
        "material": name,
        "summary": f"{name}: {counts}; {sum(f.passages for f in report.files)} passages and "
        f"{sum(f.figures for f in report.files)} figures written in {report.seconds:.1f} s",
        "errors": [file_error(f.path, f.error) for f in report.failed],
        "warnings": [one_line(w) for w in report.warnings],
    }


def add_files_section() -> None:
    ss = st.session_state
    st.text_input("Material name", key="mat_new_name", placeholder="e.g. biology-7: lowercase letters, digits, - or _")
    uploads = st.file_uploader(
        f"PDF, slides (PPTX), Word (DOCX), Markdown, HTML or pictures; up to {MAX_DOCUMENT_BYTES // MiB} MB each",
        key="mat_files",
        accept_multiple_files=True,
        type=[s.lstrip(".") for s in SUPPORTED],
        max_upload_size=MAX_DOCUMENT_BYTES // MiB,
    )
    if st.button(
        "Ingest",
        key="mat_ingest",
        help="Reads the files into passages and figures; files already read and unchanged are skipped",
    ):
        try:
            ss["mat_report"] = ingest_uploads(ss.get("mat_new_name", ""), uploads or [])
            ss["mat_name"] = ss["mat_report"]["material"]  # the material picker is drawn after this
            ss["mat_page_no"] = 1
        except CoeError as exc:
            ss.pop("mat_report", None)
            st.error(plain_error(exc))
    report = ss.get("mat_report")
    if report:
        for error in report["errors"]:
            st.error(error)
        for warning in report["warnings"]:
            st.warning(warning)
        st.success(report["summary"])


# -- browsing ------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def _rows(folder: str, name: str, stamp: int) -> list[dict[str, Any]]:
    """The material's passages, read again only when an ingest rewrote its file registry (``stamp``);
    ``folder`` keeps materials of the same name in other COE_HOMEs apart."""
    return store.passages(name)


def material_rows(name: str) -> list[dict[str, Any]]:
    folder = store.existing_material(name)
    return _rows(str(folder), name, (folder / store.REGISTRY).stat().st_mtime_ns)


def place(meta: dict[str, Any]) -> str:
    """ "page 2", "slide 3", "section Photosynthesis" or "" (a picture or a text without sections)."""
    return next((f"{word} {meta[k]}" for k, word in PLACES if meta.get(k) not in (None, "")), "")


def without_figure(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if not k.startswith("figure")}


def choose(name: str, row: dict[str, Any]) -> None:
    """The passage as the item's material: each of its figures, or none, is a choice of picture."""
    meta = row["metadata"]
    st.session_state.pop("mat_picture", None)
    choices = [source_of(name, meta, row["id"], fig) for fig in load(meta.get("figures"))]
    st.session_state["mat_pick"] = {
        "context": row["text"].strip()[:MAX_CONTEXT_CHARS],
        "choices": [*choices, source_of(name, meta, row["id"], None)],
    }


def find_passage(name: str) -> None:
    """The passage and figure that teach the typed answer (``coe generate --material``'s search)."""
    from coe.ingest.retrieve import material_input

    ss = st.session_state
    ss.pop("mat_picture", None)
    try:
        answer = ss.get("mat_answer", "").strip()
        if not answer:
            raise InputError("type the answer first: the search looks for the passage that teaches it")
        found = material_input(name, answer)
    except CoeError as exc:
        ss["mat_flash"] = plain_error(exc)
        return
    source = found["source"]
    bare = without_figure(source)
    ss["mat_pick"] = {"context": found["context"], "choices": [source, bare] if "figure" in source else [bare]}


def passage_row(name: str, i: int, row: dict[str, Any]) -> None:
    meta = row["metadata"]
    with st.container(border=True, key=f"mat_row_{i}"):
        text, pictures = st.columns([3, 1])
        text.markdown(f"**{_md(meta.get('file_name', ''))}** · {_md(place(meta) or 'whole file')}")
        excerpt = one_line(row["text"])
        text.caption(_md(excerpt[:EXCERPT_CHARS] + ("…" if len(excerpt) > EXCERPT_CHARS else "")))
        text.button("Use this passage", key=f"mat_use_{i}", on_click=choose, args=(name, row))
        for fig in load(meta.get("figures")):
            path = store.material_dir(name) / fig["path"]
            if path.is_file():
                pictures.image(str(path), width=160, caption=fig.get("caption") or fig["id"])
            else:
                pictures.caption(f"Figure {fig['id']}: its file is missing (ingest the file again)")


def browse(name: str) -> None:
    ss = st.session_state
    try:
        rows = material_rows(name)
    except CoeError as exc:
        st.error(plain_error(exc))
        return
    words = (
        st.text_input(
            "Filter passages",
            key="mat_filter",
            on_change=ss.update,
            kwargs={"mat_page_no": 1},
            placeholder="e.g. a word of the passage, a file name or a figure caption",
        )
        .strip()
        .lower()
    )

    def keep(row: dict[str, Any]) -> bool:
        meta = row["metadata"]
        captions = " ".join(f.get("caption", "") for f in load(meta.get("figures")))
        return words in f"{row['text']} {meta.get('file_name', '')} {place(meta)} {captions}".lower()

    shown = [r for r in rows if keep(r)] if words else rows
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    ss["mat_page_no"] = min(ss.get("mat_page_no", 1), pages)
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, key="mat_page_no")
    st.caption(f"{len(shown)} of {len(rows)} passages shown")
    start = (page - 1) * PAGE_SIZE
    for i, row in enumerate(shown[start : start + PAGE_SIZE], start):
        passage_row(name, i, row)


# -- writing an item -----------------------------------------------------------------------------


def use_pick() -> None:
    """Fill the Generate tab's fields from the chosen passage (in a callback: they are drawn before this
    tab) and ask for the run, which the tab's script starts through the Generate tab's path."""
    ss = st.session_state
    ss.update(context=ss["mat_pick"]["context"], answer=ss.get("mat_answer", ""), question="", seed=0, mat_start=True)


def pick_panel(name: str, start_run: Callable[..., None], busy: bool) -> None:
    ss = st.session_state
    start = ss.pop("mat_start", False)
    st.text_input(
        "Answer", key="mat_answer", placeholder='e.g. the word or phrase the passage teaches, such as "evaporation"'
    )
    st.button(
        "Find the passage for this answer",
        key="mat_find",
        on_click=find_passage,
        args=(name,),
        help="Searches the material for the passage (and figure) that teaches the answer",
    )
    if flash := ss.pop("mat_flash", None):
        st.warning(flash)
    pick = ss.get("mat_pick")
    if pick is None or pick["choices"][0].get("material") != name:
        st.caption("Choose a passage below (*Use this passage*), or type an answer and find its passage.")
        return
    with st.container(border=True, key="mat_chosen"):
        left, right = st.columns([3, 1])
        left.markdown(f"**Chosen passage:** {_md(describe_source(pick['choices'][-1]))}")
        left.caption(_md(one_line(pick["context"])))
        labels = [c.get("figure_caption") or c.get("figure") or NO_PICTURE for c in pick["choices"]]
        k = (
            left.radio(
                "Picture", range(len(labels)), format_func=labels.__getitem__, key="mat_picture", horizontal=True
            )
            if len(labels) > 1
            else 0
        )
        source = pick["choices"][k]
        if source.get("figure_path"):
            right.image(source["figure_path"], width=200)
    st.button(
        "Generate from this passage",
        type="primary",
        key="mat_generate",
        disabled=busy,
        on_click=use_pick,
        help="Writes the item on the Generate tab, with the Generate tab's settings and exemplar banks",
    )
    if start:
        image = source.get("figure_path") if Path(source.get("figure_path") or "").is_file() else None
        start_run(
            image,
            subject=None,
            grade=None,
            exclude=[],
            upload_error=False,
            source=source if image else without_figure(source),
        )


def run_notice() -> None:
    run = current_run()
    source = run.state.get("source") if run is not None else None
    if run is not None and source:
        status = "starting" if run.status == "new" else run.status
        st.info(
            f"Run {run.run_id} from {describe_source(source)} is {status}: follow and review it on the Generate tab."
        )


def material_page(start_run: Callable[..., None], busy: bool) -> None:
    ss = st.session_state
    run_notice()
    picker = st.container()
    with st.container(border=True, key="mat_add"):
        st.markdown("**Add files to a material**")
        add_files_section()
    names = store.list_materials()
    if ss.get("mat_name") not in names:
        ss.pop("mat_name", None)
    with picker:
        name = st.selectbox(
            "Material",
            names,
            index=None,
            key="mat_name",
            placeholder="Choose a material",
            on_change=ss.update,
            kwargs={"mat_page_no": 1},
        )
    if not name:
        st.caption("Add files to start a material (or `coe ingest FILES --material NAME` on the command line).")
        return
    st.subheader("Write an item from a passage")
    pick_panel(name, start_run, busy)
    st.subheader("Passages and figures")
    browse(name)
