"""One prompt prefix per item: every generation step reads the same system text, exemplars and material first,
so a backend with a KV cache (llama.cpp) evaluates them once per item; each step's trace says how many prompt
tokens it evaluated and how many it reused. The real llama.cpp cache is tested in test_llamacpp_decoding.py."""

from __future__ import annotations

import os

from coe.agents.generation import ItemInput, distractors_call, notes_call, question_call, rationale_call
from coe.agents.prompting import load_prompt, material_block, exemplar_block
from coe.graphs import Services, graph
from coe.plugins.llm.protocol import Generation, Usage
from coe.retrieval.exemplars import Exemplar
from tests.test_graph import StubReader
from tests.test_verify_policy import GOOD_Q, generation, key_wins
from tests.verify_support import ScriptedStudent

ITEM = ItemInput(answer="rabbit", context="This is a food chain from a meadow: grass, rabbit, fox.",
                 image_text="grass rabbit fox")
EXEMPLARS = [Exemplar(id="e1", question="Which animal eats grass?", answer="deer", context="A forest food web.",
                      rationale="Arrows point from food to eater.", distractors=["wolf", "oak"], split="train",
                      score=0.9)]


def test_every_generation_step_starts_with_the_same_system_text_exemplars_and_material():
    calls = {"question": question_call(None, ITEM, EXEMPLARS, feedback="it stated its key"),
             "rationale": rationale_call(None, ITEM, GOOD_Q, EXEMPLARS),
             "distractors": distractors_call(None, ITEM, GOOD_Q, "The fox eats the rabbit.", EXEMPLARS, 2,
                                             candidates=["grass", "fox"]),
             "notes": notes_call(None, ITEM, GOOD_Q, ["grass", "fox"], EXEMPLARS)}
    shared = load_prompt("shared").format(exemplars=exemplar_block(EXEMPLARS),
                                          material=material_block(ITEM.context, ITEM.image_text), answer="rabbit")
    systems = {c.messages[0].content for c in calls.values()}
    assert systems == {load_prompt("system")}
    users = [c.messages[-1].content for c in calls.values()]
    assert all(u.startswith(shared + "\n\n") for u in users)
    # what differs (the step's task, the question, earlier steps' output, feedback) comes after it, nowhere before
    assert os.path.commonprefix(users) == shared + "\n\n"
    assert all(GOOD_Q not in u[: len(shared)] for u in users)


class CachingStudent(ScriptedStudent):
    """A scripted model with a one-sequence prefix cache over words, as llama.cpp keeps one over tokens."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prompt_tally = {"evaluated": 0, "reused": 0}
        self._cached: list[str] = []

    def generate(self, request) -> Generation:
        gen = super().generate(request)
        words = [w for m in request.messages for w in m.content.split()]
        reused = len(os.path.commonprefix([self._cached, words]))
        self._cached = words
        self.prompt_tally["reused"] += reused
        self.prompt_tally["evaluated"] += len(words) - reused
        return gen.model_copy(update={"usage": Usage(prompt_tokens=len(words), prompt_tokens_reused=reused,
                                                     completion_tokens=gen.usage.completion_tokens)})


def test_each_model_step_of_the_trace_shows_prompt_tokens_evaluated_and_reused(fixture_index):
    llm = CachingStudent(generation([GOOD_Q] * 3, [["grass", "fox"]] * 4), prefer=key_wins,
                         yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    state = {"answer": "rabbit", "context": ITEM.context, "n_distractors": 2}
    out = graph.invoke(state, config={"configurable": {"question_exemplars": 0, "question_samples": 0,
                                                       "pool_selection": "model", "question_selection": "model",
                                                       "n_distractors": 2,
                                                       "write_notes": True}},
                       context=Services(llm=llm, retriever=fixture_index, image_reader=StubReader()))
    steps = {t["node"]: t for t in out["trace"]}
    for node in ("question", "rationale", "distractors", "verify", "notes"):
        assert {"prompt_tokens_evaluated", "prompt_tokens_reused"} <= set(steps[node]), node
    assert steps["question"]["prompt_tokens_reused"] == 0  # the item's first call: nothing cached yet
    # the later steps read the question step's prefix again: most of their prompt comes from the cache
    shared_words = len(load_prompt("system").split()) + len(load_prompt("shared").split())
    for node in ("rationale", "distractors", "notes"):
        assert steps[node]["prompt_tokens_reused"] > shared_words, node
        assert steps[node]["prompt_tokens_reused"] > steps[node]["prompt_tokens_evaluated"], node
        assert steps[node]["usage"]["prompt_tokens_reused"] == steps[node]["prompt_tokens_reused"], node
    assert steps["verify"]["prompt_tokens_evaluated"] == steps["verify"]["prompt_tokens_reused"] == 0  # no cache here
    assert sum(steps[n]["prompt_tokens_evaluated"] + steps[n]["prompt_tokens_reused"] for n in steps
               if "prompt_tokens_reused" in steps[n]) == sum(llm.prompt_tally.values())


def test_notes_are_written_only_when_asked(fixture_index):
    llm = ScriptedStudent(generation([GOOD_Q] * 3, [["grass", "fox"]] * 4), prefer=key_wins,
                          yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    state = {"answer": "rabbit", "context": ITEM.context, "n_distractors": 2}
    out = graph.invoke(state, config={"configurable": {"question_exemplars": 0, "question_samples": 0,
                                                       "pool_selection": "model", "question_selection": "model",
                                                       "n_distractors": 2}},
                       context=Services(llm=llm, retriever=fixture_index, image_reader=StubReader()))
    notes = next(t for t in out["trace"] if t["node"] == "notes")
    assert out["distractor_notes"] == [] and notes["skipped"] == "notes off"
    assert not any("misconception" in r.messages[-1].content for r in llm.requests)


def test_the_vision_path_lays_out_every_step_with_the_picture_and_shared_text_first():
    """Qwen2-VL's chat template over the same requests: system text, picture and shared block come first in
    identical text for every step, so a server with prefix caching (vLLM, SGLang) reuses them; the schema
    hint goes after the step's task."""
    from pathlib import Path

    import jinja2

    from coe.plugins.llm.protocol import ImageRef
    from coe.plugins.llm.transformers_processing import QWEN2_VL_CHAT_TEMPLATE, chat_messages

    picture = ImageRef(path=Path(__file__).parent / "fixtures/mini_scienceqa/images/test/7/image.png")
    item = ITEM.model_copy(update={"images": [picture]})
    vision = type("Vision", (), {"supports_images": True})()
    calls = [question_call(vision, item, EXEMPLARS), rationale_call(vision, item, GOOD_Q, EXEMPLARS),
             distractors_call(vision, item, GOOD_Q, "The fox eats the rabbit.", EXEMPLARS, 2),
             notes_call(vision, item, GOOD_Q, ["grass", "fox"], EXEMPLARS)]
    template = jinja2.Environment().from_string(QWEN2_VL_CHAT_TEMPLATE)
    texts = []
    for call in calls:
        conversation, images = chat_messages(call.request(), json_hint=True)
        assert len(images) == 1
        texts.append(template.render(messages=conversation, add_generation_prompt=True))
    shared = load_prompt("shared").format(exemplars=exemplar_block(EXEMPLARS),
                                          material=material_block(ITEM.context, ITEM.image_text), answer="rabbit")
    prefix = os.path.commonprefix(texts)
    assert prefix.endswith(shared + "\n\n")
    assert prefix.index("<|vision_start|><|image_pad|><|vision_end|>") < prefix.index(shared)
    assert all("JSON schema" in t[len(prefix):] for t in texts)
