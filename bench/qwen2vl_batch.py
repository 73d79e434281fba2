#!/usr/bin/env python3
"""Qwen2-VL generation throughput: one item at a time vs. coe's batched plugin, and batch-1 decode speed.

Nothing is downloaded. The model is a random-weight Qwen2-VL at the 7B shape (bf16, built directly on the
GPU), the tokenizer is the real Qwen2 one read from the pulled 0.5B GGUF (or a saved copy), and the
prompts are coe's own question → rationale → distractors prompts for ScienceQA test items, each with
its image resized to 448×448. Every configuration decodes a fixed number of tokens (EOS ignored), so
random weights cost exactly what trained ones would.

Modes
  seed      one item at a time, one stage at a time, plain ``model.generate`` (dynamic cache, eager)
  batched   B items through coe's graph (``generate_items``, B at once): ``MicroBatchLLM`` gathers the
            items' concurrent model calls into ``TransformersVLLM.generate_batch`` calls (one left-padded
            generate each); the random weights' text is replaced by a well-formed reply, so every item
            runs every step
  decode    batch-1 decode tokens/s of the full VL model (static cache; on CUDA transformers compiles
            the decoding step), against the HBM bound = bandwidth / bytes of weights read per step

    python bench/qwen2vl_batch.py --out bench.json            # GPU, 7B shape
    python bench/qwen2vl_batch.py --quick --out quick.json    # tiny shape, CPU smoke test (< 2 min)

Each configuration runs in its own try/except (an OOM or a compile failure is recorded, the rest
goes on) and the JSON is rewritten after each one, so a run cut short still leaves its results.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_COE_HOME = Path(os.environ.get("COE_HOME") or Path.home() / ".cache" / "coe")
DEFAULT_GGUF = Path(os.environ.get("COE_MODELS_DIR") or _COE_HOME / "models") / "qwen2.5-coder-0.5b-instruct-q4.gguf"
ASSETS = REPO / "bench" / "assets"


def import_coe():
    """Import coe installed, or straight from this checkout, mapping ``coe.*`` to folders as pyproject's
    ``package-dir`` does (``coe.dataset_loaders`` lives in ``dataset_loaders/``)."""
    try:
        import coe.agents.generation  # noqa: F401
        return
    except ImportError:
        pass
    import importlib.util
    import tomllib

    for name in [m for m in sys.modules if m == "coe" or m.startswith("coe.")]:
        del sys.modules[name]
    with (REPO / "pyproject.toml").open("rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]

    class CheckoutFinder:  # packages load on first import, as installed ones do (the GPU image lacks langchain)
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname not in mapping:
                return None
            folder = REPO / mapping[fullname]
            return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                          submodule_search_locations=[str(folder)])

    sys.meta_path.insert(0, CheckoutFinder)
    import coe.agents.generation  # noqa: F401


# --- inputs -------------------------------------------------------------------------------------------

def load_tokenizer(spec: str | None, log):
    from coe.plugins.llm.vl_random import load_qwen2_tokenizer

    candidates = [Path(spec)] if spec else [DEFAULT_GGUF, ASSETS / "tokenizer"]
    for path in candidates:
        if path.exists():
            t0 = time.perf_counter()
            tok = load_qwen2_tokenizer(path)
            log(f"tokenizer: {path} ({time.perf_counter() - t0:.1f}s, {len(tok)} tokens)")
            return tok, str(path)
    log("tokenizer: no GGUF or saved Qwen2 tokenizer found; using a word-level stand-in (token counts differ)")
    return standin_tokenizer(), "word-level stand-in"


def standin_tokenizer():
    """A word-level tokenizer with the Qwen2-VL special tokens at their real ids (last resort only)."""
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from coe.agents.prompting import PROMPT_DIR
    from coe.plugins.llm.vl_random import QWEN2_VL_CHAT_TEMPLATE, VL_SPECIAL_TOKENS

    words = set()
    for f in PROMPT_DIR.glob("*.txt"):
        words.update(re.findall(r"\w+|[^\w\s]", f.read_text()))
    vocab = {w: i for i, w in enumerate(sorted(words) + [chr(c) for c in range(32, 127) if chr(c) not in words])}
    vocab["[UNK]"] = len(vocab)
    specials = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
    specials.update({t: 151646 + i for i, t in enumerate(VL_SPECIAL_TOKENS)})
    vocab.update(specials)
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": list(specials)})
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def load_items(data: str | None, n: int, image_size: int, k_exemplars: int, log):
    """(ItemInput, exemplars) for n ScienceQA test image items; images resized to image_size² and saved
    as PNG files (the graph reads images by path)."""
    import tempfile

    from PIL import Image

    from coe.agents.generation import ItemInput
    from coe.dataset_loaders import ScienceQA
    from coe.errors import CoeError
    from coe.plugins.llm.protocol import ImageRef
    from coe.retrieval.exemplars import Exemplar

    roots = [data] if data else [None, str(ASSETS / "scienceqa"), str(REPO / "tests/fixtures/mini_scienceqa")]
    for root in roots:
        try:
            ds = ScienceQA(root)
            tests = [p for p in ds.split("test") if p.image_path and Path(p.image_path).is_file()]
            pool = [p for p in ds.split("train") if p.rationale][:400] or [p for p in ds if p.split != "test"]
        except (CoeError, OSError) as exc:
            log(f"data: {root or 'default ScienceQA folder'} unusable ({exc})")
            continue
        if tests:
            break
    else:
        raise SystemExit("no ScienceQA test items with images found; pass --data")
    log(f"data: {ds.root} ({len(tests)} test image items, using {n}, cycled if fewer)")
    folder = Path(tempfile.mkdtemp(prefix="coe-bench-images-"))
    items = []
    for i in range(n):
        p = tests[i % len(tests)]
        path = folder / f"{i}.png"
        Image.open(p.image_path).convert("RGB").resize((image_size, image_size), Image.BICUBIC).save(path)
        same = [q for q in pool if q.subject == p.subject] or pool
        exemplars = [Exemplar.from_problem(q) for q in same[i % 7:i % 7 + k_exemplars]]
        items.append((ItemInput(answer=p.answer, context=p.hint, image_text=p.caption,
                                images=[ImageRef(path=path)]), exemplars))
    return items


# --- the three stages, as coe's agents build them -----------------------------------------------------

def stage_request(stage: str, llm, item, exemplars, prev: dict, tokens: dict):
    from coe.agents.generation import distractors_call, question_call, rationale_call

    if stage == "question":
        call = question_call(llm, item, exemplars, max_tokens=tokens["question"])
    elif stage == "rationale":
        call = rationale_call(llm, item, prev.get("question", "")[:200] or "?", exemplars,
                              max_tokens=tokens["rationale"])
    else:
        call = distractors_call(llm, item, prev.get("question", "")[:200] or "?", prev.get("rationale", "")[:400],
                                exemplars, 3, max_tokens=tokens["distractors"])
    return call.request()


STAGES = ("question", "rationale", "distractors")


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
    sync(device)
    t0 = time.perf_counter()
    for item, exemplars in items:
        prev: dict = {}
        for stage in STAGES:
            req = stage_request(stage, llm, item, exemplars, prev, tokens)
            inputs = llm.encode([req])
            with torch.inference_mode():
                out = llm.model.generate(**inputs, max_new_tokens=req.max_tokens, min_new_tokens=req.max_tokens,
                                         do_sample=False, pad_token_id=llm.tokenizer.pad_token_id)
            new = out[0, inputs["input_ids"].shape[1]:]
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
        gens = self.llm.generate_batch([r.model_copy(update={"max_tokens": self.tokens.get(s, r.max_tokens)})
                                        for r, s in zip(requests, stages)])
        out = []
        for r, stage, gen in zip(requests, stages, gens):
            self.generated += gen.usage.completion_tokens
            self.prompt_tokens += gen.usage.prompt_tokens
            if stage is not None:
                data = self.reply(stage, r.json_schema)
                gen = gen.model_copy(update={"text": json.dumps(data), "data": data})
            out.append(gen)
        return out


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
    and prompt tokens, and the batch sizes sent."""
    from coe.graphs import GraphSettings, Services, generate_items
    from coe.plugins.llm.request_batcher import MicroBatchLLM

    model = StandInReplies(llm, tokens)
    services = Services(llm=MicroBatchLLM(model, max_batch_size=len(items)), retriever=BenchRetriever(items),
                        image_reader=CaptionReader(items))
    inputs = [{"answer": item.answer, "context": item.context, "image_path": str(item.images[0].path),
               "n_distractors": 3} for item, _ in items]
    stats: dict = {}
    sync(device)
    t0 = time.perf_counter()
    settings = {} if full_graph else {k: False for k in ("verify", "write_notes") if k in GraphSettings.model_fields}
    out = generate_items(inputs, services, stats=stats, max_concurrency=len(items), k=k_exemplars, **settings)
    sync(device)
    seconds = time.perf_counter() - t0
    failed = [o["error"] for o in out if "error" in o]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(out)} items failed: {failed[0]}")
    return seconds, model.generated, model.prompt_tokens, stats["batching"]["sizes"]


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
            out = llm.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                     pad_token_id=llm.tokenizer.pad_token_id, **kwargs)
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
    decoder = llm._decoders[max(llm._decoders)]  # the one whose cache holds prompt + long
    inputs = llm.encode([GenerationRequest(**{**base.model_dump(), "max_tokens": long})])
    with torch.inference_mode():
        ref = llm.model.generate(**inputs, max_new_tokens=long, min_new_tokens=long, do_sample=False,
                                 pad_token_id=llm.tokenizer.pad_token_id)[0, inputs["input_ids"].shape[1]:].tolist()
    got = decoder.generate(inputs, long, ignore_eos=True)
    same = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
    return rate, t_l, warm, method, inputs["input_ids"].shape[1], decoder.mode, same


