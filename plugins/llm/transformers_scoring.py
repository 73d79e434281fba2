"""Option scoring for ``TransformersVLLM``: one forward pass over the prompt as ``generate`` builds it
(images included, generation prompt added) and the log-softmax of the last position.

A label is scored by its first token (the prompt asks for a reply that is one label; a label of several
tokens is decided by the token it starts with), so labels must start with distinct tokens."""

from __future__ import annotations

import time

from .protocol import GenerationRequest, OptionScoreRequest, OptionScores, Usage, label_probs, label_token_ids


def last_logits(llm, request: GenerationRequest):
    """Next-token logits after the request's prompt (float32, on the CPU) and the prompt's token count."""
    import torch

    with llm.model_lock:
        inputs = llm.encode([request])
        with torch.inference_mode():
            logits = llm.model(**inputs).logits[0, -1].float().cpu()
    return logits, int(inputs["attention_mask"][0].sum())


def score_options(llm, request: OptionScoreRequest) -> OptionScores:
    import torch

    start = time.perf_counter()
    ids = label_token_ids(lambda t: llm.tokenizer.encode(t, add_special_tokens=False), request.labels)
    logits, prompt_tokens = last_logits(llm, GenerationRequest(messages=request.messages, max_tokens=1))
    logprobs = torch.log_softmax(logits, dim=-1)[ids].tolist()
    return OptionScores(
        labels=list(request.labels),
        probs=label_probs(logprobs),
        logprobs=logprobs,
        method="logprobs",
        model=llm.model_id,
        usage=Usage(prompt_tokens=prompt_tokens),
        seconds=time.perf_counter() - start,
    )
