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

from qwen2vl_decode import run_decode, run_graph_decode
from qwen2vl_inputs import STAGES, import_coe, load_items, load_tokenizer
from qwen2vl_model import build_llm
from qwen2vl_report import print_summary, set_targets
from qwen2vl_runs import peak_gb, reset_peak, run_batched, run_seed, run_stages


# --- main ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model on the CPU: a smoke test of every path")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--shape", default=None, help="model shape: 7b (default) or tiny (default with --quick)")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument(
        "--data",
        default=None,
        help="ScienceQA folder (default: ../shared/data/scienceqa, then bench/assets/scienceqa, then the test fixture)",
    )
    ap.add_argument("--tokenizer", default=None, help="Qwen2 .gguf file or tokenizer directory")
    ap.add_argument("--batches", default=None, help="batch sizes for the batched mode (default 8,32,64)")
    ap.add_argument("--seed-items", type=int, default=None, help="items for the one-at-a-time mode (default 4)")
    ap.add_argument(
        "--tokens", default=None, help="new tokens per stage question,rationale,distractors (default 32,96,48)"
    )
    ap.add_argument("--image-size", type=int, default=448)
    ap.add_argument(
        "--full-graph",
        action="store_true",
        help="batched: every step of the default graph (verification, notes), not only the three generation steps",
    )
    ap.add_argument(
        "--exemplars",
        type=int,
        default=0,
        help="exemplars per prompt (0: ~250 text tokens in the question prompt; 1: ~400)",
    )
    ap.add_argument("--bandwidth", type=float, default=4.8e12, help="HBM bytes/s for the bound (H200: 4.8e12)")
    ap.add_argument("--decode-tokens", default=None, help="short,long new tokens for the decode rate (16,144)")
    ap.add_argument(
        "--compile-everywhere",
        action="store_true",
        help="compile the static-cache decode step on the CPU too (transformers compiles on CUDA only)",
    )
    ap.add_argument(
        "--graph-compile-modes",
        default="default",
        help="torch.compile modes to try for the graph decoder's step, in order (e.g. "
        "default,max-autotune-no-cudagraphs)",
    )
    ap.add_argument(
        "--inductor-tuning",
        action="store_true",
        help="Inductor's coordinate-descent tuning of the generated kernels (slower compile)",
    )
    ap.add_argument(
        "--skip", default="", help="comma list of modes to skip: seed,stages,batched,decode,decode-eager,decode-graph"
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=float(os.environ.get("BENCH_BUDGET_S", 520)),
        help="skip configurations not started within this many seconds",
    )
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)  # noqa: E731
    import_coe()
    import torch
    import transformers

    from coe.plugins.llm.transformers_vl import TransformersVLLM

    quick = args.quick
    if args.inductor_tuning:
        import torch._inductor.config as inductor_config

        inductor_config.coordinate_descent_tuning = True
    device = args.device or ("cuda" if torch.cuda.is_available() and not quick else "cpu")
    shape = args.shape or ("tiny" if quick else "7b")
    batches = [int(b) for b in (args.batches or ("8,16" if quick else "8,32,64")).split(",")]
    seed_items = args.seed_items or (2 if quick else 4)
    q, r, d = (int(x) for x in (args.tokens or ("4,8,6" if quick else "32,96,48")).split(","))
    tokens = {"question": q, "rationale": r, "distractors": d}
    short, long = (int(x) for x in (args.decode_tokens or ("2,20" if quick else "16,144")).split(","))
    skip = set(filter(None, args.skip.split(",")))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32

    results: dict = {
        "env": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": device,
            "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        },
        "config": {
            "shape": shape,
            "dtype": str(dtype).removeprefix("torch."),
            "batches": batches,
            "seed_items": seed_items,
            "tokens_per_stage": tokens,
            "image_size": args.image_size,
            "exemplars": args.exemplars,
            "bandwidth": args.bandwidth,
            "full_graph": args.full_graph,
            "decode_tokens": [short, long],
        },
        "rows": [],
        "errors": [],
    }

    def save():
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))

    tok, tok_source = load_tokenizer(args.tokenizer, log)
    results["config"]["tokenizer"] = tok_source
    items = load_items(args.data, max(batches + [seed_items]), args.image_size, args.exemplars, log)

    model, llm, total_bytes, step_bytes = build_llm(
        tok, items, tokens, shape=shape, dtype=dtype, device=device, max_batch=max(batches), results=results, log=log
    )
    if args.compile_everywhere:
        from transformers import CompileConfig

        CompileConfig._compile_all_devices = True  # class-wide: generate() rebuilds its config objects
        model.generation_config.compile_config = CompileConfig()
    hbm_bound = args.bandwidth / step_bytes  # batch-1 decode tokens/s at full bandwidth
    results["hbm_bound_tokens_per_s"] = round(hbm_bound, 1)

    def row(mode, batch, seconds, n_items, generated, prompt_tokens, **extra):
        rec = {
            "mode": mode,
            "batch": batch,
            "seconds": round(seconds, 3),
            "items_per_s": round(n_items / seconds, 3) if n_items else None,
            "tokens_per_s": round(generated / seconds, 1),
            "generated_tokens": generated,
            "mean_prompt_tokens": round(prompt_tokens / max(1, n_items * len(STAGES)), 1) if n_items else None,
            "peak_mem_gb": peak_gb(device),
            **extra,
        }
        results["rows"].append(rec)
        save()
        if n_items:
            log(
                f"{mode:>14} batch {batch:>3}: {rec['items_per_s']} items/s, {rec['tokens_per_s']} tokens/s, "
                f"peak {rec['peak_mem_gb']} GB"
            )
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
            results["errors"].append(
                {
                    "config": name,
                    "error": f"{type(exc).__name__}: {exc}"[:2000],
                    "traceback": traceback.format_exc()[-4000:],
                }
            )
            log(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
            save()
        finally:
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    # warm-up: kernels, allocator, first-call costs (not timed)
    attempt(
        "warmup",
        lambda: (
            run_batched(llm, items[:2], {k: 2 for k in tokens}, device, args.exemplars, args.full_graph),
            run_seed(llm, items[:1], {k: 2 for k in tokens}, device),
        ),
    )

    seed_rate = {}

    def seed():
        secs, gen, pt = run_seed(llm, items[:seed_items], tokens, device)
        seed_rate["items_per_s"] = row("seed", 1, secs, seed_items, gen, pt)["items_per_s"]

    attempt("seed", seed)

    # the best of `reps` runs of each, the two modes taking turns: on a shared CPU the slower runs say
    # more about the neighbours than about the path (a tiny model's run lasts 1-2 s, and on 2 cores
    # runs of the same path differ by 10-25 %, hence more of them with --quick)
    reps = 5 if quick else 3
    decode_reps = 2 if quick else 3
    for b in batches:

        def batched_and_stages(b=b):
            graph_runs, stage_runs = [], []
            for _ in range(reps):
                graph_runs.append(run_batched(llm, items[:b], tokens, device, args.exemplars, args.full_graph))
                if not args.full_graph and "stages" not in skip:  # the full graph also scores options
                    stage_runs.append(run_stages(llm, graph_runs[0][4], tokens, device))
            secs, gen, pt, sizes, _ = min(graph_runs, key=lambda r: r[0])
            rec = row("batched", b, secs, b, gen, pt, model_batches=sizes, runs=reps)
            if seed_rate.get("items_per_s"):
                rec["speedup_vs_seed"] = round(rec["items_per_s"] / seed_rate["items_per_s"], 2)
            if stage_runs:
                secs, gen, pt, sizes = min(stage_runs, key=lambda r: r[0])
                ref = row("stages", b, secs, b, gen, pt, model_batches=sizes, runs=reps)
                rec["vs_stages"] = round(rec["items_per_s"] / ref["items_per_s"], 3)
            save()

        attempt(f"batched:{b}", batched_and_stages)

    def decode_row(name, rate, t_long, warm, method, prompt, note="", **extra):
        rec = row(name, 1, t_long, 0, long, 0, prompt_len=prompt, warmup_seconds=round(warm, 1), method=method, **extra)
        rec.update(
            tokens_per_s=round(rate, 1),
            hbm_bound_tokens_per_s=round(hbm_bound, 1),
            fraction_of_hbm_bound=round(rate / hbm_bound, 3),
            ms_per_token=round(1000 / rate, 3),
        )
        save()
        log(
            f"{name:>14} batch   1: {rate:.1f} tokens/s = {rate / hbm_bound:.1%} of the HBM bound "
            f"({hbm_bound:.1f} tokens/s), peak {rec['peak_mem_gb']} GB{note}, warm-up {warm:.1f}s"
        )

    for name, static in (("decode-eager", False), ("decode", True)):

        def decode(name=name, static=static):
            rate, t_long, warm, method, prompt = run_decode(
                llm, items, tokens, device, static=static, short=short, long=long, repeats=decode_reps
            )
            decode_row(
                name,
                rate,
                t_long,
                warm,
                method,
                prompt,
                cache=("static+compiled" if device.startswith("cuda") or args.compile_everywhere else "static")
                if static
                else "dynamic",
            )

        attempt(name, decode)

    for compile_mode in args.graph_compile_modes.split(","):

        def graph_decode(compile_mode=compile_mode):
            fast = TransformersVLLM.from_parts(
                model, llm.processor, model_id=llm.model_id, ignore_eos=True, graph_decode=True
            )
            fast.graph_compile_mode = compile_mode
            rate, t_long, warm, method, prompt, mode, same = run_graph_decode(
                fast, items, tokens, device, short=short, long=long, repeats=decode_reps
            )
            decode_row(
                "decode-graph",
                rate,
                t_long,
                warm,
                method,
                prompt,
                note=f", {mode}, first {same}/{long} greedy tokens equal generate()'s",
                cache=mode,
                tokens_equal_to_generate=f"{same}/{long}",
            )

        attempt(f"decode-graph:{compile_mode}", graph_decode)

    # summary
    set_targets(results)
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    save()
    print_summary(results, total_bytes, step_bytes, args.bandwidth, hbm_bound)
    return 0


if __name__ == "__main__":
    sys.exit(main())
