"""`coe eval` (scores on ScienceQA) and `coe bench` (speed)."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)


def eval_command(
    task: str = typer.Option(
        "dg", "--task", help="qg, rg, dg, verify, all, or a comma-separated mix (e.g. all,verify)."
    ),
    split: str = typer.Option("test", "--split", help="val or test."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate a sample of this many items."),
    stratify: bool = typer.Option(False, "--stratify", help="Sample proportionally per context type × subject."),
    model: Optional[str] = typer.Option(None, "--model", help="Model for the model-based variants."),
    variant: str = typer.Option(
        "copy,coe",
        "--variant",
        help="Comma-separated: copy, pool-rank, learned, zero-shot, coe-paper-prompts, greedy, no-cot, coe, "
        "coe-no-cot; NAME:KEY=VALUE[:KEY=VALUE] runs a variant with other graph settings (coe:k=2), and the "
        "report gives its paired difference from NAME.",
    ),
    report: Optional[str] = typer.Option(None, "--report", help="Write report.md, report.json and plots here."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    known_false: str = typer.Option(
        "all", "--known-false", help="Known-false item kinds for --task verify (comma-separated), or all."
    ),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the 95 % intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    bank: list[str] = typer.Option(
        [], "--bank", metavar="NAME", help="Exemplar bank(s) to search (repeatable or a,b; default: ScienceQA's)."
    ),
    compare: Optional[str] = typer.Option(
        None,
        "--compare",
        metavar="REF",
        help="Also run git commit REF's own evaluation (its own code, index and cache, under "
        "COE_HOME/eval-compare) on the same items, score it here and print each variant's paired difference.",
    ),
    compare_variant: Optional[str] = typer.Option(
        None, "--compare-variant", help="The variants REF runs (default: --variant), as REF names them."
    ),
) -> None:
    """Score variants on ScienceQA (resumable: finished items are cached)."""
    from coe.eval import command
    from coe.eval.runner import cache_root
    from coe.paths import writable_dir

    writable_dir(cache_root(), "eval cache", "COE_EVAL_CACHE")
    result = command.run(
        task=task,
        split=split,
        limit=limit,
        stratify=stratify,
        model=model,
        variants=variant,
        report=report,
        data=data,
        seed=seed,
        console=err,
        known_false=known_false,
        resamples=resamples,
        banks=bank,
        compare=compare,
        compare_variants=compare_variant,
    )
    if as_json:
        print(json.dumps(command.as_json(result), default=str))
    else:
        command.print_summary(result, Console())


def bench_command(
    models: str = typer.Option(
        "qwen2.5-coder-0.5b-instruct-q4", "--models", help="Comma-separated models to time per stage (empty: skip)."
    ),
    items: int = typer.Option(5, "--items", help="Test items per model for the stage timings."),
    warmup: int = typer.Option(
        1,
        "--warmup",
        min=0,
        help="Other test items each model runs first, untimed (their seconds are printed): the first "
        "item also loads the bank, WordNet and the OCR model. 0 times the cold first item too.",
    ),
    sizes: str = typer.Option("1000,5000,20000", "--bank-sizes", help="Bank sizes for retrieval latency."),
    queries: int = typer.Option(200, "--queries", help="Retrieval queries per bank size."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
    compare: Optional[str] = typer.Option(
        None,
        "--compare",
        metavar="REF",
        help="Time REF (a git commit, or KEY=VALUE settings) and the current "
        "code on the same items, taking turns, and print the ratio. With "
        '--models "": retrieval on the installed exemplar index.',
    ),
) -> None:
    """Time each stage per model, retrieval p50/p95 by bank size, index build rate and peak RSS."""
    from coe.dataset_loaders import ScienceQA
    from coe.errors import InputError
    from coe.eval import bench
    from coe.eval.runner import machine
    from coe.graphs.services import retrieval_services

    try:
        bank_sizes = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError("--bank-sizes takes comma-separated integers") from exc
    dataset = ScienceQA(data)
    result: dict = {"machine": machine()}
    model_list = [m.strip() for m in models.split(",") if m.strip()]
    if compare is not None:
        from coe.eval import compare_report as cmp

        result["compare"] = cmp.run(
            compare, dataset, model_list, items=items, queries=queries, status=err, warmup=warmup
        )
        result["peak_rss_mb"] = bench.peak_rss_mb()
        if as_json:
            print(json.dumps(result, indent=1, default=float))
        else:
            cmp.print_compare(result["compare"], Console())
        return
    if model_list:
        warm, chosen = bench.timed_items(dataset, items, warmup)
        with err.status("timing stages…"):
            result["stages"] = bench.bench_stages(model_list, chosen, retrieval_services(), warm)
    if bank_sizes:  # --bank-sizes "": stage timings only
        with err.status("timing retrieval…"):
            result["retrieval"] = bench.bench_retrieval(dataset, bank_sizes, queries)
    result["peak_rss_mb"] = bench.peak_rss_mb()
    if as_json:
        print(json.dumps(result, indent=1, default=float))
        return
    out = Console()
    for row in result.get("stages", []):
        out.print(
            f"[bold]{row['model']}[/bold]: {row['seconds_per_item']:.1f} s/item "
            f"({row['items_per_s']:.3f} items/s) over {row['items']} items"
            + (
                f", after {len(row['warmup_seconds'])} untimed warm-up item(s): "
                + ", ".join(f"{x:.1f} s" for x in row["warmup_seconds"])
                if row["warmup_seconds"]
                else ""
            )
        )
        for stage, sec in row["stage_seconds"].items():
            out.print(f"  {stage:15s} {sec:7.2f} s  {row['stage_items_per_s'][stage]:8.2f} items/s")
    r = result.get("retrieval") or {"sizes": []}
    if "embed_items_per_s" in r:
        out.print(f"embedding {r['bank_available']} exemplars: {r['embed_items_per_s']:.0f} items/s")
    for s in r["sizes"]:
        out.print(
            f"bank {s['bank']:6d} (asked {s['requested']}): retrieval p50 {s['p50_ms']:.1f} ms, "
            f"p95 {s['p95_ms']:.1f} ms over {s['queries']} queries; "
            f"index build {s['build_items_per_s']:.0f} items/s"
        )
    out.print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
