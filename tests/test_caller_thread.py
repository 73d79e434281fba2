"""``generate_items`` and ``iter_items`` send a natively batching backend's batches from the caller's own
thread while the items run beside it (``coe.plugins.llm.caller_thread``): the thread that loaded a PyTorch
model keeps the only OpenMP team. Whatever happens to the caller, no item is left waiting for a batch."""

import threading

import pytest

from coe.graphs import generate_items
from coe.graphs.many_items import iter_items
from coe.plugins.llm.request_batcher import MicroBatchLLM
from tests.test_graph import SINGLE_SHOT, stage_of
from tests.test_graph_many_items import ITEMS, EchoLLM, NativeLLM, in_threads, replies, services_for, strip_seconds


class ThreadNotingLLM(NativeLLM):
    """Notes the thread each batch ran on."""

    def __init__(self, reply):
        super().__init__(reply)
        self.threads: list[int] = []

    def generate_batch(self, requests):
        self.threads.append(threading.get_ident())
        return super().generate_batch(requests)


def finished_helpers(timeout: float = 30.0) -> bool:
    helpers = [t for t in threading.enumerate() if t.name == "coe-items"]
    for t in helpers:
        t.join(timeout)
    return not any(t.is_alive() for t in helpers)


@pytest.mark.parametrize("wrapped", [False, True], ids=["backend", "caller's micro-batcher"])
def test_the_batches_go_out_from_the_callers_thread(fixture_index, wrapped):
    llm = ThreadNotingLLM(replies())
    stats = {}
    given = MicroBatchLLM(llm, max_wait_ms=5000) if wrapped else llm
    out = generate_items(ITEMS, services_for(given, fixture_index), n_distractors=2, stats=stats, **SINGLE_SHOT)
    assert all(o["valid"] for o in out)
    assert set(llm.threads) == {threading.get_ident()}
    assert stats["batching"]["max_size"] > 1  # still batched: the items ran on other threads
    done = [i for i, _ in iter_items(ITEMS, services_for(given, fixture_index), n_distractors=2, **SINGLE_SHOT)]
    assert sorted(done) == [0, 1, 2, 3]
    assert set(llm.threads) == {threading.get_ident()}


def test_a_caller_that_stops_early_leaves_the_rest_to_the_batchers_thread(fixture_index):
    llm = ThreadNotingLLM(replies())
    batcher = MicroBatchLLM(llm, max_wait_ms=20)
    results = iter_items(ITEMS, services_for(batcher, fixture_index), n_distractors=2, max_concurrency=2,
                         **SINGLE_SHOT)
    first, item = next(results)
    assert item["valid"]
    results.close()  # e.g. the caller broke out of its loop; the items already started still finish
    assert finished_helpers()
    assert sum(stage == "distractors" for batch in llm.batches for stage in batch) == len(ITEMS)
    senders = set(llm.threads)
    assert threading.get_ident() in senders and len(senders) == 2
    # the batcher sends from its own thread again, and a later caller can take over once more
    llm.threads.clear()
    generate_items(ITEMS, services_for(batcher, fixture_index), n_distractors=2, **SINGLE_SHOT)
    assert set(llm.threads) == {threading.get_ident()}


def test_two_callers_of_one_micro_batcher_both_finish(fixture_index):
    llm = ThreadNotingLLM(replies())
    services = services_for(MicroBatchLLM(llm, max_wait_ms=20), fixture_index)
    got = in_threads(lambda k: generate_items(ITEMS, services, n_distractors=2, **SINGLE_SHOT), ["a", "b"])
    assert strip_seconds(got["a"]) == strip_seconds(got["b"])
    assert all(o["valid"] for o in got["a"])
    assert finished_helpers()


def test_ctrl_c_during_a_batch_reaches_the_caller_and_no_item_waits_forever(fixture_index):
    def reply(request):
        if stage_of(request) == "rationale":
            raise KeyboardInterrupt
        return replies()(request)

    llm = NativeLLM(reply)
    with pytest.raises(KeyboardInterrupt):
        generate_items(ITEMS, services_for(llm, fixture_index), n_distractors=2, **SINGLE_SHOT)
    assert finished_helpers()


def test_option_scores_are_computed_on_the_thread_that_sends_the_batches(fixture_index):
    """Verification scores options item by item (not batched); those calls too run on the caller's thread."""
    from tests.test_graph_many_items import student, student_reply

    llm = student(student_reply)
    scored_on: list[int] = []
    score = llm.score_options
    llm.score_options = lambda request: scored_on.append(threading.get_ident()) or score(request)
    out = generate_items(ITEMS, services_for(llm, fixture_index), n_distractors=2)
    assert all(o["verification"] for o in out) and scored_on
    assert set(scored_on) == {threading.get_ident()}
    # a backend without option scores is still told apart (the verifier then asks for a constrained choice)
    assert not hasattr(MicroBatchLLM(EchoLLM()), "score_options")
