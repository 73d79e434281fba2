"""The review graph: interrupt after validation, resume with accept / regenerate decisions."""

import pytest
from coe.graphs import Services, graph
from coe.graphs.review import build_review_graph
from tests.scripted_llm import ScriptedLLM
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from tests.conftest import FIXTURE
from tests.test_graph import SINGLE_SHOT, StubReader, scripted, stage_of

IMAGE = str(FIXTURE / "images/test/7/image.png")


# The models of each thread: runtime context is given with every call, it is not checkpointed.
CONTEXT: dict[str, Services] = {}


def start(llm, retriever, thread="t1", **conf):
    g = build_review_graph(InMemorySaver())
    config = {"configurable": {"thread_id": thread, "n_distractors": 2, **SINGLE_SHOT, **conf}}
    CONTEXT[thread] = Services(llm=llm, retriever=retriever, image_reader=StubReader())
    chunks = list(g.stream({"answer": "rabbit", "context": "A meadow food chain.", "n_distractors": 2,
                            "image_path": IMAGE}, config, context=CONTEXT[thread], stream_mode="updates"))
    return g, config, chunks


def resume(g, config, decision):
    thread = config["configurable"]["thread_id"]
    return list(g.stream(Command(resume=decision), config, context=CONTEXT[thread], stream_mode="updates"))


def waiting(g, config):
    snap = g.get_state(config)
    values = [i.value for t in snap.tasks for i in t.interrupts]
    return snap, (values[0] if values else None)


def test_runs_the_flow_then_waits_for_review(fixture_index):
    llm = scripted([{"distractors": ["grass", "hawk"]}])
    g, config, chunks = start(llm, fixture_index)
    assert [next(iter(c)) for c in chunks] == ["describe_image", "retrieve", "question", "rationale",
                                                "distractors", "validate", "verify", "notes", "__interrupt__"]
    snap, request = waiting(g, config)
    assert snap.next == ("review",)
    assert request["distractors"] == ["grass", "hawk"] and request["question"] == "Which organism is eaten by the fox?"
    # each step records the state fields it read
    trace = snap.values["trace"]
    assert trace[0]["inputs"] == {"image_path": IMAGE}
    assert trace[4]["inputs"]["question"] == "Which organism is eaten by the fox?"
    assert trace[5]["inputs"]["candidate_distractors"] == ["grass", "hawk"]


def test_regenerate_one_keeps_the_rest_and_applies_edits(fixture_index):
    llm = scripted([{"distractors": ["grass", "hawk"]}, {"distractors": ["owl"]}])
    g, config, _ = start(llm, fixture_index)
    chunks = resume(g, config, {"action": "regenerate_distractors", "keep": ["grass"],
                                "edits": {"question": "What does the fox eat?"}})
    assert [next(iter(c)) for c in chunks] == ["review", "distractors", "validate", "verify", "notes",
                                                "__interrupt__"]
    snap, request = waiting(g, config)
    assert request["distractors"] == ["grass", "owl"] and request["question"] == "What does the fox eat?"
    prompt = llm.requests[-1].messages[1].content
    assert "write exactly 1 distractors" in prompt
    assert "the reviewer rejected 'hawk'" in prompt and "already has 'grass'" in prompt
    assert "Question of the new item: What does the fox eat?" in prompt
    assert snap.values["trace"][-4]["kept"] == ["grass"]


def test_regenerate_all_then_accept_ends(fixture_index):
    llm = scripted([{"distractors": ["grass", "hawk"]}, {"distractors": ["owl", "worm"]}])
    g, config, _ = start(llm, fixture_index)
    resume(g, config, {"action": "regenerate_distractors", "keep": []})
    assert waiting(g, config)[1]["distractors"] == ["owl", "worm"]
    assert "the reviewer rejected 'grass', 'hawk'" in llm.requests[-1].messages[1].content
    resume(g, config, {"action": "accept", "edits": {"distractors": ["owl", "Earthworm"], "answer": "a rabbit"}})
    snap, request = waiting(g, config)
    assert snap.next == () and request is None
    assert snap.values["reviewed"] and snap.values["distractors"] == ["owl", "Earthworm"]
    assert snap.values["answer"] == "a rabbit"
    assert [t["node"] for t in snap.values["trace"]][-1] == "review"


def test_invalid_edits_are_refused_and_asked_again(fixture_index):
    llm = scripted([{"distractors": ["grass", "hawk"]}])
    g, config, _ = start(llm, fixture_index)
    resume(g, config, {"action": "accept", "edits": {"distractors": ["grass", "Rabbit"]}})
    snap, request = waiting(g, config)
    assert snap.next == ("review",)
    assert request["problems"] == ["'Rabbit' is the correct answer"]
    assert request["distractors"] == ["grass", "hawk"]  # the refused edit is not applied
    resume(g, config, {"action": "regenerate_distractors", "keep": ["grass", "GRASS"]})
    assert any("kept options" in p for p in waiting(g, config)[1]["problems"])
    resume(g, config, {"action": "regenerate_distractors", "keep": ["grass", "hawk"]})
    assert "nothing to regenerate" in waiting(g, config)[1]["problems"][0]
    resume(g, config, {"action": "publish"})
    assert "unknown review action" in waiting(g, config)[1]["problems"][0]
    resume(g, config, {"action": "accept", "edits": {"question": "  "}})
    assert waiting(g, config)[1]["problems"] == ["the question is empty"]
    resume(g, config, {"action": "accept"})
    assert g.get_state(config).values["reviewed"]


