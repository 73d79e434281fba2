"""Scripted services for the console tests: ``COE_SERVICES=tests.ui_support:services``.

The language model is a :class:`ScriptedLLM` whose distractors come from a fixed pool, skipping any
option the prompt already mentions (kept or rejected by the reviewer), so regenerations differ.
Retrieval runs over the hand-written fixture bank in a real Chroma store with a hash embedder.
``GATE`` can hold one stage (rationale or distractors) until a test opens it, to cancel a run in flight.
``COE_TEST_MODEL_SECONDS`` makes each model call take that long, as a real model's do: an instant run on a
busy machine can reach the browser in one batch of updates, so its progress line is never drawn.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
import time
from functools import cache

from coe.graphs import Services
from tests.verify_support import ScriptedStudent, task_of

POOL = ["grass", "hawk", "owl", "worm", "mouse", "snake", "frog", "deer", "beetle", "moss", "fern", "heron"]
QUESTION = "Which organism is eaten by the fox?"
RATIONALE = "In a food chain, arrows point from food to eater. The fox eats the rabbit."


class Gate:
    """Closed: the model call of ``stage`` waits until ``open()`` (or 30 s)."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.reached = threading.Event()
        self.stage = "rationale"

    def close(self, stage: str = "rationale") -> None:
        self.stage = stage
        self._open.clear()
        self.reached.clear()

    def open(self) -> None:
        self._open.set()

    def wait(self, stage: str) -> None:
        if stage == self.stage and not self._open.is_set():
            self.reached.set()
            self._open.wait(30)


GATE = Gate()
MODEL_SECONDS = float(os.environ.get("COE_TEST_MODEL_SECONDS", "0"))


class StubReader:
    name = "stub"

    def describe(self, image, source_path=None):
        from coe.plugins.vision.protocol import ImageText
        return ImageText(caption="a food chain", ocr_text="grass rabbit fox", ocr_lines=["grass", "rabbit", "fox"],
                         source="stub")


def reply(request):
    stage = task_of(request)
    GATE.wait(stage)
    time.sleep(MODEL_SECONDS)
    if stage == "question":
        return {"question": QUESTION}
    if stage == "rationale":
        return {"rationale": RATIONALE}
    if stage == "notes":
        n = request.json_schema["properties"]["notes"]["minItems"]
        return {"notes": [f"a student may mix it up with the rabbit ({i + 1})" for i in range(n)]}
    prompt = request.messages[-1].content
    if request.json_schema is not None:
        n = request.json_schema["properties"]["distractors"]["minItems"]
    else:
        n = int(re.search(r"(\d+) distractors", prompt.split("Question of the new item:")[-1]).group(1))
    # options the reviewer kept or rejected (and the validator's complaints) are named in the feedback line
    feedback = re.search(r"Your previous distractors were rejected: (.*)", prompt)
    named = feedback.group(1).lower() if feedback else ""
    picks = [w for w in POOL if not re.search(rf"\b{w}\b", named)][:n]
    if request.json_schema is None:
        return "\n".join(f"({i + 1}) {w}" for i, w in enumerate(picks))
    return {"distractors": picks}


@cache
def _retriever():
    from coe.dataset_loaders import ScienceQA
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.retriever import ExemplarRetriever

    from tests.conftest import FIXTURE, HashEmbedder

    folder = tempfile.mkdtemp(prefix="coe-ui-chroma-")
    # every console and server process of the tests builds one; without this each run left its index in /tmp
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    store = ChromaStore(folder)
    embedder = HashEmbedder()
    build_index(default_bank(ScienceQA(FIXTURE)), embedder=embedder, store=store)
    return ExemplarRetriever(embedder, store)


def services(model: str | None = None) -> Services:
    # The student answers "rabbit" and judges only the key correct: items verify.
    llm = ScriptedStudent(reply, prefer=lambda q, options: {"rabbit": 0.7},
                          yes=lambda q, option: 0.9 if option == "rabbit" else 0.1)
    llm.model_id = f"scripted-{model or 'default'}"
    return Services(llm=llm, retriever=_retriever(), image_reader=StubReader())
