"""``coe eval``: one command from a sample of ScienceQA to a report comparing variants."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coe.errors import ConfigError, InputError

from .bootstrap import RESAMPLES, with_ci
from .items import TASKS, load_items, sample
from .known_false import KINDS
from .predict import base_variant, variant_settings
from .ranker_notes import paired_differences
from .report import MAIN_METRICS, write_report
from .report_verify import verify_tables
from .runner import machine, run_variant
from .scoring import EMBED_MATCH_THRESHOLD, Scorer, aggregate


def parse_variants(text: str) -> list[str]:
    """Comma-separated variant specs (``copy,coe,coe:k=2``), each checked with its settings."""
    variants = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not variants:
        raise InputError("--variant names no variant")
    for v in variants:
        variant_settings(v)
    return variants


def parse_tasks(text: str) -> list[str]:
    """``qg``, ``rg``, ``dg``, ``verify``, ``all`` (the three generation tasks) or a comma-separated mix."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in (*TASKS, "verify", "all")]
    if unknown or not names:
        raise InputError(f"--task must be one or more of {', '.join(TASKS)}, verify, all (comma-separated)")
    tasks = [t for t in (*TASKS, "verify") if t in names or (t in TASKS and "all" in names)]
    return tasks


def parse_kinds(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"unknown known-false kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    return kinds


def run(
    *,
    task: str,
    split: str,
    limit: int | None,
    stratify: bool,
    model: str | None,
    variants: str,
    report: str | None,
    data: str | None,
    seed: int,
    console: Console,
    known_false: str = ",".join(KINDS),
    resamples: int = RESAMPLES,
    banks: list[str] | None = None,
    compare: str | None = None,
    compare_variants: str | None = None,
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from coe.dataset_loaders import ScienceQA
    from coe.graphs.services import Services, default_llm, probe_llm, retrieval_services
    from coe.progress import make_progress

    tasks = parse_tasks(task)
    kinds = parse_kinds(known_false)
    if resamples < 1:
        raise InputError("--resamples must be positive")
    if split not in ("val", "test"):
        raise InputError("--split must be val or test")
    if limit is not None and limit < 1:
        raise InputError("--limit must be positive")
    chosen = parse_variants(variants)
    dataset = ScienceQA(data)
    from coe.question_banks import parse_banks

    bank_names = parse_banks(banks)
    gen_tasks = [t for t in tasks if t in TASKS]
    # the reference's variants are named as its own code names them: checked there, not here
    ref_variants = [v.strip() for v in (compare_variants or "").split(",") if v.strip()] or chosen
    if compare is not None:
        if "=" in compare:
            raise InputError("coe eval --compare takes a git commit; settings are variants: --variant coe,coe:k=2")
        if bank_names != ("default",) or not gen_tasks:
            raise InputError("coe eval --compare compares qg, rg or dg on the default bank")
    base = retrieval_services(bank_names)
    from .runner import cache_root

    # the cache key does not name the banks: other banks' predictions are kept apart by folder
    cache = cache_root() if bank_names == ("default",) else cache_root() / f"banks-{'+'.join(bank_names)}"
    samples = {t: sample(load_items(dataset, split, t), limit, stratify=stratify, seed=seed) for t in gen_tasks}

    found: list[dict[str, Any]] = []
    if compare is not None:  # the reference first: it is the long, resumable part
        from .compare_eval import reference_runs

        found = reference_runs(
            compare,
            tasks=gen_tasks,
            variants=ref_variants,
            split=split,
            limit=limit,
            stratify=stratify,
            seed=seed,
            model=model,
            data_dir=dataset.root,
            samples={t: [i.pid for i in items] for t, items in samples.items()},
            status=console,
        )
    needs_model = "verify" in tasks or any(variant_settings(v) is not None for v in chosen)
    llm = probe_llm(default_llm(model)) if needs_model else None
    services = Services(llm=llm, retriever=base.retriever, image_reader=base.image_reader)
    model_id = getattr(llm, "model_id", "none (model-free variants only)")
    if base.retriever is None:
        raise ConfigError("coe eval needs the exemplar retriever")
    # MiniLM cosines whatever encoder retrieval uses, so reports stay comparable
    scorer = Scorer(base.retriever.similarity.embedder)

    def scored_run(r: dict[str, Any]) -> dict[str, Any]:
        by_pid = {i.pid: i for i in samples[r["task"]]}
        scored = [(by_pid[pid], scorer.score(r["task"], by_pid[pid], p)) for pid, p in r["predictions"].items()]
        r["scores"] = aggregate(scored, seed=seed, resamples=resamples)
        r["item_scores"] = {item.pid: s for item, s in scored}  # for paired differences
        return r

    ref_runs = [scored_run(r) for r in found]
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    n_items = 0
    with make_progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        bars: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in bars:
                bars[name] = bar.add_task(name, total=total)
            bar.update(bars[name], completed=done)

        for t in gen_tasks:
            n_items = max(n_items, len(samples[t]))
            for v in chosen:
                runs.append(
                    scored_run(run_variant(t, v, samples[t], services, model_id, progress=progress, cache=cache))
                )
        verify = None
        if "verify" in tasks:
            from .verify_task import run_verify

            items = sample(load_items(dataset, split, "dg"), limit, stratify=stratify, seed=seed)
            n_items = max(n_items, len(items))
            verify = run_verify(
                items,
                dataset,
                services,
                model_id,
                chosen,
                seed=seed,
                kinds=kinds,
                resamples=resamples,
                progress=progress,
                cache=cache,
            )
    notes = []
    if "dg" in tasks and any(v in ("coe", "no-cot") for v in chosen):
        from .diagnostics import pool_coverage
        from .runner import cache_root, image_text_for

        items = sample(load_items(dataset, split, "dg"), limit, stratify=stratify, seed=seed)
        texts = {i.pid: image_text_for(i, services.image_reader, cache_root()) for i in items}
        cov = pool_coverage(items, services, texts)
        notes.append(
            f"- Candidate pool coverage (DG): {cov['gold_in_pool']:.1%} of the {cov['gold']} gold "
            f"distractors are among the candidates offered to the model, {cov['gold_in_top_n']:.1%} "
            "among its top n. Exact recall above the first figure needs options the exemplars do not "
            "hold (a larger or better-matched exemplar bank, or a stronger model that writes them); "
            "recall between the two figures is the model's choice at work."
        )
        notes.append(
            "- BLEU-4 and ROUGE-L on the numbered list also reward the gold order of the options, which "
            "ScienceQA varies between items of one template; no generator can recover it, so these two "
            "stay below 1 even when every gold option is found."
        )
    if "learned" in chosen:
        from .ranker_notes import ranker_notes

        notes += ranker_notes(tasks, split, limit, stratify, seed, dataset, services)
        notes += paired_differences(runs, "learned", seed=seed, resamples=resamples)
    for v in [v for v in chosen if base_variant(v) != v]:  # an ablation against its base variant, item by item
        notes += paired_differences(
            [r for r in runs if r["variant"] in (v, base_variant(v))], v, seed=seed, resamples=resamples
        )
    compared = []
    for v in chosen if ref_runs else []:  # each current variant against the reference's, item by item
        lines = paired_differences([r for r in runs if r["variant"] == v] + ref_runs, v, seed=seed, resamples=resamples)
        notes += lines
        compared += lines
    runs += ref_runs  # in the tables and the report beside the current variants
    meta = {
        "split": split,
        "tasks": tasks,
        "n_items": n_items,
        "stratify": stratify,
        "seed": seed,
        "notes": notes,
        "model": model_id,
        "machine": machine(),
        "wall_seconds": time.perf_counter() - t0,
        "command": "coe " + " ".join(sys.argv[1:]),
        "embed_threshold": EMBED_MATCH_THRESHOLD,
        "variants": chosen,
        "resamples": resamples,
        "banks": list(bank_names),
        "compare": {"ref": compare, "labels": sorted({r["label"] for r in ref_runs}), "paired": compared}
        if compare is not None
        else None,
    }
    path = write_report(Path(report), runs, meta, verify) if report else None
    return {"meta": meta, "runs": runs, "verify": verify, "report": str(path) if path else None}


def print_summary(result: dict[str, Any], console: Console) -> None:
    """Metrics as rows and variants as columns, so the table fits a terminal."""
    for task in [t for t in result["meta"]["tasks"] if t in TASKS]:
        runs = [r for r in result["runs"] if r["task"] == task]
        t = Table(
            title=f"{task.upper()} · {result['meta']['split']} · n={result['meta']['n_items']} · "
            f"{result['meta']['model']}"
        )
        t.add_column("metric")
        for r in runs:
            t.add_column(r["variant"], justify="right")
        for k in MAIN_METRICS[task]:
            t.add_row(
                k,
                *[with_ci(r["scores"]["overall"].get(k, float("nan")), r["scores"].get("ci", {}).get(k)) for r in runs],
            )
        t.add_row("s/item", *[f"{r['item_seconds'] / max(r['scores']['n'], 1):.1f}" for r in runs])
        console.print(t)
    for title, _, header, rows in verify_tables(result.get("verify") or {}):
        t = Table(title=f"{title} · {result['meta']['split']} · {result['meta']['model']}")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*[str(c) for c in row])
        console.print(t)
    if result["meta"].get("compare"):
        cmp = result["meta"]["compare"]
        console.print(f"[bold]current − reference {', '.join(cmp['labels'])}[/bold], scored alike:")
        for line in cmp["paired"]:
            console.print(line, markup=False)
    if result["report"]:
        console.print(f"report: {result['report']}")


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": result["meta"],
        "report": result["report"],
        "verify": result.get("verify"),
        "runs": [{k: v for k, v in r.items() if k not in ("predictions", "item_scores")} for r in result["runs"]],
    }