def test_regeneration_retries_when_a_kept_option_comes_back(fixture_index):
    llm = scripted([{"distractors": ["grass", "hawk"]}, {"distractors": ["grass"]}, {"distractors": ["owl"]}])
    g, config, _ = start(llm, fixture_index)
    resume(g, config, {"action": "regenerate_distractors", "keep": ["grass"]})
    _, request = waiting(g, config)
    assert request["distractors"] == ["grass", "owl"]
    assert "repeats another option" in llm.requests[-1].messages[1].content


def test_a_replaced_option_may_not_come_back(fixture_index):
    llm = scripted([{"distractors": ["grass", "hawk"]}, {"distractors": ["Hawk"]}, {"distractors": ["owl"]},
                    {"distractors": ["owl"]}, {"distractors": ["worm"]}])
    g, config, _ = start(llm, fixture_index)
    resume(g, config, {"action": "regenerate_distractors", "keep": ["grass"]})
    snap, request = waiting(g, config)
    assert request["distractors"] == ["grass", "owl"]
    assert "'Hawk' was rejected by the reviewer" in llm.requests[-1].messages[1].content
    assert snap.values["trace"][-5]["problems"][0] == "'Hawk' was rejected by the reviewer"
    # rejections add up over rounds, unless the reviewer keeps the option again
    resume(g, config, {"action": "regenerate_distractors", "keep": ["grass"]})
    snap, request = waiting(g, config)
    assert request["distractors"] == ["grass", "worm"]
    assert snap.values["rejected"] == ["hawk", "owl"]
    assert "the reviewer rejected 'hawk', 'owl'" in llm.requests[-2].messages[1].content


def test_swap_question_writes_and_checks_the_rest_again(fixture_index):
    from coe.ranking.templates import template_mask
    from tests.ui_support import reply
    from tests.verify_support import ScriptedStudent

    llm = ScriptedStudent(reply, prefer=lambda q, options: {"rabbit": 0.7},
                          yes=lambda q, option: 0.9 if option == "rabbit" else 0.1)
    # verification on: the question step generates several and keeps the best, the rest are the swaps
    g, config, _ = start(llm, fixture_index, verify=True, question_selection="model", pool_selection="rank")
    snap, request = waiting(g, config)
    first, others = request["question"], request["questions"]
    assert others and len({template_mask(q, "rabbit") for q in [first, *others]}) == len(others) + 1
    chunks = resume(g, config, {"action": "swap_question", "question": others[0]})
    assert [next(iter(c)) for c in chunks] == ["review", "rationale", "distractors", "validate", "verify", "notes",
                                                "__interrupt__"]
    snap, request = waiting(g, config)
    assert request["question"] == others[0] and snap.values["question_given"] == others[0]
    assert first in request["questions"] and others[0] not in request["questions"]
    rationale_prompt = [r for r in llm.requests if "rationale" in r.json_schema.get("properties", {})][-1]
    assert others[0] in rationale_prompt.messages[-1].content
    trace = snap.values["trace"]
    swapped = max(i for i, t in enumerate(trace) if t["node"] == "review")
    assert trace[swapped]["question"] == others[0]
    assert [t["node"] for t in trace[swapped:]].count("verify") >= 1 and request["status"] == "verified"
    resume(g, config, {"action": "swap_question", "question": " "})
    assert waiting(g, config)[1]["problems"] == ["the question is empty"]


def test_threads_are_independent(fixture_index):
    saver = InMemorySaver()
    g = build_review_graph(saver)
    outs = {}
    for thread, pair in (("a", ["grass", "hawk"]), ("b", ["owl", "worm"])):
        config = {"configurable": {"thread_id": thread, **SINGLE_SHOT}}
        list(g.stream({"answer": "rabbit", "n_distractors": 2}, config, context=Services(
            llm=scripted([{"distractors": pair}]), retriever=fixture_index, image_reader=StubReader())))
        outs[thread] = config
    assert waiting(g, outs["a"])[1]["distractors"] == ["grass", "hawk"]
    assert waiting(g, outs["b"])[1]["distractors"] == ["owl", "worm"]


def test_coe_mode_regeneration(fixture_index):
    def reply(request):
        return {"question": "Question: What does the fox eat?", "rationale": "Rationale: The fox eats rabbits.",
                "distractors": "(1) grass\n(2) hawk" if "generate 2" in request.messages[-1].content
                else "(1) owl"}[stage_of(request)]
    g, config, _ = start(ScriptedLLM(reply), fixture_index, mode="coe")
    resume(g, config, {"action": "regenerate_distractors", "keep": ["hawk"]})
    assert waiting(g, config)[1]["distractors"] == ["hawk", "owl"]


def test_requires_a_thread_id(fixture_index):
    g = build_review_graph()
    with pytest.raises((ValueError, KeyError)):  # the checkpointer needs a thread id
        g.invoke({"answer": "rabbit"}, {}, context=Services(llm=scripted([])))


def test_plain_graph_is_unchanged(fixture_index):
    assert "review" not in graph.nodes
    assert graph.checkpointer is None
