"""The batch API runs the compiled graph for many items; a natively batching backend gets the concurrent
model calls as batched calls (``MicroBatchLLM``). Most tests run the single-shot graph (``SINGLE_SHOT``:
no verification, no notes), whose model calls they can count; one runs the full default graph."""

import threading
import time

import pytest

from coe.errors import InputError, ModelOutputError
from coe.graphs import Services, generate_items, graph
from coe.plugins.llm.request_batcher import MicroBatchLLM
from coe.plugins.llm.protocol import Generation, GenerationRequest, Message, Usage
from tests.scripted_llm import ScriptedLLM
from tests.conftest import FIXTURE
from tests.test_graph import SINGLE_SHOT, StubReader, stage_of
from tests.verify_support import ScriptedStudent, task_of

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


def replies(bad_first=(), unparsable_first=()):
    """Replies that depend only on the prompt, so the order in which threads ask does not matter."""
    def reply(request):
        stage, answer = stage_of(request), answer_of(request)
        if stage == "question":
            if answer in unparsable_first and request.temperature == 0:
                return "I cannot answer in JSON"
            return {"question": f"Which one is the {answer}?"}
        if stage == "rationale":
            return {"rationale": f"The {answer} is the answer because of the food chain."}
        if answer in bad_first and "previous distractors were rejected" not in request.messages[-1].content:
            return {"distractors": [answer, "option A"]}
        return {"distractors": DISTRACTORS[answer]}
    return reply


class NativeLLM(ScriptedLLM):
    """A backend whose ``generate_batch`` counts as native batching; it records each batch's stages."""

    native_batching = True
    max_batch_size = 8

    def __init__(self, reply):
        super().__init__(reply)
        self.batches: list[list[str]] = []

    def generate_batch(self, requests):
        self.batches.append([stage_of(r) for r in requests])
        return super().generate_batch(requests)


