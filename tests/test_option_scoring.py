"""Option scoring (``score_options``) on each backend: llama.cpp on the real 0.5B GGUF, transformers on a
tiny random Qwen2-VL, the constrained-choice fallback, and the scripted backend for graph tests.
The OpenAI-compatible backend is tested against a real server in test_openai_compat.py."""

from __future__ import annotations

import math

import pytest

from coe.errors import ConfigError, InputError
from coe.plugins.llm.protocol import (GenerationRequest, ImageRef, Message, OptionScoreRequest, label_probs,
                                      score_options)
from tests.scripted_llm import ScriptedLLM
from tests.conftest import GGUF_PRESET

LETTERS = ["A", "B", "C", "D"]
SYSTEM = Message(role="system", content="You answer multiple-choice questions with the letter of the correct "
                                        "option only.")


def keyword_question(options: str = "class def import return") -> OptionScoreRequest:
    """A question the 0.5B coder model answers from any option position (letters on plain arithmetic are
    near chance for it, with a strong bias towards A and B)."""
    listed = "\n".join(f"{letter}) {word}" for letter, word in zip(LETTERS, options.split()))
    return OptionScoreRequest(messages=[SYSTEM, Message(role="user", content="Which keyword defines a function "
                                                        f"in Python?\n{listed}\nReply with the letter only.")],
                              labels=LETTERS)


def assert_distribution(scores, labels):
    assert scores.labels == labels and len(scores.probs) == len(labels) == len(scores.logprobs)
    assert math.isclose(sum(scores.probs), 1.0, abs_tol=1e-9) and all(0 <= p <= 1 for p in scores.probs)


@pytest.fixture(scope="module")
def llama():
    from coe.modelstore import is_pulled, resolve_llm
    from coe.plugins.llm.llamacpp import LlamaCppLLM

    if not is_pulled(GGUF_PRESET):
        pytest.fail(f"needs the {GGUF_PRESET} model (coe models pull {GGUF_PRESET})")
    return LlamaCppLLM(resolve_llm(GGUF_PRESET)[1], n_ctx=2048)


@pytest.fixture
def evaluated(llama, monkeypatch):
    """How many tokens each ``Llama.eval`` call decodes (the KV prefix cache skips the rest)."""
    counts: list[int] = []
    context = llama.scoring_context()
    real_eval = context.eval

    def counting_eval(tokens):
        counts.append(len(tokens))
        return real_eval(tokens)

    monkeypatch.setattr(context, "eval", counting_eval)
    return counts


# -- llama.cpp, real 0.5B -------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_scoring_context_is_made_with_the_model_not_in_the_first_item(monkeypatch):
    """A second context is a second load of the model: a teacher's first verified item must not pay it."""
    import llama_cpp

    from coe.modelstore import resolve_llm
    from coe.plugins.llm.llamacpp import LlamaCppLLM

    fresh = LlamaCppLLM(resolve_llm(GGUF_PRESET)[1], n_ctx=1024)

    def no_new_model(*args, **kwargs):
        raise AssertionError("a model was loaded during the item")

    monkeypatch.setattr(llama_cpp.Llama, "__init__", no_new_model)
    assert_distribution(fresh.score_options(keyword_question()), LETTERS)


@pytest.mark.slow
@pytest.mark.parametrize("options, key", [("class def import return", "B"), ("def class import return", "A"),
                                          ("class import def return", "C"), ("import return class def", "D")])
def test_llamacpp_gives_the_right_letter_the_highest_probability(llama, options, key):
    scores = llama.score_options(keyword_question(options))
    assert_distribution(scores, LETTERS)
    assert scores.method == "logprobs" and scores.model == llama.model_id
    assert max(LETTERS, key=scores.prob) == key and scores.prob(key) > 0.35
    # full-vocabulary log-probabilities: each below 0, together at most all of the mass
    assert all(lp is not None and lp < 0 for lp in scores.logprobs)
    assert sum(math.exp(lp) for lp in scores.logprobs) <= 1 + 1e-6
    assert scores.probs == pytest.approx(label_probs(scores.logprobs))
    assert scores.usage.prompt_tokens > 30 and scores.seconds > 0
    # the favoured label is the token greedy generation writes first (same prompt, same template)
    first = llama.generate(GenerationRequest(messages=keyword_question(options).messages, max_tokens=1))
    assert first.text == key and first.usage.prompt_tokens == scores.usage.prompt_tokens


