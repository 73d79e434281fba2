"""The benchmark's closing summary: the targets reached, and the table of every configuration."""

from __future__ import annotations


def set_targets(results: dict) -> None:
    """The best batched speedup and decode fraction of the HBM bound, beside their targets."""
    best = max((r for r in results["rows"] if r["mode"] == "batched"), key=lambda r: r["items_per_s"], default=None)
    dec = max(
        (r for r in results["rows"] if r["mode"] in ("decode", "decode-graph")),
        key=lambda r: r["fraction_of_hbm_bound"],
        default=None,
    )
    vs_stages = {r["batch"]: r["vs_stages"] for r in results["rows"] if r["mode"] == "batched" and "vs_stages" in r}
    results["targets"] = {
        "batched_speedup_vs_seed": best.get("speedup_vs_seed") if best else None,
        "batched_vs_stages": vs_stages,
        "target_vs_stages": 0.9,
        "target_speedup": 10.0,
        "decode_fraction_of_hbm_bound": dec["fraction_of_hbm_bound"] if dec else None,
        "target_fraction": 0.70,
    }


def print_summary(results: dict, total_bytes: int, step_bytes: int, bandwidth: float, hbm_bound: float) -> None:
    print()
    header = f"{'mode':<13}{'batch':>6}{'items/s':>10}{'tokens/s':>11}{'peak GB':>9}{'HBM frac':>10}"
    print(header)
    print("-" * len(header))
    for r in results["rows"]:
        frac = r.get("fraction_of_hbm_bound")
        print(
            f"{r['mode']:<13}{r['batch']:>6}{r['items_per_s'] if r['items_per_s'] is not None else '-':>10}"
            f"{r['tokens_per_s']:>11}{r['peak_mem_gb'] if r['peak_mem_gb'] is not None else '-':>9}"
            f"{f'{frac:.3f}' if frac is not None else '-':>10}"
        )
    print(
        f"\nweights {total_bytes / 1e9:.2f} GB; read per decode step {step_bytes / 1e9:.2f} GB; HBM bound at "
        f"{bandwidth / 1e12:.2f} TB/s = {hbm_bound:.1f} tokens/s (batch 1)"
    )
    t = results["targets"]
    print(
        f"targets: batched vs seed {t['batched_speedup_vs_seed']}x (>= 10x); "
        f"decode {t['decode_fraction_of_hbm_bound']} of the HBM bound (>= 0.70)"
    )
    if t["batched_vs_stages"]:
        ratios = ", ".join(f"batch {b}: {v}x" for b, v in t["batched_vs_stages"].items())
        print(f"graph path vs stage-by-stage batches: {ratios} (>= 0.9x)")
    if results["errors"]:
        print(
            f"{len(results['errors'])} configuration(s) failed or were skipped: "
            + ", ".join(e["config"] for e in results["errors"])
        )
