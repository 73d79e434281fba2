"""The item-level modes: ``seed`` (one item, one stage at a time, plain ``generate``), ``batched`` (the
items through coe's graph at once, their model calls gathered into batched calls) and ``stages`` (the
requests of a ``batched`` run sent again, every item's request of one stage in one batched call, stage
after stage: the batches the scheduler that preceded the graph path sent, and the best any scheduling of
these requests can do, kept as the reference the graph path is measured against), with the device timing
helpers they use."""

from __future__ import annotations

import gc
import json
import time

from qwen2vl_inputs import STAGES, stage_request


def cold_pictures() -> None:
    """Every timed run starts with no decoded picture kept (``coe.imageio``), so each mode reads each
    image file at least once, as it would on its own."""
    from coe.imageio import clear_decoded_images

    clear_decoded_images()


def sync(device: str):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str):
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 1e9, 2) if device.startswith("cuda") else None


def run_seed(llm, items, tokens, device):
    """One item at a time, one stage at a time, plain HF generate (dynamic cache, no compile)."""
    import torch

    generated = prompt_tokens = 0
    cold_pictures()
    sync(device)
    t0 = time.perf_counter()
    for item, exemplars in items:
        prev: dict = {}
        for stage in STAGES:
            req = stage_request(stage, llm, item, exemplars, prev, tokens)
            inputs = llm.encode([req])
            with torch.inference_mode():
                out = llm.model.generate(
                    **inputs,
                    max_new_tokens=req.max_tokens,
                    min_new_tokens=req.max_tokens,
                    do_sample=False,
                    pad_token_id=llm.tokenizer.pad_token_id,
                )
            new = out[0, inputs["input_ids"].shape[1] :]
            prev[stage] = llm.tokenizer.decode(new, skip_special_tokens=True)
            generated += int(new.numel())
            prompt_tokens += int(inputs["attention_mask"].sum())
    sync(device)
    return time.perf_counter() - t0, generated, prompt_tokens


class StandInReplies:
    """The model under test, decoding exactly ``tokens[stage]`` new tokens per request (EOS ignored: the
    cost trained weights would have), with the random weights' text replaced by a well-formed reply so
    the graph goes on to the next step. Counts the tokens; everything else is the wrapped model's."""

    def __init__(self, llm, tokens: dict) -> None:
        self.llm, self.tokens = llm, tokens
        self.generated = self.prompt_tokens = 0
        self.requests: list = []  # (stage, request) in the order they reached the model

    def __getattr__(self, name):
        if name.startswith("_") or name == "llm":
            raise AttributeError(name)
        return getattr(self.llm, name)

    @staticmethod
    def stage(request) -> str | None:
        return next(iter(request.json_schema["properties"]), None) if request.json_schema else None

    @staticmethod
    def reply(key: str, schema: dict) -> dict:
        spec = schema["properties"][key]
        if key == "question":
            return {"question": "Which organism is shown in the picture?"}
        if spec.get("type") == "array":  # distractors, notes: n distinct strings, the schema's own when listed
            n, enum = spec.get("minItems", 1), spec.get("items", {}).get("enum") or []
            return {key: (enum if len(enum) >= n else [f"stand-in {key} {i}" for i in range(n)])[:n]}
        return {key: (spec.get("enum") or ["The picture and its caption show the organism."])[0]}

    def generate(self, request):
        return self.generate_batch([request])[0]

    def generate_batch(self, requests):
        stages = [self.stage(r) for r in requests]
        self.requests += zip(stages, requests)
        gens = self.llm.generate_batch(
            [r.model_copy(update={"max_tokens": self.tokens.get(s, r.max_tokens)}) for r, s in zip(requests, stages)]
        )
        out = []
        for r, stage, gen in zip(requests, stages, gens):
            self.generated += gen.usage.completion_tokens
            self.prompt_tokens += gen.usage.prompt_tokens
            if stage is not None:
                data = self.reply(stage, r.json_schema)
                gen = gen.model_copy(update={"text": json.dumps(data), "data": data})
            out.append(gen)
        return out


def run_stages(llm, requests, tokens, device):
    """The reference for ``batched``: the very requests a ``batched`` run sent (``StandInReplies.requests``),
    sent again one stage at a time, all items' requests of a stage in one ``generate_batch`` call, with
    nothing in between (no graph, no retrieval, no parsing). Returns seconds, generated and prompt tokens,
    and the batch sizes sent."""
    by_stage: dict = {}
    for stage, request in requests:
        by_stage.setdefault(stage, []).append(request)
    model = StandInReplies(llm, tokens)
    cold_pictures()
    sync(device)
    t0 = time.perf_counter()
    for batch in by_stage.values():
        model.generate_batch(batch)
    sync(device)
    return time.perf_counter() - t0, model.generated, model.prompt_tokens, [len(b) for b in by_stage.values()]


class BenchRetriever:
    """The exemplars load_items picked for each item (keyed by its image path): no index needed."""

    def __init__(self, items) -> None:
        self.by_image = {str(item.images[0].path): exemplars for item, exemplars in items}

    def retrieve(self, query, k=None):
        return self.by_image[str(query.image_path)][:k], {"retriever": "bench"}


class CaptionReader:
    """The dataset caption as the image's text (no OCR): the model sees the pixels anyway."""

    name = "bench-caption"

    def __init__(self, items) -> None:
        self.by_image = {str(item.images[0].path): item.image_text for item, _ in items}

    def describe(self, image, *, source_path=None):
        from coe.plugins.vision.protocol import ImageText

        return ImageText(caption=self.by_image[str(source_path)], source="scienceqa-caption")


def run_batched(llm, items, tokens, device, k_exemplars: int, full_graph: bool = False):
    """The items through coe's graph, all at once (``generate_items``); their concurrent model calls go
    out as batched calls. Without ``full_graph`` the checks after the distractors (verification, notes)
    are off, so each item makes the three generation calls ``seed`` makes. Returns seconds, generated
    and prompt tokens, the batch sizes sent and the requests (stage, request) in the order sent."""
    from coe.graphs import GraphSettings, Services, generate_items
    from coe.plugins.llm.request_batcher import MicroBatchLLM

    model = StandInReplies(llm, tokens)
    services = Services(
        llm=MicroBatchLLM(model, max_batch_size=len(items)),
        retriever=BenchRetriever(items),
        image_reader=CaptionReader(items),
    )
    inputs = [
        {"answer": item.answer, "context": item.context, "image_path": str(item.images[0].path), "n_distractors": 3}
        for item, _ in items
    ]
    stats: dict = {}
    cold_pictures()
    sync(device)
    t0 = time.perf_counter()
    settings = {} if full_graph else {k: False for k in ("verify", "write_notes") if k in GraphSettings.model_fields}
    out = generate_items(inputs, services, stats=stats, max_concurrency=len(items), k=k_exemplars, **settings)
    sync(device)
    seconds = time.perf_counter() - t0
    failed = [o["error"] for o in out if "error" in o]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(out)} items failed: {failed[0]}")
    return seconds, model.generated, model.prompt_tokens, stats["batching"]["sizes"], model.requests
