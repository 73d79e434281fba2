"""Building the rankers of a set of banks: after ``coe index build`` and by ``coe rank train``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bank import BankStats, bank_records
from .features import EmbedCache, ItemContext, features, index_vectors
from .model import RANKER_VERSION, TASKS, index_fingerprint, paths, ranker_dir
from .train import MAX_TRAIN_ITEMS, MAX_VAL_ITEMS, require_items, sample, split_records, train_task


def up_to_date(directory: Path, fingerprint: str) -> bool:
    for task in TASKS:
        try:
            meta = json.loads(paths(task, directory)[1].read_text())
        except (OSError, ValueError):
            return False
        if meta.get("version") != RANKER_VERSION or meta.get("index_fingerprint") != fingerprint:
            return False
    return True


def earlier_runs(directory: Path) -> list[str]:
    """The batch runs whose decisions the current distractor ranker learned from (those still there), so a
    rebuild keeps what reviewers taught it."""
    try:
        runs = json.loads(paths("distractors", directory)[1].read_text()).get("from_runs", [])
    except (OSError, ValueError):
        return []
    return [r for r in runs if (Path(r) / "ledger.sqlite").is_file()]


def build_rankers(
    retriever,
    *,
    from_runs: list[str] | tuple[str, ...] = (),
    force: bool = False,
    directory: Path | None = None,
    progress=None,
    max_train: int = MAX_TRAIN_ITEMS,
    max_val: int = MAX_VAL_ITEMS,
) -> dict[str, Any]:
    """Train the distractor and question rankers of the retriever's banks, unless they are up to date (same
    index, same version, no review decisions to add). Returns the distractor ranker's metadata, with the
    question ranker's under ``questions``."""
    from .decisions import decision_rows

    directory = directory or ranker_dir(retriever.banks)
    fingerprint = index_fingerprint(retriever)
    if not force and not from_runs and up_to_date(directory, fingerprint):
        return {"status": "up to date", "directory": str(directory)}
    t0 = time.perf_counter()
    from_runs = list(dict.fromkeys([*earlier_runs(directory), *(str(Path(r).resolve()) for r in from_runs)]))
    train_recs, val_recs = split_records(bank_records(retriever))
    require_items("distractors", len(train_recs))  # before anything is computed or written
    stats = BankStats(train_recs)  # train items leave themselves out; val items are not in it at all
    embed = EmbedCache(retriever.embedder, known=index_vectors(retriever))
    # the question ranker has fewer features and learns from fewer items; half keeps the build short
    q_train, q_val = sample(train_recs, max_train // 2), sample(val_recs, max_val // 2)
    train_recs, val_recs = sample(train_recs, max_train), sample(val_recs, max_val)
    extra, reviewed = None, 0
    if from_runs:
        names = features([], ItemContext("", "", "", [], stats))[1]
        parts = [
            decision_rows(run, retriever, stats, embed, exclude_splits=["val", "test"], names=names)
            for run in from_runs
        ]
        extra = (
            np.vstack([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            [g for p in parts for g in p[2]],
        )
        reviewed = sum(p[3] for p in parts)
    meta = {
        "index_fingerprint": fingerprint,
        "reviewed_items": reviewed,
        "from_runs": from_runs,
        "decision_rows": int(len(extra[1])) if extra is not None else 0,
    }
    result = train_task(
        "distractors",
        retriever,
        directory,
        train_recs,
        val_recs,
        stats,
        embed,
        extra=extra,
        progress=progress,
        meta=meta,
    )
    questions = train_task(
        "questions",
        retriever,
        directory,
        q_train,
        q_val,
        stats,
        embed,
        progress=progress,
        meta={"index_fingerprint": fingerprint},
    )
    return {
        "status": "built",
        **result,
        "questions": {k: v for k, v in questions.items() if k != "train_ids"},
        "seconds": round(time.perf_counter() - t0, 1),
        "directory": str(directory),
    }
