"""Token streaming through the graph: ``graph.stream(..., stream_mode="messages")`` shows each generating
step's tokens while they are decoded, with a scripted streaming backend and with the real llama.cpp model."""

from __future__ import annotations


import pytest

from coe.graphs import Services, build_graph, graph
from tests.batch_support import SETTINGS, build_bank, scripted_services, student
from tests.conftest import GGUF_PRESET
from tests.test_graph import StubReader


class StreamingStudent(type(student())):
    """The scripted student, streaming each reply word by word."""

    def stream(self, request):
        gen = self.generate(request)
        words = gen.text.split(" ")
        for i, word in enumerate(words):
            yield word + (" " if i < len(words) - 1 else "")
        return gen


def tokens_by_node(stream):
    out: dict[str, list[str]] = {}
    final = None
    for mode, chunk in stream:
        if mode == "messages":
            message, meta = chunk
            out.setdefault(meta["langgraph_node"], []).append(message.content)
        else:
            final = chunk
    return out, final


def test_each_generating_step_streams_the_reply_it_parses(tmp_path):
    build_bank(tmp_path / "chroma")
    services = scripted_services(str(tmp_path / "chroma"))
    services.llm.__class__ = StreamingStudent
    tokens, final = tokens_by_node(graph.stream({"answer": "fox", "n_distractors": 2},
                                                {"configurable": {**SETTINGS, "question_samples": 0, "write_notes": True}},
                                                context=services,
                                                stream_mode=["messages", "values"]))
    assert {"question", "rationale", "distractors", "notes"} <= set(tokens)
    assert all(len(pieces) > 1 for pieces in tokens.values())  # token by token, not one message per step
    raw: dict[str, list[str]] = {}
    for t in final["trace"]:  # a step the verifier sent back runs again: its replies follow each other
        raw.setdefault(t["node"], []).extend(t.get("raw") or [])
    for node in ("question", "rationale", "distractors", "notes"):
        assert "".join(tokens[node]) == "".join(raw[node])
    # without a messages listener nothing streams: the same item, from plain generate calls
    plain = scripted_services(str(tmp_path / "chroma"))
    assert graph.invoke({"answer": "fox", "n_distractors": 2}, {"configurable": SETTINGS},
                        context=plain)["question"] == final["question"]


@pytest.mark.real_parts
def test_the_real_model_streams_the_question_step(fixture_index):
    from coe.modelstore import is_pulled, resolve_llm
    from coe.plugins.llm.llamacpp import LlamaCppLLM

    if not is_pulled(GGUF_PRESET):
        pytest.fail(f"needs the {GGUF_PRESET} model (coe models pull {GGUF_PRESET})")
    llm = LlamaCppLLM(resolve_llm(GGUF_PRESET)[1], n_ctx=2048)
    services = Services(llm=llm, retriever=fixture_index, image_reader=StubReader())
    question_only = build_graph(until="question")
    tokens, final = tokens_by_node(question_only.stream(
        {"answer": "rabbit", "context": "A food chain in a meadow.", "n_distractors": 2},
        {"configurable": {"question_samples": 0, "question_exemplars": 0}}, context=services,
        stream_mode=["messages", "values"]))
    assert set(tokens) == {"question"} and len(tokens["question"]) > 3
    step = next(t for t in final["trace"] if t["node"] == "question")
    assert "".join(tokens["question"]) == step["raw"][0]
