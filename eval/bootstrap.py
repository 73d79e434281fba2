"""95 % percentile-bootstrap intervals over items, seeded so a report is reproducible."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def interval(
    values: Sequence[float],
    den: Sequence[float] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile interval of ``sum(values) / sum(den)`` over items resampled with replacement.

    Without ``den`` this is the mean. With it, each item contributes a numerator and a denominator, so a
    ratio over items (precision, a rate over several known-false items per source item) is resampled by
    item, keeping an item's parts together. Items whose value is NaN are left out; resamples whose
    denominator sums to zero are left out too."""
    v = np.asarray(values, dtype=float)
    d = np.ones_like(v) if den is None else np.asarray(den, dtype=float)
    if v.shape != d.shape:
        raise ValueError("values and den must have one entry per item")
    keep = ~(np.isnan(v) | np.isnan(d))
    v, d = v[keep], d[keep]
    if not len(v):
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(v), size=(resamples, len(v)))
    num, tot = v[idx].sum(axis=1), d[idx].sum(axis=1)
    ratios = num[tot > 0] / tot[tot > 0]
    if not len(ratios):
        return math.nan, math.nan
    alpha = (1 - level) / 2 * 100
    lo, hi = np.percentile(ratios, [alpha, 100 - alpha])
    return float(lo), float(hi)


def ratio(values: Sequence[float], den: Sequence[float] | None = None) -> float:
    """The point estimate that goes with ``interval``."""
    v = np.asarray(values, dtype=float)
    d = np.ones_like(v) if den is None else np.asarray(den, dtype=float)
    keep = ~(np.isnan(v) | np.isnan(d))
    total = d[keep].sum()
    return float(v[keep].sum() / total) if total > 0 else math.nan


def with_ci(value: float, ci: Sequence[float] | None) -> str:
    """``0.512 [0.47, 0.55]``; a missing or undefined interval shows the value alone."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not ci or any(c is None or math.isnan(c) for c in ci):
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"
