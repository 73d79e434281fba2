"""Test tiers: a part a tier needs that is missing fails the run loudly, unless that tier was deselected on
purpose (``-m "not vlm"``); then its modules are skipped saying so.

Tiers (pyproject's markers): ``slow`` (a real model on the CPU), ``real_parts`` (real models, servers,
processes and data), ``browser`` (Chromium), ``vlm`` (torch, transformers, peft, open_clip), ``root`` (mounts).
``make test`` runs them all; ``make test-fast`` deselects them all and runs the unit tier, which needs none of
these parts."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

_CONFIG: pytest.Config | None = None


def configure(config: pytest.Config) -> None:
    global _CONFIG
    _CONFIG = config


def deselected(tier: str) -> bool:
    expr = _CONFIG.getoption("markexpr", "") if _CONFIG is not None else ""
    if not expr:
        return False
    from _pytest.mark.expression import Expression
    return not Expression.compile(expr).evaluate(lambda name: name == tier)


def missing(what: str, tier: str, hint: str) -> None:
    if deselected(tier):
        pytest.skip(f"the {tier} tier is deselected", allow_module_level=True)
    pytest.fail(f"{what} is missing: {hint} (or deselect this tier: -m 'not {tier}')", pytrace=False)


def require(module: str, tier: str):
    """Import ``module`` for ``tier``'s tests, or fail (skip only when the tier is deselected)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"Python module {module} ({exc})", tier, "`make test` installs it")


def require_file(path: Path, tier: str, hint: str) -> Path:
    if not Path(path).exists():
        missing(str(path), tier, hint)
    return Path(path)


def require_root(why: str, tier: str = "root") -> None:
    """Fail unless this process is root (skip only when ``tier`` is deselected)."""
    if os.geteuid() != 0:
        missing(f"root ({why})", tier, "run the tests as root")