def strip_seconds(value):
    """The state without timings (``seconds``, ``stage_seconds``, ... at any depth), which differ from run
    to run."""
    if isinstance(value, dict):
        return {k: strip_seconds(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [strip_seconds(v) for v in value]
    return value


def single(reply, retriever, item, llm_class=ScriptedLLM, **conf):
    services = Services(llm=llm_class(reply), retriever=retriever, image_reader=StubReader())
    return graph.invoke(dict(item), config={"configurable": conf}, context=services)


def services_for(llm, retriever):
    return Services(llm=llm, retriever=retriever, image_reader=StubReader())


# --- through the graph ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", [ScriptedLLM, NativeLLM])
def test_each_item_gets_what_invoke_gives(fixture_index, backend):
    reply = replies(bad_first={"fox"}, unparsable_first={"hawk"})
    out = generate_items(ITEMS, services_for(backend(reply), fixture_index), n_distractors=2, **SINGLE_SHOT)
    assert len(out) == len(ITEMS)
    for item, got in zip(ITEMS, out):
        want = single(reply, fixture_index, item, n_distractors=2, **SINGLE_SHOT)
        assert strip_seconds(got) == strip_seconds(want)
    assert [o["distractors"] for o in out] == [DISTRACTORS[i["answer"]] for i in ITEMS]
    fox = out[1]["trace"]
    assert [t["node"] for t in fox].count("distractors") == 2  # rejected once, asked again


def test_coe_mode_and_ablations_match_invoke(fixture_index):
    def coe_reply(request):
        stage, answer = stage_of(request), answer_of(request)
        return {"question": f"Question: Which is the {answer}?", "rationale": f"Rationale: It is the {answer}.",
                "distractors": "\n".join(f"({k}) {d}" for k, d in enumerate(DISTRACTORS[answer], 1))}[stage]
    for conf, reply in (({"mode": "coe", **SINGLE_SHOT}, coe_reply),
                        ({"use_exemplars": False, "use_rationale": False, **SINGLE_SHOT}, replies())):
        out = generate_items(ITEMS, services_for(NativeLLM(reply), fixture_index), n_distractors=2, **conf)
        for item, got in zip(ITEMS, out):
            assert strip_seconds(got) == strip_seconds(single(reply, fixture_index, item, n_distractors=2, **conf))


class NativeStudent(ScriptedStudent):
    native_batching = True


def student_reply(request):
    task, answer = task_of(request), answer_of(request)
    if task == "question":
        return {"question": f"Which one is the {answer}?"}
    if task == "rationale":
        return {"rationale": f"The {answer} is the answer because of the food chain."}
    if task == "notes":
        n = request.json_schema["properties"]["notes"]["minItems"]
        return {"notes": [f"a student may confuse option {i + 1} with the {answer}" for i in range(n)]}
    return {"distractors": DISTRACTORS[answer]}


def key_of(question):
    return "grass" if question == ITEMS[2]["question_given"] else question.removeprefix("Which one is the ")[:-1]


def student(reply):
    return NativeStudent(reply, prefer=lambda q, options: {key_of(q): 0.8},
                         yes=lambda q, option: 0.9 if option == key_of(q) else 0.1)


def test_the_full_default_graph_matches_invoke(fixture_index):
    """Verification (option scores, passed through unbatched), sampled questions and notes included."""
    llm = student(student_reply)
    stats = {}
    out = generate_items(ITEMS, services_for(llm, fixture_index), n_distractors=2, stats=stats)
    for item, got in zip(ITEMS, out):
        want = single(student_reply, fixture_index, item, llm_class=student, n_distractors=2)
        assert strip_seconds(got) == strip_seconds(want)
    assert all(o["status"] in ("verified", "unconfirmed", "flagged") and o["verification"] for o in out) and llm.scored
    assert stats["batching"]["requests"] == len(llm.requests) and stats["batching"]["max_size"] > 1


def test_concurrent_model_calls_are_batched(fixture_index):
    llm = NativeLLM(replies())
    # A long timer: the batches below can only go out early because every running item is waiting.
    batcher = MicroBatchLLM(llm, max_wait_ms=5000)
    waits = watch(batcher)
    stats = {}
    out = generate_items(ITEMS, services_for(batcher, fixture_index), n_distractors=2, stats=stats,
                         max_concurrency=4, **SINGLE_SHOT)
    assert waits.ran_out == []  # no batch waited for the timer
    assert all(o["valid"] for o in out)
    # rounds of model calls: item 3 was given its question, so it is one step ahead and done one round early
    assert [sorted(b) for b in llm.batches] == [["question"] * 3 + ["rationale"],
                                                ["distractors"] + ["rationale"] * 3, ["distractors"] * 3]
    assert stats["batching"]["sizes"] == [4, 4, 3] and stats["batching"]["requests"] == 11
    assert stats["items"] == 4 and stats["failed"] == 0 and stats["max_concurrency"] == 4


def test_concurrency_bounds_the_batch(fixture_index):
    llm = NativeLLM(replies())
    stats = {}
    out = generate_items(ITEMS, services_for(MicroBatchLLM(llm, max_wait_ms=5000), fixture_index),
                         n_distractors=2, stats=stats, max_concurrency=2, **SINGLE_SHOT)
    assert all(o["valid"] for o in out)
    sizes = stats["batching"]["sizes"]
    assert max(sizes) == 2 and sum(sizes) == 11
    solo = {}
    generate_items(ITEMS, services_for(NativeLLM(replies()), fixture_index), n_distractors=2, stats=solo,
                   max_concurrency=1, **SINGLE_SHOT)
    assert solo["batching"]["sizes"] == [1] * 11


def test_a_failed_item_carries_its_error_and_the_rest_go_on(fixture_index):
    def reply(request):
        stage, answer = stage_of(request), answer_of(request)
        if stage == "distractors":
            return {"distractors": ["option A", answer] if answer == "fox" else DISTRACTORS[answer]}
        return {"question": {"question": "Q?"}, "rationale": {"rationale": "R."}}[stage]
    for backend in (ScriptedLLM, NativeLLM):
        services = services_for(backend(reply), fixture_index)
        stats = {}
        out = generate_items(ITEMS, services, n_distractors=2, use_exemplars=False, max_retries=1, stats=stats,
                             **SINGLE_SHOT)
        assert out[1]["valid"] is False and "could not produce" in out[1]["error"]
        assert out[1]["answer"] == "fox"
        assert all(o["valid"] and "error" not in o for k, o in enumerate(out) if k != 1)
        assert stats["failed"] == 1
        with pytest.raises(ModelOutputError, match="could not produce"):
            generate_items(ITEMS, services, n_distractors=2, use_exemplars=False, max_retries=1, raise_errors=True,
                           **SINGLE_SHOT)
    with pytest.raises(InputError, match="unknown setting .nope."):
        generate_items(ITEMS, services, nope=1)


def test_a_bug_is_raised_after_the_batch(fixture_index):
    def reply(request):
        if answer_of(request) == "hawk":
            raise RuntimeError("backend bug")
        return replies()(request)
    llm = ScriptedLLM(reply)
    with pytest.raises(RuntimeError, match="backend bug"):
        generate_items(ITEMS, services_for(llm, fixture_index), n_distractors=2, use_exemplars=False, **SINGLE_SHOT)
    # the other items ran to the end before the error surfaced
    assert sum(stage_of(r) == "distractors" for r in llm.requests) == 3


# --- the micro-batcher ---------------------------------------------------------------------------------

class EchoLLM:
    """Replies with the prompt; a prompt containing "boom" fails its whole batch."""

    name = "echo"
    model_id = "echo-1"
    supports_images = False
    supports_json_schema = True
    native_batching = True

    def __init__(self, delay: float = 0.0, short_by: int = 0):
        self.delay, self.short_by = delay, short_by
        self.sizes: list[int] = []
        self.threads: set[int] = set()  # the threads its batches ran on

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, request):
        return self.generate_batch([request])[0]

    def generate_batch(self, requests):
        self.sizes.append(len(requests))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        if any("boom" in r.messages[-1].content for r in requests):
            raise RuntimeError("backend failed")
        gens = [Generation(text=r.messages[-1].content, model=self.model_id, usage=Usage(completion_tokens=1))
                for r in requests]
        return gens[:len(gens) - self.short_by]


def req(text):
    return GenerationRequest(messages=[Message(role="user", content=text)])


class WatchedCondition(threading.Condition):
    """The batcher's condition, noting each wait's timeout and each wait that ran it out (a timer fired)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []
        self.ran_out: list[float | None] = []

    def wait(self, timeout=None):
        self.timeouts.append(timeout)
        woken = super().wait(timeout)
        if not woken:
            self.ran_out.append(timeout)
        return woken


def watch(batcher: MicroBatchLLM) -> WatchedCondition:
    batcher._cond = WatchedCondition()
    return batcher._cond


def in_threads(fn, args):
    """fn(arg) in one thread per arg, started together; {arg: result or exception}."""
    results, start = {}, threading.Barrier(len(args))

    def work(a):
        start.wait()
        try:
            results[a] = fn(a)
        except Exception as exc:  # noqa: BLE001 - the caller inspects it
            results[a] = exc
    threads = [threading.Thread(target=work, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a caller never got its reply"
    return results


def test_many_threads_each_get_their_own_reply():
    backend = EchoLLM(delay=0.01)
    mb = MicroBatchLLM(backend, max_batch_size=4, max_wait_ms=5000)
    prompts = [f"prompt {i}" for i in range(16)]
    mb.set_callers(len(prompts))
    got = in_threads(lambda p: mb.generate(req(p)).text, prompts)
    assert got == {p: p for p in prompts}
    assert backend.sizes == [4, 4, 4, 4] and mb.stats["sizes"] == [4, 4, 4, 4]
    assert mb.stats["batches"] == 4 and mb.stats["requests"] == 16 and mb.stats["max_size"] == 4
    # whichever caller sends a batch, it runs on the batcher's own thread: PyTorch keeps a thread team per
    # calling thread, and a team left spinning by the last sender slows the next batch
    mb.set_callers(1)
    assert mb.generate(req("from the main thread")).text == "from the main thread"
    assert len(backend.threads) == 1 and threading.get_ident() not in backend.threads
    mb.set_callers(len(prompts))
    # a caller's own generate_batch keeps its order and may share a batch with others
    mb.set_callers(2)
    both = in_threads(lambda k: [g.text for g in mb.generate_batch([req(f"{k}-a"), req(f"{k}-b")])], ["x", "y"])
    assert both == {"x": ["x-a", "x-b"], "y": ["y-a", "y-b"]}
    assert mb.stats["sizes"][5:] == [4]


def test_a_backend_error_reaches_every_caller_of_its_batch():
    backend = EchoLLM()
    mb = MicroBatchLLM(backend, max_wait_ms=5000)
    mb.set_callers(3)
    got = in_threads(lambda p: mb.generate(req(p)).text, ["a", "boom", "c"])
    assert all(isinstance(v, RuntimeError) and "backend failed" in str(v) for v in got.values())
    assert backend.sizes == [3]
    mb.set_callers(1)
    assert mb.generate(req("after")).text == "after"  # the batcher is not stuck
    short = MicroBatchLLM(EchoLLM(short_by=1), max_wait_ms=0)
    with pytest.raises(RuntimeError, match="returned 1 replies for 2 requests"):
        short.generate_batch([req("a"), req("b")])


def test_a_single_caller_waits_at_most_max_wait_ms():
    mb = MicroBatchLLM(EchoLLM(), max_wait_ms=150)
    waits = watch(mb)
    t0 = time.perf_counter()
    assert mb.generate(req("alone")).text == "alone"
    assert time.perf_counter() - t0 >= 0.14  # the timer held it
    # it waited for the timer and nothing else: every wait bounded by max_wait_ms, the timer ran out
    assert waits.ran_out and all(t is not None and t <= 0.15 for t in waits.timeouts), waits.timeouts
    mb.set_callers(1)  # the only caller: nobody to wait for
    before = len(waits.timeouts)
    mb.generate(req("alone again"))
    assert len(waits.timeouts) == before  # sent at once, no wait at all
    mb.set_callers(5)  # a count too high only costs the timer, it never hangs
    got = in_threads(lambda p: mb.generate(req(p)).text, ["p", "q"])
    assert got == {"p": "p", "q": "q"} and mb.stats["sizes"][-1] == 2


def test_callers_arriving_one_after_another_share_a_batch():
    backend = EchoLLM()
    mb = MicroBatchLLM(backend, max_wait_ms=200)
    # eight callers 50 ms apart: 350 ms from the first to the last, but never 200 ms without a new one
    got = in_threads(lambda i: time.sleep(0.05 * i) or mb.generate(req(f"p{i}")).text, list(range(8)))
    assert got == {i: f"p{i}" for i in range(8)}
    assert backend.sizes == [8]
    # a stream that never pauses still goes out, max_hold_ms after its first request
    held = EchoLLM()
    mb = MicroBatchLLM(held, max_wait_ms=200, max_hold_ms=300)
    t0 = time.perf_counter()
    got = in_threads(lambda i: (time.sleep(0.1 * i), mb.generate(req(f"q{i}")), time.perf_counter() - t0)[2],
                     list(range(8)))
    assert len(held.sizes) >= 2 and sum(held.sizes) == 8 and held.sizes[0] >= 2
    assert got[0] < 0.6  # the first caller did not wait for the stream to end (at 0.7 s)
    with pytest.raises(ValueError, match="max_hold_ms"):
        MicroBatchLLM(EchoLLM(), max_wait_ms=100, max_hold_ms=50)


def test_other_attributes_are_the_backends():
    backend = EchoLLM()
    mb = MicroBatchLLM(backend)
    assert (mb.name, mb.model_id, mb.supports_images, mb.native_batching) == ("echo", "echo-1", False, True)
    assert mb.count_tokens("three small words") == 3
    assert mb.max_batch_size == 16  # the backend has no max_batch_size of its own
    assert MicroBatchLLM(NativeLLM(replies())).max_batch_size == 8
    with pytest.raises(AttributeError):
        mb.no_such_attribute
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatchLLM(backend, max_wait_ms=-1)