@pytest.mark.slow
def test_llamacpp_yes_no_judgements(llama):
    def p_yes(thing):
        question = Message(role="user", content=f"Is {thing} a programming language? Reply Yes or No.")
        scores = score_options(llama, OptionScoreRequest(messages=[question], labels=["Yes", "No"]))
        assert_distribution(scores, ["Yes", "No"])
        return scores.prob("Yes")

    # the small model leans to Yes (about 0.6 for a banana): judgements are compared, not thresholded
    assert p_yes("Python") > p_yes("a banana") + 0.1


@pytest.mark.slow
def test_llamacpp_prefix_cache_reuse_leaves_scores_and_generation_unchanged(llama, evaluated):
    request = keyword_question()
    gen_request = GenerationRequest(messages=request.messages, max_tokens=24)
    llama.scoring_context().reset()
    cold = llama.score_options(request)
    assert evaluated == [cold.usage.prompt_tokens]
    again = llama.score_options(request)
    assert evaluated[-1] == 1  # all cached: only the last token is decoded again, for its logits
    generated = llama.generate(gen_request)
    after_generate = llama.score_options(request)
    # another question on the same material: only the differing tail is decoded
    other = llama.score_options(keyword_question("def class import return"))
    assert evaluated[-1] < other.usage.prompt_tokens - 15
    assert max(LETTERS, key=other.prob) == "A"
    back = llama.score_options(request)
    assert cold.logprobs == again.logprobs == after_generate.logprobs == back.logprobs
    llama._llm.reset()
    llama.scoring_context().reset()
    assert llama.generate(gen_request).text == generated.text
    assert llama.score_options(request).logprobs == cold.logprobs


@pytest.mark.slow
def test_llamacpp_scoring_leaves_the_generation_prefix_cached(llama):
    """Generation and scoring interleave within an item; scoring must not evict generation's KV prefix."""
    gen_request = GenerationRequest(messages=keyword_question().messages, max_tokens=4)
    llama.generate(gen_request)
    held = llama._llm.n_tokens
    llama.score_options(keyword_question("def class import return"))
    assert llama._llm.n_tokens == held and held > 30


@pytest.mark.slow
def test_llamacpp_refuses_labels_it_cannot_tell_apart_and_images(llama):
    with pytest.raises(InputError, match="do not start with distinct tokens"):
        llama.score_options(OptionScoreRequest(messages=keyword_question().messages, labels=["A", "A)"]))
    with pytest.raises(InputError, match="has no tokens"):
        llama.score_options(OptionScoreRequest(messages=keyword_question().messages, labels=["A", ""]))
    png = ImageRef(data=b"\x89PNG", mime="image/png")
    with pytest.raises(ConfigError, match="no vision input"):
        llama.score_options(OptionScoreRequest(messages=[Message(role="user", content="x", images=[png])],
                                               labels=["Yes", "No"]))


@pytest.mark.slow
def test_llamacpp_prompt_over_the_context_is_one_clear_error(llama):
    long = OptionScoreRequest(messages=[Message(role="user", content="word " * 2100)], labels=["Yes", "No"])
    with pytest.raises(InputError, match=r"does not fit the context window of 2048 tokens"):
        llama.score_options(long)
    assert max(LETTERS, key=llama.score_options(keyword_question()).prob) == "B"  # the context is still usable


class GenerateOnly:
    """A plugin with ``generate`` and nothing for scoring, like ``QwenVLChatLLM``."""

    name, supports_images, supports_json_schema = "generate-only", False, True

    def __init__(self, inner) -> None:
        self.inner, self.model_id = inner, inner.model_id

    def generate(self, request):
        return self.inner.generate(request)