# --- main ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model on the CPU: a smoke test of every path")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--shape", default=None, help="model shape: 7b (default) or tiny (default with --quick)")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--data", default=None, help="ScienceQA folder (default: ../shared/data/scienceqa, "
                    "then bench/assets/scienceqa, then the test fixture)")
    ap.add_argument("--tokenizer", default=None, help="Qwen2 .gguf file or tokenizer directory")
    ap.add_argument("--batches", default=None, help="batch sizes for the batched mode (default 8,32,64)")
    ap.add_argument("--seed-items", type=int, default=None, help="items for the one-at-a-time mode (default 4)")
    ap.add_argument("--tokens", default=None, help="new tokens per stage question,rationale,distractors "
                    "(default 32,96,48)")
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument("--full-graph", action="store_true",
                    help="batched: every step of the default graph (verification, notes), not only the three "
                    "generation steps")
    ap.add_argument("--exemplars", type=int, default=0,
                    help="exemplars per prompt (0: ~250 text tokens in the question prompt; 1: ~400)")
    ap.add_argument("--bandwidth", type=float, default=4.8e12, help="HBM bytes/s for the bound (H200: 4.8e12)")
    ap.add_argument("--decode-tokens", default=None, help="short,long new tokens for the decode rate (16,144)")
    ap.add_argument("--compile-everywhere", action="store_true",
                    help="compile the static-cache decode step on the CPU too (transformers compiles on CUDA only)")
    ap.add_argument("--graph-compile-modes", default="default",
                    help="torch.compile modes to try for the graph decoder's step, in order (e.g. "
                    "default,max-autotune-no-cudagraphs)")
    ap.add_argument("--inductor-tuning", action="store_true",
                    help="Inductor's coordinate-descent tuning of the generated kernels (slower compile)")
    ap.add_argument("--skip", default="", help="comma list of modes to skip: seed,batched,decode,decode-eager,"
                    "decode-graph")
    ap.add_argument("--budget-s", type=float, default=float(os.environ.get("BENCH_BUDGET_S", 520)),
                    help="skip configurations not started within this many seconds")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)  # noqa: E731
    import_coe()
    import torch
    import transformers

    from coe.plugins.llm.transformers_vl import TransformersVLLM
    from coe.plugins.llm.vl_random import build_processor, make_config, random_model

    quick = args.quick
    if args.inductor_tuning:
        import torch._inductor.config as inductor_config
        inductor_config.coordinate_descent_tuning = True
    device = args.device or ("cuda" if torch.cuda.is_available() and not quick else "cpu")
    shape = args.shape or ("tiny" if quick else "7b")
    batches = [int(b) for b in (args.batches or ("2,4" if quick else "8,32,64")).split(",")]
    seed_items = args.seed_items or (2 if quick else 4)
    q, r, d = (int(x) for x in (args.tokens or ("4,8,6" if quick else "32,96,48")).split(","))
    tokens = {"question": q, "rationale": r, "distractors": d}
    short, long = (int(x) for x in (args.decode_tokens or ("2,20" if quick else "16,144")).split(","))
    skip = set(filter(None, args.skip.split(",")))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32

    results: dict = {
        "env": {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "device": device,
                "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()},
        "config": {"shape": shape, "dtype": str(dtype).removeprefix("torch."), "batches": batches,
                   "seed_items": seed_items, "tokens_per_stage": tokens, "image_size": args.image_size,
                   "exemplars": args.exemplars, "bandwidth": args.bandwidth, "full_graph": args.full_graph,
                   "decode_tokens": [short, long]},
        "rows": [], "errors": [],
    }

    def save():
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))

    tok, tok_source = load_tokenizer(args.tokenizer, log)
    results["config"]["tokenizer"] = tok_source
    items = load_items(args.data, max(batches + [seed_items]), args.image_size, args.exemplars, log)

    t0 = time.perf_counter()
    config = make_config("qwen2_vl", shape, vocab_size=152064 if shape == "7b" else max(len(tok), 151936))
    config._attn_implementation = "sdpa"
    model = random_model(config, dtype=dtype, device=device)
    sync(device)
    total_bytes, step_bytes = decode_bytes(model)
    results["model"] = {"params": sum(p.numel() for p in model.parameters()), "weight_bytes": total_bytes,
                        "decode_step_weight_bytes": step_bytes, "init_seconds": round(time.perf_counter() - t0, 1)}
    log(f"model: Qwen2-VL {shape}, {results['model']['params'] / 1e9:.2f}B params, weights {total_bytes / 1e9:.2f} GB "
        f"({step_bytes / 1e9:.2f} GB read per decode step), init {results['model']['init_seconds']}s on {device}")
    processor = build_processor(tok, "qwen2_vl")
    llm = TransformersVLLM.from_parts(model, processor, model_id=f"qwen2-vl-{shape}-random",
                                      max_batch_size=max(batches), ignore_eos=True, graph_decode=False)
    try:  # the processor must turn a real prompt into model inputs; else use coe's PIL-based one
        llm.encode([stage_request("question", llm, *items[0], {}, tokens)])
    except Exception as exc:
        from coe.plugins.llm.transformers_processing import LightQwen2VLProcessor
        from coe.plugins.llm.vl_random import _image_processor
        log(f"processor {type(processor).__name__} failed ({type(exc).__name__}: {exc}); using LightQwen2VLProcessor")
        results["errors"].append({"config": "processor", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        processor = LightQwen2VLProcessor(tok, _image_processor("qwen2_vl", 56 * 56, 28 * 28 * 1280),
                                          tok.chat_template, with_token_types=True)
        llm = TransformersVLLM.from_parts(model, processor, model_id=f"qwen2-vl-{shape}-random",
                                          max_batch_size=max(batches), ignore_eos=True, graph_decode=False)
    results["config"]["processor"] = type(llm.processor).__name__
    log(f"processor: {type(llm.processor).__name__} (image processor {type(llm.processor.image_processor).__name__})")
    if args.compile_everywhere:
        from transformers import CompileConfig
        CompileConfig._compile_all_devices = True  # class-wide: generate() rebuilds its config objects
        model.generation_config.compile_config = CompileConfig()
    hbm_bound = args.bandwidth / step_bytes  # batch-1 decode tokens/s at full bandwidth
    results["hbm_bound_tokens_per_s"] = round(hbm_bound, 1)

    def row(mode, batch, seconds, n_items, generated, prompt_tokens, **extra):
        rec = {"mode": mode, "batch": batch, "seconds": round(seconds, 3),
               "items_per_s": round(n_items / seconds, 3) if n_items else None,
               "tokens_per_s": round(generated / seconds, 1), "generated_tokens": generated,
               "mean_prompt_tokens": round(prompt_tokens / max(1, n_items * len(STAGES)), 1) if n_items else None,
               "peak_mem_gb": peak_gb(device), **extra}
        results["rows"].append(rec)
        save()
        if n_items:
            log(f"{mode:>14} batch {batch:>3}: {rec['items_per_s']} items/s, {rec['tokens_per_s']} tokens/s, "
                f"peak {rec['peak_mem_gb']} GB")
        return rec

    def attempt(name, fn):
        if name.split(":")[0] in skip:
            return
        if time.perf_counter() - t_start > args.budget_s:
            results["errors"].append({"config": name, "error": f"skipped: over the {args.budget_s}s budget"})
            log(f"{name}: skipped (budget)")
            save()
            return
        try:
            reset_peak(device)
            fn()
        except Exception as exc:  # OOM, compile failure, ...: record it and go on
            results["errors"].append({"config": name, "error": f"{type(exc).__name__}: {exc}"[:2000],
                                      "traceback": traceback.format_exc()[-4000:]})
            log(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
            save()
        finally:
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    # warm-up: kernels, allocator, first-call costs (not timed)
    attempt("warmup", lambda: (run_batched(llm, items[:2], {k: 2 for k in tokens}, device, args.exemplars,
                                           args.full_graph),
                               run_seed(llm, items[:1], {k: 2 for k in tokens}, device)))

    seed_rate = {}

    def seed():
        secs, gen, pt = run_seed(llm, items[:seed_items], tokens, device)
        seed_rate["items_per_s"] = row("seed", 1, secs, seed_items, gen, pt)["items_per_s"]
    attempt("seed", seed)

    for b in batches:
        def batched(b=b):
            secs, gen, pt, sizes = run_batched(llm, items[:b], tokens, device, args.exemplars, args.full_graph)
            rec = row("batched", b, secs, b, gen, pt, model_batches=sizes)
            if seed_rate.get("items_per_s"):
                rec["speedup_vs_seed"] = round(rec["items_per_s"] / seed_rate["items_per_s"], 2)
                save()
        attempt(f"batched:{b}", batched)

    reps = 2 if quick else 3

    def decode_row(name, rate, t_long, warm, method, prompt, note="", **extra):
        rec = row(name, 1, t_long, 0, long, 0, prompt_len=prompt, warmup_seconds=round(warm, 1), method=method,
                  **extra)
        rec.update(tokens_per_s=round(rate, 1), hbm_bound_tokens_per_s=round(hbm_bound, 1),
                   fraction_of_hbm_bound=round(rate / hbm_bound, 3), ms_per_token=round(1000 / rate, 3))
        save()
        log(f"{name:>14} batch   1: {rate:.1f} tokens/s = {rate / hbm_bound:.1%} of the HBM bound "
            f"({hbm_bound:.1f} tokens/s), peak {rec['peak_mem_gb']} GB{note}, warm-up {warm:.1f}s")

    for name, static in (("decode-eager", False), ("decode", True)):
        def decode(name=name, static=static):
            rate, t_long, warm, method, prompt = run_decode(llm, items, tokens, device, static=static,
                                                            short=short, long=long, repeats=reps)
            decode_row(name, rate, t_long, warm, method, prompt,
                       cache=("static+compiled" if device.startswith("cuda") or args.compile_everywhere
                              else "static") if static else "dynamic")
        attempt(name, decode)

    for compile_mode in args.graph_compile_modes.split(","):
        def graph_decode(compile_mode=compile_mode):
            fast = TransformersVLLM.from_parts(model, llm.processor, model_id=llm.model_id, ignore_eos=True,
                                               graph_decode=True)
            fast.graph_compile_mode = compile_mode
            rate, t_long, warm, method, prompt, mode, same = run_graph_decode(
                fast, items, tokens, device, short=short, long=long, repeats=reps)
            decode_row("decode-graph", rate, t_long, warm, method, prompt,
                       note=f", {mode}, first {same}/{long} greedy tokens equal generate()'s",
                       cache=mode, tokens_equal_to_generate=f"{same}/{long}")
        attempt(f"decode-graph:{compile_mode}", graph_decode)

    # summary
    best = max((r for r in results["rows"] if r["mode"] == "batched"), key=lambda r: r["items_per_s"], default=None)
    dec = max((r for r in results["rows"] if r["mode"] in ("decode", "decode-graph")),
              key=lambda r: r["fraction_of_hbm_bound"], default=None)
    results["targets"] = {
        "batched_speedup_vs_seed": best.get("speedup_vs_seed") if best else None, "target_speedup": 10.0,
        "decode_fraction_of_hbm_bound": dec["fraction_of_hbm_bound"] if dec else None, "target_fraction": 0.70,
    }
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    save()
    print()
    header = f"{'mode':<13}{'batch':>6}{'items/s':>10}{'tokens/s':>11}{'peak GB':>9}{'HBM frac':>10}"
    print(header)
    print("-" * len(header))
    for r in results["rows"]:
        frac = r.get("fraction_of_hbm_bound")
        print(f"{r['mode']:<13}{r['batch']:>6}{r['items_per_s'] if r['items_per_s'] is not None else '-':>10}"
              f"{r['tokens_per_s']:>11}{r['peak_mem_gb'] if r['peak_mem_gb'] is not None else '-':>9}"
              f"{f'{frac:.3f}' if frac is not None else '-':>10}")
    print(f"\nweights {total_bytes / 1e9:.2f} GB; read per decode step {step_bytes / 1e9:.2f} GB; HBM bound at "
          f"{args.bandwidth / 1e12:.2f} TB/s = {hbm_bound:.1f} tokens/s (batch 1)")
    t = results["targets"]
    print(f"targets: batched vs seed {t['batched_speedup_vs_seed']}x (>= 10x); "
          f"decode {t['decode_fraction_of_hbm_bound']} of the HBM bound (>= 0.70)")
    if results["errors"]:
        print(f"{len(results['errors'])} configuration(s) failed or were skipped: "
              + ", ".join(e["config"] for e in results["errors"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
