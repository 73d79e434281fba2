"""The batch API: one generate_batch call per stage (and per retry round), results equal to the graph's."""

import pytest

from coe.errors import ModelOutputError
from coe.graphs import Services, generate_items, graph
from coe.plugins.llm.scripted import ScriptedLLM
from tests.conftest import FIXTURE
from tests.test_graph import StubReader, stage_of

ITEMS = [
    {"answer": "rabbit", "context": "This is a food chain from a meadow.", "n_distractors": 2,
     "image_path": str(FIXTURE / "images/test/7/image.png")},
    {"answer": "fox", "context": "A meadow food chain.", "n_distractors": 2},
    {"answer": "grass", "question_given": "What does the rabbit eat?", "n_distractors": 2},
    {"answer": "hawk", "context": "Birds of prey hunt small animals.", "n_distractors": 2},
]

DISTRACTORS = {"rabbit": ["grass", "hawk"], "fox": ["owl", "deer"], "grass": ["fox", "stone"],
               "hawk": ["sparrow", "mouse"]}


def answer_of(request):
    return request.messages[-1].content.split("The correct answer of the new item: ", 1)[1].split("\n", 1)[0]


class CountingLLM(ScriptedLLM):
    """Replies depend only on the prompt, so the single-item graph and the batch see the same replies."""

    def __init__(self, bad_first=(), unparsable_first=()):
        self.bad_first, self.unparsable_first = set(bad_first), set(unparsable_first)
        self.batch_calls: list[list[str]] = []
        super().__init__(self.reply)

    def reply(self, request):
        stage, answer = stage_of(request), answer_of(request)
        if stage == "question":
            if answer in self.unparsable_first and request.temperature == 0:
                return "I cannot answer in JSON"
            return {"question": f"Which one is the {answer}?"}
        if stage == "rationale":
            return {"rationale": f"The {answer} is the answer because of the food chain."}
        if answer in self.bad_first and "previous distractors were rejected" not in request.messages[-1].content:
            return {"distractors": [answer, "option A"]}
        return {"distractors": DISTRACTORS[answer]}

    def generate_batch(self, requests):
        self.batch_calls.append([stage_of(r) for r in requests])
        return super().generate_batch(requests)


def strip_seconds(state):
    """The state without timings (``seconds``, ``stage_seconds``, ...), which differ from run to run."""
    out = {k: v for k, v in state.items() if k != "trace"}
    out["trace"] = [{k: v for k, v in t.items() if not k.endswith("seconds")} for t in state.get("trace", [])]
    return out


def single(llm, retriever, item, **conf):
    services = Services(llm=llm, retriever=retriever, image_reader=StubReader())
    return graph.invoke(dict(item), config={"configurable": {"services": services, **conf}})


def test_one_batched_call_per_stage(fixture_index):
    llm = CountingLLM()
    services = Services(llm=llm, retriever=fixture_index, image_reader=StubReader())
    stats = {}
    out = generate_items(ITEMS, services, n_distractors=2, stats=stats)
    assert [len(c) for c in llm.batch_calls] == [3, 4, 4]  # item 3 gave its question
    assert [set(c) for c in llm.batch_calls] == [{"question"}, {"rationale"}, {"distractors"}]
    assert all(o["valid"] for o in out)
    assert [o["distractors"] for o in out] == [DISTRACTORS[i["answer"]] for i in ITEMS]
    assert stats["question"]["batched_calls"] == 1 and stats["distractors"]["requests"] == 4


def test_results_equal_the_single_item_graph(fixture_index):
    batch_llm = CountingLLM(bad_first={"fox"}, unparsable_first={"hawk"})
    services = Services(llm=batch_llm, retriever=fixture_index, image_reader=StubReader())
    out = generate_items(ITEMS, services, n_distractors=2)
    for item, got in zip(ITEMS, out):
        want = single(CountingLLM(bad_first={"fox"}, unparsable_first={"hawk"}), fixture_index, item,
                      n_distractors=2)
        assert strip_seconds(got) == strip_seconds(want)
    # question (3), its parse retry (hawk), rationale, distractors, re-ask of fox's distractors
    assert [len(c) for c in batch_llm.batch_calls] == [3, 1, 4, 4, 1]


def test_ablations_and_coe_mode_match(fixture_index):
    for conf in ({"use_exemplars": False, "use_rationale": False}, {"mode": "coe"}):
        def reply(request):
            stage, answer = stage_of(request), answer_of(request)
            if conf.get("mode") == "coe":
                return {"question": f"Question: Which is the {answer}?",
                        "rationale": f"Rationale: It is the {answer}.",
                        "distractors": "\n".join(f"({k}) {d}" for k, d in enumerate(DISTRACTORS[answer], 1))}[stage]
            return {"question": {"question": f"Which is the {answer}?"},
                    "distractors": {"distractors": DISTRACTORS[answer]}}[stage]
        services = Services(llm=ScriptedLLM(reply), retriever=fixture_index, image_reader=StubReader())
        out = generate_items(ITEMS, services, n_distractors=2, **conf)
        for item, got in zip(ITEMS, out):
            want = single(ScriptedLLM(reply), fixture_index, item, n_distractors=2, **conf)
            assert strip_seconds(got) == strip_seconds(want)


def test_a_failed_item_does_not_stop_the_others(fixture_index):
    def reply(request):
        stage, answer = stage_of(request), answer_of(request)
        if stage == "distractors":
            return {"distractors": ["option A", answer] if answer == "fox" else DISTRACTORS[answer]}
        return {"question": {"question": "Q?"}, "rationale": {"rationale": "R."}}[stage]
    services = Services(llm=ScriptedLLM(reply), retriever=fixture_index, image_reader=StubReader())
    out = generate_items(ITEMS, services, n_distractors=2, use_exemplars=False, max_retries=1)
    assert out[1]["valid"] is False and "could not produce" in out[1]["error"]
    assert all(o["valid"] for k, o in enumerate(out) if k != 1)
    with pytest.raises(ModelOutputError):
        generate_items(ITEMS, services, n_distractors=2, use_exemplars=False, max_retries=1, raise_errors=True)
    with pytest.raises(ValueError, match="unknown settings"):
        generate_items(ITEMS, services, nope=1)
