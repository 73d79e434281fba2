"""Answerability and verifier-quality figures from per-item records, each with a bootstrap interval.

Verifier quality treats known-false items as positives and gold items as negatives:

- recall of a kind: share of its known-false items flagged;
- false-positive rate: share of gold items flagged;
- precision of a kind: flagged known-false / (flagged known-false + flagged gold), counting the gold item of
  every item that has a known-false version of that kind, i.e. precision at a 1:1 mix of broken and proper
  items, so kinds with more skips are not favoured. Overall figures pool the kinds the same way: every
  known-false item is paired with its own gold item.

Intervals resample source items (a pid with its known-false versions and its gold item together)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from .bootstrap import RESAMPLES, interval, ratio
from .known_false import KINDS


def _figure(num: list[float], den: list[float] | None, seed: int, resamples: int) -> dict[str, Any]:
    return {"value": ratio(num, den), "ci": list(interval(num, den, seed=seed, resamples=resamples))}


def answer_scores(records: list[dict[str, Any]], *, seed: int = 0, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Per source (``gold``, ``dg:VARIANT``, ``qg+dg:VARIANT``): the answering model's accuracy (the key
    strictly above every distractor) and mean key probability. Records without ``key_prob`` are items the
    source could not form (no question, no or broken distractors): counted as ``unusable``."""
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_source[r["source"]].append(r)
    out = {}
    for source, rows in by_source.items():
        usable = [r for r in rows if r.get("key_prob") is not None]
        out[source] = {
            "n": len(usable),
            "unusable": len(rows) - len(usable),
            "key_top": _figure([float(r["key_top"]) for r in usable], None, seed, resamples),
            "key_prob": _figure([r["key_prob"] for r in usable], None, seed, resamples),
        }
    return out


def quality_scores(
    records: list[dict[str, Any]], skipped: list[dict[str, Any]], *, seed: int = 0, resamples: int = RESAMPLES
) -> dict[str, Any]:
    """``records``: ``{"kind", "pid", "flagged"}`` with kind ``gold`` or one of ``KINDS``."""
    gold = {r["pid"]: float(r["flagged"]) for r in records if r["kind"] == "gold"}
    flags: dict[str, dict[str, float]] = defaultdict(dict)  # kind -> pid -> flagged
    for r in records:
        if r["kind"] != "gold":
            flags[r["kind"]][r["pid"]] = float(r["flagged"])
    missing = {pid for f in flags.values() for pid in f} - set(gold)
    if missing:
        raise ValueError(f"known-false items without a verified gold item: {', '.join(sorted(missing)[:5])}")
    skips: dict[str, Counter] = defaultdict(Counter)
    for s in skipped:
        skips[s["kind"]][s["reason"]] += 1
    out: dict[str, Any] = {
        "gold": {"n": len(gold), "false_positive_rate": _figure(list(gold.values()), None, seed, resamples)},
        "kinds": {},
    }
    for kind in [k for k in KINDS if k in flags or k in skips]:
        f = flags.get(kind, {})
        tp = list(f.values())
        fp = [gold[pid] for pid in f]
        out["kinds"][kind] = {
            "n": len(f),
            "skipped": sum(skips[kind].values()),
            "skip_reasons": dict(skips[kind]),
            "recall": _figure(tp, None, seed, resamples),
            "precision": _figure(tp, [t + g for t, g in zip(tp, fp)], seed, resamples),
        }
    # Overall, per source item: its flagged known-false versions, how many it has, and its gold flag as often.
    pids = sorted({pid for f in flags.values() for pid in f})
    hits = [sum(f.get(pid, 0.0) for f in flags.values()) for pid in pids]
    count = [float(sum(pid in f for f in flags.values())) for pid in pids]
    false = [c * gold[pid] for c, pid in zip(count, pids)]
    out["overall"] = {
        "n": int(sum(count)),
        "skipped": len(skipped),
        "recall": _figure(hits, count, seed, resamples),
        "precision": _figure(hits, [h + g for h, g in zip(hits, false)], seed, resamples),
    }
    return out


MARGINS = tuple(round(0.05 * k, 2) for k in range(21))  # the confirm margins calibration tries
VERIFIED_TARGET = 0.9  # items marked verified must be right this often


def is_verified(r: dict[str, Any], margin: float) -> bool:
    """The verdict a record would get with ``margin`` (``coe.agents.verify.decide``): not flagged, about
    nothing the student could not see, and the key ahead of every distractor by ``margin``."""
    if r["flagged"] or r.get("blind") or r.get("key_prob") is None:
        return False
    return r["key_prob"] >= (r.get("strongest_prob") or 0.0) + margin


def verified_precision(
    records: list[dict[str, Any]], margin: float, *, seed: int = 0, resamples: int = RESAMPLES
) -> dict[str, Any]:
    """How often an item marked verified is right, at a 1:1 mix as ``quality_scores`` pairs them: each
    source item's verified known-false versions against its gold item (verified or not) counted as often.
    ``n_gold`` and ``n_false``: verified gold items and verified known-false items."""
    gold = {r["pid"]: float(is_verified(r, margin)) for r in records if r["kind"] == "gold"}
    kf: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["kind"] != "gold":
            kf[r["pid"]].append(float(is_verified(r, margin)))
    pids = sorted(kf)
    right = [len(kf[p]) * gold[p] for p in pids]
    wrong = [sum(kf[p]) for p in pids]
    return {
        "margin": margin,
        "precision": _figure(right, [a + b for a, b in zip(right, wrong)], seed, resamples),
        "n_gold": int(sum(gold.values())),
        "n_false": int(sum(wrong)),
        "gold_verified_rate": _figure(list(gold.values()), None, seed, resamples),
    }


def calibrate_margin(
    records: list[dict[str, Any]], *, target: float = VERIFIED_TARGET, margins: tuple[float, ...] = MARGINS
) -> tuple[float | None, list[dict[str, Any]]]:
    """(the smallest margin whose verified items are right at least ``target`` of the time, or None; the
    figure at every margin tried). Fit on val, report on test."""
    table = [verified_precision(records, m, resamples=0) for m in margins]
    ok = [t["margin"] for t in table if t["n_gold"] + t["n_false"] > 0 and t["precision"]["value"] >= target]
    return (ok[0] if ok else None), table
