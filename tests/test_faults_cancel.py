"""Ctrl-C during a llama.cpp step stops that step, says so, and exits 130; ``cancel()`` stops
a call in progress for a batch runner too. Real parts: the pulled 0.5B GGUF and MiniLM over a real Chroma."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import FIXTURE, GGUF_PRESET

pytestmark = pytest.mark.slow

LONG = "Explain, step by step and in great detail, how energy flows through a food web. " * 12


def _require(name: str) -> None:
    from coe.modelstore import is_pulled
    if not is_pulled(name):
        pytest.fail(f"needs the {name} model (coe models pull {name})")


@pytest.fixture(scope="module")
def llm():
    _require(GGUF_PRESET)
    from coe.plugins.llm.llamacpp import LlamaCppLLM
    return LlamaCppLLM.from_spec(GGUF_PRESET)


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory):
    """The fixture bank embedded with the default text embedder into a real Chroma folder."""
    _require("minilm-l6-v2-int8")
    from coe.dataset_loaders import ScienceQA
    from coe.plugins.registry import resolve
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank

    path = tmp_path_factory.mktemp("chroma")
    build_index(default_bank(ScienceQA(FIXTURE)), embedder=resolve("text_embedder"), store=ChromaStore(path))
    return path


def _request(max_tokens: int):
    from coe.plugins.llm.protocol import GenerationRequest, Message
    return GenerationRequest(messages=[Message(role="user", content=LONG)], max_tokens=max_tokens,
                             temperature=0.0)


def test_cancel_stops_a_call_in_progress_and_resume_allows_new_ones(llm, monkeypatch):
    from llama_cpp._internals import LlamaContext

    from coe.plugins.llm import llamacpp

    outcome: dict = {}
    evals = {"before": 0, "after": 0}  # llama.cpp decode calls begun before and after cancel()
    decoding = threading.Event()  # set once tokens are being generated, or when the call has ended
    original = LlamaContext.decode

    def counted(self, batch):  # the prompt, then one decode per generated token
        evals["after" if llamacpp.CANCEL.is_set() else "before"] += 1
        if evals["before"] > 3:
            decoding.set()
        return original(self, batch)

    def work():
        try:
            outcome["result"] = llm.generate(_request(2000))
        except KeyboardInterrupt as exc:
            outcome["interrupted"] = exc
        finally:
            decoding.set()

    monkeypatch.setattr(LlamaContext, "decode", counted)
    worker = threading.Thread(target=work)
    worker.start()
    decoding.wait()
    llamacpp.cancel()
    worker.join()
    try:
        assert "interrupted" in outcome, outcome  # 2000 tokens take minutes on this CPU: it was cut short
        assert evals["before"] > 3, evals  # it was cancelled while generating
        assert evals["after"] == 0, evals  # the decode in progress was aborted, and no token decoded after it
        with pytest.raises(KeyboardInterrupt):  # cancelled stays cancelled until resumed
            llm.generate(_request(4))
    finally:
        llamacpp.resume()
    again = llm.generate(_request(4))  # the context is usable after an aborted decode
    assert again.text and again.usage.completion_tokens >= 1


def test_sigint_during_a_model_step_exits_130_at_once(mini_index):
    _require(GGUF_PRESET)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COE_CHROMA_DIR": str(mini_index),
           "COE_SCIENCEQA_DIR": str(FIXTURE), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "coe.cli", "generate", "--model", GGUF_PRESET,
                             "--image", str(FIXTURE / "images/test/7/image.png"), "--answer", "fox",
                             "--context", LONG[:600]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:  # progress lines: "· retrieve (0.1 s)" means the question step has begun
            seen.append(line)
            if line.startswith("· retrieve"):
                break
        else:
            pytest.fail(f"coe generate ended before its model steps: {''.join(seen)}")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()  # not interrupted, it would go on to write the item and exit 0
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130, (rc, rest)
    # at once: the step in progress was the last; no later step reported (each prints a "· step" line)
    # the mini index has no rankers of its own: one notice says the heuristic ranking is used instead
    lines = [ln for ln in rest.strip().splitlines() if not ln.endswith("; the heuristic ranking is used")]
    assert lines == ["coe: aborted"], rest
    assert proc.stdout.read() == ""
