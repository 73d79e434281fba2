"""llama.cpp on the real 0.5B GGUF: the grammar checked after the free choice gives the grammar-first reply
token for token, a seeded sampled reply is the unconstrained one until the grammar changes a token, and
consecutive calls that share a prompt prefix evaluate only what follows it."""

from __future__ import annotations

import pytest

from coe.agents.generation import ItemInput, question_call, rationale_call
from coe.plugins.llm.protocol import GenerationRequest, Message
from coe.retrieval.exemplars import Exemplar
from tests.conftest import GGUF_PRESET

pytestmark = pytest.mark.slow

ITEM = ItemInput(answer="rabbit", context="This is a food chain from a meadow: grass, rabbit, fox.",
                 image_text="grass rabbit fox")
EXEMPLARS = [Exemplar(id="e1", question="Which animal eats grass?", answer="deer", context="A forest food web.",
                      rationale="Arrows point from food to eater.", distractors=["wolf", "oak"], split="train",
                      score=0.9)]
SCHEMA = {"type": "object", "properties": {"animal": {"type": "string"}, "legs": {"type": "integer"}},
          "required": ["animal", "legs"]}


def _llama():
    from coe.modelstore import is_pulled, resolve_llm
    from coe.plugins.llm.llamacpp import LlamaCppLLM

    if not is_pulled(GGUF_PRESET):
        pytest.fail(f"needs the {GGUF_PRESET} model (coe models pull {GGUF_PRESET})")
    return LlamaCppLLM(resolve_llm(GGUF_PRESET)[1], n_ctx=2048)


@pytest.fixture(scope="module")
def llama():
    return _llama()


def ask(text: str, **kwargs) -> GenerationRequest:
    return GenerationRequest(messages=[Message(role="system", content="You reply with JSON only."),
                                       Message(role="user", content=text)], max_tokens=60, **kwargs)


PROMPTS = ["Name a farm animal and its number of legs as JSON with the keys animal and legs.",
           "Describe a spider: JSON with animal and legs, no code fence.",
           "Which bird cannot fly? Reply as JSON {\"animal\": ..., \"legs\": ...}."]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_reply_with_the_grammar_checked_last_is_the_grammar_first_reply(llama, prompt):
    request = ask(prompt, json_schema=SCHEMA, temperature=0.0)
    ours = llama.generate(request)
    sampler = llama._llm.last_sampler
    grammar_first = llama._llm
    del grammar_first._init_sampler  # llama-cpp-python's own chain: grammar before the greedy choice
    try:
        theirs = llama.generate(request)
    finally:
        from coe.plugins.llm.llamacpp_sampling import grammar_last
        grammar_last(grammar_first)
    assert ours.text == theirs.text and ours.data == theirs.data
    assert set(ours.data) == {"animal", "legs"} and isinstance(ours.data["legs"], int)
    # the grammar looked at every token but overruled few (at least the end: only the closing brace's EOS)
    assert len(sampler.overruled) >= 1 and len(sampler.overruled) < len(sampler.tokens)
    assert ours.finish_reason == "stop"  # stopped at the closing brace, not at max_tokens


@pytest.mark.parametrize("seed", [7, 8])
def test_seeded_sample_is_the_unconstrained_one_where_the_grammar_changes_no_token(llama, seed):
    from llama_cpp import LlamaGrammar

    # a grammar the model's plain answer already obeys: it is checked at every token and changes none
    grammar = LlamaGrammar.from_string('root ::= [a-zA-Z ,.\\n]+', verbose=False)
    prompt = "<|im_start|>user\nName three colours in one short sentence.<|im_end|>\n<|im_start|>assistant\n"
    args = dict(max_tokens=40, temperature=0.9, seed=seed)
    constrained = llama._llm.create_completion(prompt, grammar=grammar, **args)
    sampler = llama._llm.last_sampler
    free = llama._llm.create_completion(prompt, **args)
    assert constrained["choices"][0]["text"] == free["choices"][0]["text"]
    assert len(sampler.tokens) >= 4 and sampler.overruled == []
    # where it does change a token (this coder model opens JSON with a code fence), the reply is valid JSON
    reply = llama.generate(ask("Describe a spider: JSON with animal and legs.", json_schema=SCHEMA,
                               temperature=0.9, seed=seed))
    assert llama._llm.last_sampler.overruled and set(reply.data) == {"animal", "legs"}


def test_steps_of_one_item_evaluate_only_what_follows_their_shared_prefix():
    llama = _llama()  # a fresh context: nothing cached
    first = llama.generate(question_call(llama, ITEM, EXEMPLARS).request())
    assert first.usage.prompt_tokens_reused == 0
    second = llama.generate(rationale_call(llama, ITEM, "Which animal eats grass in the meadow?", EXEMPLARS).request())
    # everything up to the rationale's own task came from the cache
    assert second.usage.prompt_tokens_reused > 0.7 * second.usage.prompt_tokens
    assert llama.prompt_tally == {"reused": second.usage.prompt_tokens_reused,
                                  "evaluated": first.usage.prompt_tokens + second.usage.prompt_tokens
                                  - second.usage.prompt_tokens_reused}
