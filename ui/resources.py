"""What every session of the console shares (one per process), and the session's current run."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from coe.graphs.services import load_services
from coe.ui.runs import Run

from coe.errors import CoeError, ConfigError
from coe.paths import scienceqa_dir

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


def current_run() -> Run | None:
    return st.session_state.get("run")
