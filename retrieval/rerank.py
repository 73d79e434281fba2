"""Stage 3 of retrieval as array operations: fused scores of every candidate at once, then the greedy MMR
choice of ``k`` with one vector step per pick.

The arithmetic is the per-candidate formula's, operation by operation in float64, and the dot products are
``np.vecdot``'s (the same BLAS dot that ``np.dot`` of two vectors calls, bit for bit, where a matrix product
would sum in another order): the scores, their ties and so the chosen exemplars are exactly those of a loop
over the candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .answer_types import answer_type, compatible
from .exemplars import Exemplar
from .index import FIELDS, IMAGE_FIELD
from .memory_bank import collection_rows


@dataclass
class Scored:
    """The candidates that passed, one entry per row of each array."""

    bank: np.ndarray  # str
    ids: np.ndarray  # str
    score: np.ndarray  # float64, rounded to 4 places as the exemplars carry it
    key: np.ndarray  # normalised (question, answer): equal keys are one exemplar
    qvecs: np.ndarray  # question vectors (rows of zeros where qhave is False)
    qhave: np.ndarray  # bool
    meta: np.ndarray  # object: each candidate's metadata dict
    sims: dict[str, np.ndarray] = field(default_factory=dict)  # per field, NaN where the field lacks it

    @classmethod
    def concat(cls, parts: list[Scored]) -> Scored:
        parts = [p for p in parts if len(p.ids)]
        if not parts:
            empty = np.zeros(0, dtype=str)
            return cls(
                empty,
                empty,
                np.zeros(0),
                np.zeros(0, dtype=object),
                np.zeros((0, 0), np.float32),
                np.zeros(0, dtype=bool),
                np.zeros(0, dtype=object),
            )
        fields = list(dict.fromkeys(f for p in parts for f in p.sims))
        width = max(p.qvecs.shape[1] for p in parts)
        return cls(
            np.concatenate([p.bank for p in parts]),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.key for p in parts]),
            np.concatenate([_pad(p.qvecs, width) for p in parts]),
            np.concatenate([p.qhave for p in parts]),
            np.concatenate([p.meta for p in parts]),
            {f: np.concatenate([p.sims.get(f, np.full(len(p.ids), np.nan)) for p in parts]) for f in fields},
        )

    def exemplar(self, i: int) -> Exemplar:
        signals = {f: round(float(v[i]), 4) for f, v in self.sims.items() if not np.isnan(v[i])}
        return Exemplar.from_metadata(str(self.ids[i]), self.meta[i]).model_copy(
            update={"score": float(self.score[i]), "signals": signals, "bank": str(self.bank[i])}
        )


def _pad(mat: np.ndarray, width: int) -> np.ndarray:
    return mat if mat.shape[1] == width else np.zeros((len(mat), width), dtype=np.float32)


def score_candidates(
    retriever, bank: str, candidates: set[str], vectors: dict[str, np.ndarray], weights: dict[str, float], q
) -> Scored:
    """Fused score of each of one bank's candidates: the weighted signals at or above their floors summed
    field by field, over the weights' total, times the type penalty for an answer of another kind, plus the
    subject and grade bonuses; candidates of an excluded split or under ``min_score`` are dropped."""
    s = retriever.settings
    store = retriever.views[bank]
    ids = np.array(sorted(candidates), dtype=str)
    meta, meta_rows = collection_rows(store, f"{bank}-answer", ids)
    keep = meta_rows >= 0
    at = np.where(keep, meta_rows, 0)
    if q.exclude_splits and len(meta.ids):
        keep &= ~np.isin(meta.splits[at], list(q.exclude_splits))
    sims: dict[str, np.ndarray] = {}
    floors: dict[str, np.ndarray | float] = {}
    qvecs, qhave = np.zeros((len(ids), 0), dtype=np.float32), np.zeros(len(ids), dtype=bool)
    for name in FIELDS + ((IMAGE_FIELD,) if IMAGE_FIELD in vectors else ()):
        if name not in vectors and name != "question":
            continue
        col, rows = collection_rows(store, f"{bank}-{name}", ids)
        have = rows >= 0
        if not len(col.ids):
            have[:] = False
            mat = np.zeros((len(ids), 0), dtype=np.float32)
        else:
            mat = col.vectors[np.where(have, rows, 0)]
        if name == "question":
            qvecs, qhave = mat, have
        if name in vectors:
            dots = (
                np.vecdot(mat, np.asarray(vectors[name], dtype=np.float32))
                if mat.shape[1]
                else np.zeros(len(ids), dtype=np.float32)
            )
            sims[name] = np.where(have, dots.astype(np.float64), np.nan)
            floors[name] = retriever.settings.floor(name)
            if name == IMAGE_FIELD and len(col.ids):
                text_tower = col.columns["modality"][np.where(have, rows, 0)] == "text"
                floors[name] = np.where(text_tower, retriever.settings.floor(name, True), floors[name])
    fused = np.zeros(len(ids))
    for name, v in sims.items():
        if name in weights:
            fused = fused + np.where(v >= floors[name], weights[name] * v, 0.0)
    score = fused / sum(weights.values())
    if len(meta.ids):
        cols = {c: meta.columns[c][at] for c in ("answer_type", "subject", "grade", "key")}
        metas = meta.meta_array[at]
    else:
        cols = {c: np.full(len(ids), "", dtype=object) for c in ("answer_type", "subject", "grade", "key")}
        metas = np.full(len(ids), None, dtype=object)
    want = answer_type(q.answer)
    fits = [t for t in set(cols["answer_type"].tolist()) if compatible(want, t)]
    score = np.where(np.isin(cols["answer_type"], fits), score, score * s.type_penalty)
    if q.subject:
        score = score + np.where(cols["subject"] == q.subject, s.metadata_bonus, 0.0)
    if q.grade:
        score = score + np.where(cols["grade"] == q.grade, s.metadata_bonus, 0.0)
    keep &= score >= s.min_score
    # Python's round is correctly rounded; np.round scales first and can land one step off
    rounded = np.array([round(x, 4) for x in score[keep].tolist()], dtype=np.float64)
    return Scored(
        bank=np.full(int(keep.sum()), bank),
        ids=ids[keep],
        score=rounded,
        key=cols["key"][keep],
        qvecs=qvecs[keep],
        qhave=qhave[keep],
        meta=metas[keep],
        sims={f: v[keep] for f, v in sims.items()},
    )


def diversify(scored: Scored, k: int, diversity: float) -> list[Exemplar]:
    """Greedy MMR over question embeddings, best score first (ties: bank, then id): each pick is the best of
    the first ``4k + picked`` remaining candidates by score minus ``diversity`` times its largest (positive)
    question similarity to a pick; an exact (question, answer) repeat of a pick leaves the pool, across
    banks too."""
    pool = np.lexsort((scored.ids, scored.bank, -scored.score))
    chosen: list[int] = []
    while len(pool) and len(chosen) < k:
        window = pool[: 4 * k + len(chosen)]
        val = scored.score[window]
        with_vec = [c for c in chosen if scored.qhave[c]]
        if with_vec:
            dots = np.vecdot(scored.qvecs[window][:, None, :], scored.qvecs[with_vec][None, :, :])
            redundancy = np.where(scored.qhave[window], np.maximum(dots.astype(np.float64).max(axis=1), 0.0), 0.0)
            val = val - diversity * redundancy
        best = int(window[int(np.argmax(val))])
        chosen.append(best)
        pool = pool[scored.key[pool] != scored.key[best]]
    return [scored.exemplar(i) for i in chosen]
