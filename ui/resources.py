"""What every session of the console shares (one per process), and the session's current run."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import streamlit as st
from coe.graphs.services import load_services
from coe.ui.runs import Run

from coe.errors import CoeError, ConfigError
from coe.paths import scienceqa_dir
from coe.text import one_line

SOURCES = ("Upload an image", "ScienceQA test item")
DEFAULT_MODEL = "default"
DIFFICULTIES = ("easy", "medium", "hard")
POLL_SECONDS = 0.5

VARIANTS: dict[str, dict[str, Any]] = {
    "Full CoE": {"mode": "json", "use_exemplars": True, "use_rationale": True},
    "No exemplars (zero-shot)": {"mode": "json", "use_exemplars": False, "use_rationale": True},
    "No rationale": {"mode": "json", "use_exemplars": True, "use_rationale": False},
    "Paper prompt shapes (free text)": {"mode": "coe", "use_exemplars": True, "use_rationale": True},
    # The first version: one greedy question, the model's own choice of distractors, nothing verified.
    "Single shot (unverified)": {
        "mode": "json",
        "pool_selection": "model",
        "question_exemplars": 0,
        "question_samples": 0,
        "verify": False,
        "write_notes": False,
    },
}

log = logging.getLogger(__name__)

# -- shared resources (one per process, used by every session) ------------------------------


@st.cache_resource(show_spinner="Loading the model and the exemplar index…")
def shared_services(spec: str, model: str | None):
    """One model instance for all sessions; ``spec`` keys the cache on the services factory."""
    return load_services(model)


@st.cache_resource(show_spinner="Loading the exemplar banks…")
def services_for_banks(spec: str, model: str | None, banks: tuple[str, ...]):
    """``shared_services`` with retrieval over ``banks`` (the same embedder and store, one in-memory copy
    of each chosen set of banks per process)."""
    from dataclasses import replace

    from coe.question_banks import require_banks

    base = shared_services(spec, model)
    if tuple(base.retriever.banks) == banks:
        return base
    require_banks(base.retriever.raw_store, banks, base.retriever.embedder.model_id)
    return replace(base, retriever=base.retriever.with_banks(banks))


@st.cache_data(ttl=15, show_spinner=False)
def bank_names(spec: str) -> list[str]:
    """The banks retrieval can search: ScienceQA's (``default``) and every imported one. Read from the
    exemplar store alone, so listing them does not load a model."""
    from coe.question_banks import list_banks

    store = shared_services(spec, None).retriever.raw_store if spec else None
    return [b.name for b in list_banks(store)]


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
    from coe.dataset_loaders import ScienceQA

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
    return {
        p.pid: f"{p.pid} · {p.question[:80]}{' · with picture' if p.image_path else ''}" for p in dataset.split("test")
    }


def llm_presets() -> list[str]:
    """Names of pulled language-model presets (the default is the first pulled in preset order)."""
    try:
        from coe.modelstore import list_models

        return [m["name"] for m in list_models() if m.get("role") == "llm" and m.get("status") == "pulled"]
    except Exception:  # a broken model folder must not take the page down
        log.exception("listing models failed")
        return []


def dataset():
    return shared_dataset(str(scienceqa_dir()))


_MB = 1024 * 1024
# The project's one-line errors that carry library words, and how the page says them instead.
_PLAIN = [
    (
        r"not a readable image: (?P<name>.+?)(?: \(.*\))?",
        lambda m: f"This file is not an image: {m['name']}. Choose a picture file such as PNG or JPEG.",
    ),
    (
        r"image too large: (?P<name>.+) \((?P<w>\d+)x(?P<h>\d+) pixels, limit (?P<limit>\d+)\)",
        lambda m: (
            f"This picture is too large: {m['name']} is {m['w']} × {m['h']} pixels; pictures up to "
            f"{int(m['limit']) / 1e6:g} million pixels work."
        ),
    ),
    (
        r"image too large: (?P<name>.+) \((?P<size>\d+) bytes, limit (?P<limit>\d+)\)",
        lambda m: f"This file is too large: {m['name']} is over the {int(m['limit']) / _MB:g} MB limit.",
    ),
    (r"image not found: (?P<path>.+)", lambda m: f"The picture file is missing: {m['path']}"),
    (
        r"could not produce (?P<n>\d+) valid distractors: (?P<why>.+)",
        lambda m: f"The model could not write {m['n']} usable wrong options ({m['why']}). Try again, or another model.",
    ),
    (
        r"[A-Z]\w*(?:Error|Exception):? ?(?P<what>.*)",
        lambda m: (
            "Something unexpected went wrong"
            + (f": {m['what']}" if m["what"] else "")
            + " (the console's log has the details)."
        ),
    ),
]


def plain_error(error: object) -> str:
    """An error as the page shows it: one line, in plain words (no exception class names)."""
    text = one_line(error)
    for pattern, say in _PLAIN:
        if m := re.fullmatch(pattern, text):
            return say(m)
    return text[:1].upper() + text[1:]


def current_run() -> Run | None:
    return st.session_state.get("run")
