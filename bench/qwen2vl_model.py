"""The model under test: random Qwen2-VL weights of the chosen shape on the device, wrapped in coe's
``TransformersVLLM``, with the processor that turns coe's prompts into model inputs."""

from __future__ import annotations

import time

from qwen2vl_decode import decode_bytes
from qwen2vl_inputs import stage_request
from qwen2vl_runs import sync


def build_llm(tok, items, tokens, *, shape: str, dtype, device: str, max_batch: int, results: dict, log):
    """(model, llm, weight bytes, bytes read per decode step); records the model and processor in
    ``results``. The transformers processor is tried on a real prompt first; where it fails, coe's PIL-based
    ``LightQwen2VLProcessor`` takes its place (the failure is recorded under ``errors``)."""
    from coe.plugins.llm.transformers_vl import TransformersVLLM
    from coe.plugins.llm.vl_random import build_processor, make_config, random_model

    t0 = time.perf_counter()
    config = make_config("qwen2_vl", shape, vocab_size=152064 if shape == "7b" else max(len(tok), 151936))
    config._attn_implementation = "sdpa"
    model = random_model(config, dtype=dtype, device=device)
    sync(device)
    total_bytes, step_bytes = decode_bytes(model)
    results["model"] = {
        "params": sum(p.numel() for p in model.parameters()),
        "weight_bytes": total_bytes,
        "decode_step_weight_bytes": step_bytes,
        "init_seconds": round(time.perf_counter() - t0, 1),
    }
    log(
        f"model: Qwen2-VL {shape}, {results['model']['params'] / 1e9:.2f}B params, weights {total_bytes / 1e9:.2f} GB "
        f"({step_bytes / 1e9:.2f} GB read per decode step), init {results['model']['init_seconds']}s on {device}"
    )

    def wrap(processor):
        return TransformersVLLM.from_parts(
            model,
            processor,
            model_id=f"qwen2-vl-{shape}-random",
            max_batch_size=max_batch,
            ignore_eos=True,
            graph_decode=False,
        )

    processor = build_processor(tok, "qwen2_vl")
    llm = wrap(processor)
    try:  # the processor must turn a real prompt into model inputs; else use coe's PIL-based one
        llm.encode([stage_request("question", llm, *items[0], {}, tokens)])
    except Exception as exc:
        from coe.plugins.llm.transformers_processing import LightQwen2VLProcessor
        from coe.plugins.llm.vl_random import image_processor

        log(f"processor {type(processor).__name__} failed ({type(exc).__name__}: {exc}); using LightQwen2VLProcessor")
        results["errors"].append({"config": "processor", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        processor = LightQwen2VLProcessor(
            tok, image_processor("qwen2_vl", 56 * 56, 28 * 28 * 1280), tok.chat_template, with_token_types=True
        )
        llm = wrap(processor)
    results["config"]["processor"] = type(llm.processor).__name__
    log(f"processor: {type(llm.processor).__name__} (image processor {type(llm.processor.image_processor).__name__})")
    return model, llm, total_bytes, step_bytes
