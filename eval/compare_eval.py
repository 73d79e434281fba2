"""``coe eval --compare REF``: a previous commit's own evaluation on the same items, scored by the current
scorer, so "quality does not drop" is a paired difference with an interval rather than two reports read
side by side.

The reference runs as a child process importing its own ``coe`` (``compare_worker.py --mode cli``) with a
home of its own under ``COE_HOME/eval-compare/<commit>``: its own exemplar index, built by its own
``coe index build``, and its own eval cache, so a long reference run resumes where it stopped. Models,
WordNet and ScienceQA are shared with the current code. Its predictions are read from its cache and scored
here; only the sampling must agree, and that is checked item by item."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from coe.errors import InputError
from coe.paths import coe_home, models_dir

from .compare import WORKER, export_tree, resolve_commit


def reference_home(commit: str) -> Path:
    return coe_home() / "eval-compare" / commit[:12]


def _child_env(home: Path, data_dir: Path) -> dict[str, str]:
    from coe.modelstore.wordnet import nltk_data_dir

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the tree is chosen by --root alone
    # the reference keeps its index and predictions apart; what it only reads is shared
    for name in ("COE_CHROMA_DIR", "COE_CHROMA_URL"):
        env.pop(name, None)
    env.update(
        COE_HOME=str(home / "home"),
        COE_EVAL_CACHE=str(home / "home" / "eval-cache"),
        COE_MODELS_DIR=str(models_dir()),
        COE_NLTK_DATA=str(nltk_data_dir()),
        COE_SCIENCEQA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


def _run_cli(tree: Path, args: list[str], env: dict[str, str], label: str) -> str:
    """The reference's ``coe ARGS``; its progress goes to our stderr, its stdout is returned."""
    proc = subprocess.run(
        [sys.executable, "-P", str(WORKER), "--root", str(tree), "--mode", "cli", "--", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    if proc.returncode:
        raise InputError(f"--compare: the reference ({label}) failed in `coe {args[0]}` (exit {proc.returncode})")
    return proc.stdout


def reference_runs(
    ref: str,
    *,
    tasks: list[str],
    variants: list[str],
    split: str,
    limit: int | None,
    stratify: bool,
    seed: int,
    model: str | None,
    data_dir: Path,
    samples: dict[str, list[str]],
    status=None,
) -> list[dict[str, Any]]:
    """The reference's predictions, one run per (task, variant), keyed by the current sample's pids:
    ``{"task", "variant", "label", "predictions", "item_seconds", "config_id"}``."""
    commit = resolve_commit(ref)
    label = f"{ref} ({commit[:10]})"
    home = reference_home(commit)
    tree = home / "tree"
    if not (tree / "pyproject.toml").is_file():
        export_tree(commit, tree)
    env = _child_env(home, data_dir)
    if status:
        status.print(f"reference {label}: its own index and evaluation under {home}")
    _run_cli(tree, ["index", "build"], env, label)
    args = ["eval", "--task", ",".join(tasks), "--split", split, "--seed", str(seed), "--json"]
    args += ["--variant", ",".join(variants)]
    args += ["--limit", str(limit)] if limit is not None else []
    args += ["--stratify"] if stratify else []
    args += ["--model", model] if model else []
    out = _run_cli(tree, args, env, label)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise InputError(f"--compare: the reference ({label}) printed no JSON result")
    result = json.loads(lines[-1])
    cache = Path(env["COE_EVAL_CACHE"])
    runs = []
    for run in result.get("runs", []):
        task, folder = run["task"], cache / run["task"] / run["config_id"]
        wanted = samples[task]
        missing = [pid for pid in wanted if not (folder / f"{pid}.json").is_file()]
        if missing:
            raise InputError(
                f"--compare: the reference ({label}) evaluated other {task} items than the current code "
                f"({len(missing)} of {len(wanted)} missing, e.g. {missing[0]}): its sampling differs"
            )
        preds = {pid: json.loads((folder / f"{pid}.json").read_text("utf-8")) for pid in wanted}
        runs.append(
            {
                "task": task,
                "variant": f"{ref}/{run['variant']}",
                "label": label,
                "config_id": run["config_id"],
                "predictions": preds,
                "item_seconds": sum(float(p.get("seconds", 0.0) or 0.0) for p in preds.values()),
            }
        )
    return runs
