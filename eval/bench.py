"""``coe bench``: speed of each stage per model, retrieval latency by bank size, index build, peak RSS."""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .items import EvalItem, load_items, sample

from coe.graphs.build import STEPS as STAGES


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed_items(dataset, n: int, warmup: int) -> tuple[list[EvalItem], list[EvalItem]]:
    """(warm-up items, timed items): ``n`` stratified test items, and ``warmup`` other random ones that run
    first, untimed, so the timed items see what a long run sees (bank, WordNet and OCR loaded, the model's
    contexts made) and the first item's loads are reported on their own."""
    pool = list(load_items(dataset, "test", "dg"))
    chosen = sample(pool, n, stratify=True)
    taken = {i.pid for i in chosen}
    return sample([i for i in pool if i.pid not in taken], warmup, seed=1), chosen


# The graph settings every timed item runs with: exemplars never from the split under test.
CONFIGURABLE: dict[str, Any] = {"exclude_splits": ["test"]}


def graph_input(item: EvalItem) -> dict[str, Any]:
    """A test item as ``coe bench`` sends it: the answer and the material, the item itself left out of
    the exemplars."""
    return {
        "answer": item.answer,
        "context": item.context,
        "image_path": str(item.image_path) if item.image_path else None,
        "n_distractors": max(len(item.gold_distractors), 1),
        "exclude_ids": [item.pid],
    }


def bench_stages(
    models: list[str], items: list[EvalItem], retrieval, warmup: list[EvalItem] | None = None
) -> list[dict[str, Any]]:
    """Full items (question, rationale, distractors, verification, notes) through the graph; per-stage
    seconds from the trace. The ``warmup`` items run first for each model and count only as
    ``warmup_seconds``."""
    from coe.errors import ModelOutputError
    from coe.graphs import graph
    from coe.graphs.services import Services, default_llm

    config = {"configurable": dict(CONFIGURABLE)}
    rows = []
    for model in models:
        llm = default_llm(model)
        services = Services(llm=llm, retriever=retrieval.retriever, image_reader=retrieval.image_reader)
        warm_seconds = []
        for item in warmup or []:
            t0 = time.perf_counter()
            try:
                graph.invoke(graph_input(item), config=config, context=services)
            except ModelOutputError:
                pass  # a warm-up item may fail loudly too; it loaded what it had to
            warm_seconds.append(time.perf_counter() - t0)
        per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
        totals = []
        failures = 0
        for item in items:
            t0 = time.perf_counter()
            try:
                out = graph.invoke(graph_input(item), config=config, context=services)
            except ModelOutputError:
                failures += 1  # the item failed loudly, as it should; its time still counts
                totals.append(time.perf_counter() - t0)
                continue
            totals.append(time.perf_counter() - t0)
            seen: dict[str, float] = {}
            for t in out["trace"]:
                seen[t["node"]] = seen.get(t["node"], 0.0) + float(t.get("seconds", 0.0))
            for s in STAGES:
                per_stage[s].append(seen.get(s, 0.0))
        rows.append(
            {
                "model": llm.model_id,
                "items": len(items),
                "failed": failures,
                "warmup_seconds": warm_seconds,
                "seconds_per_item": float(np.mean(totals)),
                "items_per_s": len(items) / sum(totals),
                "stage_seconds": {s: float(np.mean(v)) if v else 0.0 for s, v in per_stage.items()},
                "stage_items_per_s": {
                    s: (1.0 / np.mean(v) if v and np.mean(v) > 0 else float("inf")) for s, v in per_stage.items()
                },
            }
        )
        del llm
    return rows


def bench_retrieval(dataset, sizes: list[int], queries: int = 200) -> dict[str, Any]:
    """Embed the largest bank once, then index growing prefixes of it in fresh Chroma stores.

    The bank is every problem in the folder: train, then val, then test (test only to reach the larger
    sizes; the queries are test items and exclude themselves)."""
    from coe.plugins.registry import resolve
    from coe.retrieval.exemplars import Exemplar
    from coe.retrieval.index import FIELDS, embed_unique, field_text
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery

    bank = [Exemplar.from_problem(p) for s in ("train", "val", "test") for p in dataset.split(s)]
    largest = min(max(sizes), len(bank))
    bank = bank[:largest]
    embedder = resolve("text_embedder")
    t0 = time.perf_counter()
    vectors = {}
    for f in FIELDS:
        vectors[f] = embed_unique(embedder, [field_text(e, f) or " " for e in bank])
    embed_seconds = time.perf_counter() - t0
    test_items = [i for i in load_items(dataset, "test", "dg")][:queries]
    out: dict[str, Any] = {
        "bank_available": len(bank),
        "embed_seconds": embed_seconds,
        "embed_items_per_s": len(bank) / embed_seconds,
        "sizes": [],
    }
    for size in sorted(sizes):
        n = min(size, len(bank))
        with tempfile.TemporaryDirectory() as tmp:
            store = resolve("vector_store", path=Path(tmp))
            t1 = time.perf_counter()
            for f in FIELDS:
                keep = [i for i in range(n) if field_text(bank[i], f).strip()]
                for start in range(0, len(keep), 2000):
                    chunk = keep[start : start + 2000]
                    store.upsert(
                        f"default-{f}",
                        [bank[i].id for i in chunk],
                        vectors[f][chunk],
                        [bank[i].to_metadata() for i in chunk],
                        [field_text(bank[i], f) for i in chunk],
                    )
            upsert_seconds = time.perf_counter() - t1
            retriever = ExemplarRetriever(embedder, store)
            lat = []
            for item in test_items:
                q = RetrievalQuery(
                    answer=item.answer,
                    question=item.question,
                    context=item.context,
                    image_text=item.dataset_image_text,
                    exclude_ids=[item.pid],
                )
                t2 = time.perf_counter()
                retriever.retrieve(q)
                lat.append((time.perf_counter() - t2) * 1000)
            out["sizes"].append(
                {
                    "requested": size,
                    "bank": n,
                    "queries": len(lat),
                    "p50_ms": float(np.percentile(lat, 50)),
                    "p95_ms": float(np.percentile(lat, 95)),
                    "upsert_items_per_s": n / upsert_seconds,
                    "build_items_per_s": n / (upsert_seconds + embed_seconds * n / len(bank)),
                }
            )
    return out
