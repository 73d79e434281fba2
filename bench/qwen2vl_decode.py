"""The batch-1 decode modes: ``generate()`` with a dynamic or static cache, and the plugin's CUDA-graph
decoder, each timed by difference so the prefill cancels; and the weight bytes a decode step reads."""

from __future__ import annotations

import time

from qwen2vl_inputs import stage_request
from qwen2vl_runs import sync


def decode_bytes(model) -> tuple[int, int]:
    """(bytes of all weights, bytes read per decode step: the text decoder and lm_head, not the vision
    tower, and of the input embedding only one row)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    lm = model.model.language_model if hasattr(model.model, "language_model") else model.model
    embed = lm.get_input_embeddings().weight
    per_step = sum(p.numel() * p.element_size() for p in lm.parameters()) - embed.numel() * embed.element_size()
    per_step += model.lm_head.weight.numel() * model.lm_head.weight.element_size()
    return total, per_step


def rate_by_difference(once, short: int, long: int, repeats: int, after_warmup=None):
    """(tokens/s, median seconds of the long run, warm-up seconds, method): (long - short) tokens over the
    difference of the median times, so the prefill cancels; after two warm-up runs (compile, capture,
    allocator). ``once(n)`` decodes n tokens and returns its seconds."""
    t_warm = time.perf_counter()
    once(short), once(long)
    warm = time.perf_counter() - t_warm
    if after_warmup is not None:
        after_warmup()
    shorts = sorted(once(short) for _ in range(repeats))
    longs = sorted(once(long) for _ in range(repeats))
    t_s, t_l = shorts[len(shorts) // 2], longs[len(longs) // 2]
    floor = long / t_l  # prefill included: a lower bound
    if t_l > t_s and (long - short) / (t_l - t_s) < 20 * floor:
        return (long - short) / (t_l - t_s), t_l, warm, "difference"
    return floor, t_l, warm, "long run incl. prefill (difference too noisy)"


def run_decode(llm, items, tokens, device, *, static: bool, short: int, long: int, repeats: int):
    """Batch-1 decode rate of ``generate()`` (dynamic cache, or a static one transformers compiles)."""
    import torch
    from transformers import StaticCache

    item, exemplars = items[0]
    req = stage_request("question", llm, item, exemplars, {}, tokens)
    inputs = llm.encode([req])
    prompt = inputs["input_ids"].shape[1]
    cache = StaticCache(config=llm.model.config, max_cache_len=prompt + long + 8) if static else None

    def once(n: int) -> float:
        kwargs = {}
        sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            if cache is not None:
                cache.reset()  # same tensors every run: compiled graphs are reused
                kwargs["past_key_values"] = cache
            out = llm.model.generate(
                **inputs,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=llm.tokenizer.pad_token_id,
                **kwargs,
            )
        sync(device)
        assert out.shape[1] - prompt == n, (out.shape, prompt, n)
        return time.perf_counter() - t0

    return (*rate_by_difference(once, short, long, repeats), prompt)


def run_graph_decode(llm, items, tokens, device, *, short: int, long: int, repeats: int):
    """Batch-1 decode rate of the plugin's CUDA-graph decoder (``graph_decode.py``), by difference as above,
    and how many of its first ``long`` greedy tokens equal ``generate()``'s."""
    import torch

    from coe.plugins.llm.protocol import GenerationRequest

    item, exemplars = items[0]
    base = stage_request("question", llm, item, exemplars, {}, tokens)

    def once(n: int) -> float:
        req = GenerationRequest(**{**base.model_dump(), "max_tokens": n})
        sync(device)
        t0 = time.perf_counter()
        gen = llm.generate(req)
        sync(device)
        assert gen.usage.completion_tokens == n, (gen.usage.completion_tokens, n)
        return time.perf_counter() - t0

    def still_graph():
        if not llm.graph_decode:
            raise RuntimeError("graph decoding fell back to generate() (see warnings above)")

    rate, t_l, warm, method = rate_by_difference(once, short, long, repeats, after_warmup=still_graph)
    decoder = llm.graph_decoders[max(llm.graph_decoders)]  # the one whose cache holds prompt + long
    inputs = llm.encode([GenerationRequest(**{**base.model_dump(), "max_tokens": long})])
    with torch.inference_mode():
        ref = llm.model.generate(
            **inputs, max_new_tokens=long, min_new_tokens=long, do_sample=False, pad_token_id=llm.tokenizer.pad_token_id
        )[0, inputs["input_ids"].shape[1] :].tolist()
    got = decoder.generate(inputs, long, ignore_eos=True)
    same = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
    return rate, t_l, warm, method, inputs["input_ids"].shape[1], decoder.mode, same