@pytest.mark.slow
def test_plugin_without_score_options_gets_a_constrained_choice(llama):
    from coe.plugins.llm.transformers_vl import QwenVLChatLLM

    assert not hasattr(QwenVLChatLLM, "score_options")  # it is scored through this same fallback
    scores = score_options(GenerateOnly(llama), keyword_question())
    assert scores.method == "choice" and scores.logprobs == [None] * 4
    assert scores.probs == [0.0, 1.0, 0.0, 0.0] and scores.usage.prompt_tokens > 0


# -- transformers, tiny random Qwen2-VL ----------------------------------------------------------------

def picture(seed: int) -> ImageRef:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    return ImageRef.from_pil(Image.fromarray(pixels))


@pytest.fixture(scope="module")
def vl(checkpoints):
    from tests.tiers import require
    require("torch", "vlm")
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    return TransformersVLLM(checkpoints["qwen2_vl"], dtype="fp32", device="cpu")


def test_transformers_scores_equal_a_manual_forward(vl):
    import torch

    def ask(seed):
        return OptionScoreRequest(messages=[SYSTEM, Message(role="user", content="Which animal is shown?\n"
                                                            "A. fox\nB. owl\nC. hare", images=[picture(seed)])],
                                  labels=["A", "B", "C"])

    scores = vl.score_options(ask(0))
    assert_distribution(scores, ["A", "B", "C"])
    assert scores.method == "logprobs" and scores.model == vl.model_id
    inputs = vl.encode([GenerationRequest(messages=ask(0).messages)])
    with torch.inference_mode():
        manual = torch.log_softmax(vl.model(**inputs).logits[0, -1].float(), dim=-1)
    ids = [vl.tokenizer.encode(label, add_special_tokens=False)[0] for label in "ABC"]
    assert scores.logprobs == pytest.approx(manual[ids].tolist(), abs=1e-5)
    assert scores.probs == pytest.approx(torch.softmax(manual[ids], dim=0).tolist(), abs=1e-5)
    assert scores.usage.prompt_tokens == inputs["input_ids"].shape[1]
    assert (inputs["input_ids"] == 151655).sum() == 4  # the picture's tokens were in the forward
    assert vl.score_options(ask(1)).logprobs != pytest.approx(scores.logprobs, abs=1e-6)  # pixels count
    with pytest.raises(InputError, match="do not start with distinct tokens"):
        vl.score_options(OptionScoreRequest(messages=ask(0).messages, labels=["A", "A."]))


# -- scripted ---------------------------------------------------------------------------------------------

def test_scripted_scores_come_from_the_script_between_generations():
    seen = []

    def judge(request):
        seen.append(request)
        return {"scores": {"Yes": 3, "No": 1}}

    llm = ScriptedLLM(["a question", {"scores": {"A": 0.7, "B": 0.1}}, "C", judge])
    assert llm.generate(GenerationRequest(messages=[SYSTEM])).text == "a question"
    first = score_options(llm, keyword_question())
    assert first.method == "logprobs" and first.probs == pytest.approx([0.875, 0.125, 0.0, 0.0])
    assert first.logprobs[0] == pytest.approx(math.log(0.875)) and first.logprobs[2:] == [None, None]
    chosen = llm.score_options(keyword_question())
    assert chosen.method == "choice" and chosen.probs == [0.0, 0.0, 1.0, 0.0]
    yes_no = OptionScoreRequest(messages=[SYSTEM], labels=["Yes", "No"])
    assert llm.score_options(yes_no).prob("Yes") == 0.75 and seen == [yes_no]
    assert len(llm.requests) == 1 and len(llm.score_requests) == 3


@pytest.mark.parametrize("reply", [{"scores": {"E": 1.0}}, {"scores": {"A": 0}}, {"scores": {"A": 2, "B": -1}},
                                   "E", {"choice": "A"}])
def test_scripted_rejects_scores_that_are_no_distribution_over_the_labels(reply):
    with pytest.raises(RuntimeError, match="ScriptedLLM needs a label of"):
        ScriptedLLM([reply]).score_options(keyword_question())
