"""A batch run's review decisions as training rows for the distractor ranker.

Labels within one reviewed item: an option a reviewer wrote in, or the options of an accepted item, are
positives (2); a distractor the reviewer rejected (the item rejected, or the option edited away) is a
negative (0); every other candidate of the wide pool is unlabelled (1). So a rejected option learns to rank
below what nobody judged, and a written-in one above. A reviewed item counts ``REPEAT`` times: one teacher's
decision outweighs one templated bank item."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from coe.agents.validation import clean_option, normalize
from coe.errors import InputError
from coe.retrieval.retriever import RetrievalQuery

from .candidates import build_pool
from .features import ItemContext, features

REPEAT = 20
POSITIVE, UNLABELLED, NEGATIVE = 2.0, 1.0, 0.0


def reviewed_items(run_dir: str | Path) -> list[dict]:
    """Each reviewed item of a run: answer, question, context, the written and the final distractors and
    the decision (read-only: the run's ledger is not touched)."""
    path = Path(run_dir) / "ledger.sqlite"
    if not path.is_file():
        raise InputError(f"{run_dir} is not a batch run folder (no ledger.sqlite)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = db.execute(
            "SELECT id, input, output, edited, decision FROM items WHERE state = 'done' "
            "AND (decision IS NOT NULL OR edited IS NOT NULL) ORDER BY position"
        ).fetchall()
        db.close()
    except sqlite3.Error as exc:
        raise InputError(f"cannot read the run's ledger {path}: {exc}") from exc
    out = []
    for row_id, inp, output, edited, decision in rows:
        item = json.loads(output or "{}")
        edits = json.loads(edited or "{}")
        given = json.loads(inp or "{}")
        written = [clean_option(d) for d in item.get("distractors") or []]
        final = [clean_option(d) for d in edits.get("distractors", written)]
        out.append(
            {
                "id": row_id,
                "answer": edits.get("answer", item.get("answer") or given.get("answer", "")),
                "question": edits.get("question", item.get("question", "")),
                "context": given.get("context", ""),
                "written": written,
                "final": final,
                "decision": decision,
            }
        )
    return out


def labels_for(item: dict) -> dict[str, float]:
    """Normalised option → label for one reviewed item."""
    written = {normalize(d) for d in item["written"]}
    final = {normalize(d) for d in item["final"]}
    out: dict[str, float] = {}
    for d in written - final:
        out[d] = NEGATIVE  # replaced by the reviewer
    for d in final - written:
        out[d] = POSITIVE  # written in by the reviewer
    for d in final & written:
        if item["decision"] == "rejected":
            out[d] = NEGATIVE
        elif item["decision"] == "accepted":
            out[d] = POSITIVE
    return out


def decision_rows(
    run_dir: str | Path, retriever, stats, embed, *, exclude_splits: list[str], names: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Feature rows, labels and groups (each reviewed item ``REPEAT`` times), and how many items."""
    xs, ys, groups = [], [], []
    items = reviewed_items(run_dir)
    for it in items:
        labels = labels_for(it)
        if not labels or not it["answer"]:
            continue
        found, _ = retriever.retrieve(
            RetrievalQuery(
                answer=it["answer"],
                question=it["question"] or None,
                context=it["context"],
                exclude_splits=exclude_splits,
            ),
            k=10,
        )
        pool = build_pool(
            it["answer"], it["question"], it["context"], found, stats, model_options=[*it["written"], *it["final"]]
        )
        x, cols = features(pool, ItemContext(it["answer"], it["question"], it["context"], found, stats, (), embed))
        if names is not None and cols != names:
            raise InputError("the decisions' features differ from the ranker's; rebuild with `coe rank train`")
        y = np.array([labels.get(c.key, UNLABELLED) for c in pool])
        if len(set(y.tolist())) < 2:
            continue
        for _ in range(REPEAT):
            xs.append(x)
            ys.append(y)
            groups.append(len(y))
    if not xs:
        return np.zeros((0, len(names or []))), np.zeros(0), [], len(items)
    return np.vstack(xs), np.concatenate(ys), groups, len(items)
