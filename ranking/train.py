"""Training the rankers: LightGBM lambdarank, one group per bank item.

Distractors: label 1 for a gold distractor (2 for a reviewer's positive, see ``decisions``). Questions: label
2 for the gold question, 1 for another wording of its template. Train items are the bank's ``train``
split, with the bank's counts and retrieval leaving the item itself out; val items (the ``val`` split)
early-stop and measure it against a bank without them, as at evaluation time. Test-split records are
dropped before anything else. Fixed seed, one thread and LightGBM's deterministic mode: two builds from
the same bank write byte-identical files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from coe.agents.validation import clean_option, normalize
from coe.atomic import write_text
from coe.errors import InputError
from coe.retrieval.retriever import RetrievalQuery

from .bank import BankStats
from .candidates import SOURCES, build_pool, coverage
from .features import ItemContext, features
from .model import RANKER_VERSION, paths
from .questions import QUESTION_SOURCES, question_features, question_pool
from .templates import template_mask

SEED = 7
POOL_K = 10  # exemplars retrieved per item, as the graph's pool_k
MAX_TRAIN_ITEMS = 4000  # enough for a few dozen features, within the 10-minute budget on 2 cores
MAX_VAL_ITEMS = 1000
EXCLUDE = ["val", "test"]  # what retrieval may not return while training: the bank is train alone
PARAMS: dict[str, Any] = dict(
    objective="lambdarank",
    n_estimators=400,
    learning_rate=0.05,
    num_leaves=31,
    min_child_samples=20,
    subsample=1.0,
    colsample_bytree=1.0,
    reg_lambda=1.0,
    random_state=SEED,
    n_jobs=1,
    deterministic=True,
    force_row_wise=True,
    verbose=-1,
    label_gain=[0, 1, 3],
)
Progress = Callable[[str, int, int], None]


class Rows:
    """One task's training rows, item by item."""

    def __init__(self, sources: tuple[str, ...]):
        self.x: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.ids: list[str] = []
        self.gold: list[int] = []
        self.cov = {s: 0.0 for s in (*sources, "union", "gold", "candidates")}
        self.sources = sources
        self.names: list[str] = []

    def stacked(self):
        keep = [i for i, y in enumerate(self.y) if len(y) and y.max() > 0]  # groups without a positive teach nothing
        x = np.vstack([self.x[i] for i in keep]) if keep else np.zeros((0, len(self.names)))
        y = np.concatenate([self.y[i] for i in keep]) if keep else np.zeros(0)
        return x, y, [len(self.y[i]) for i in keep]

    def coverage(self) -> dict[str, float]:
        g = max(self.cov["gold"], 1.0)
        out = {s: round(self.cov[s] / g, 4) for s in (*self.sources, "union")}
        out["candidates_per_item"] = round(self.cov["candidates"] / max(len(self.ids), 1), 2)
        return out


# fewer items than this teach a ranker nothing it can be trusted with (and LightGBM refuses empty data)
MIN_TRAIN_ITEMS = 20


class TooFewItems(InputError):
    """The bank is too small to train a ranker on: the heuristic ranking serves it."""


def require_items(task: str, n: int) -> None:
    if n < MIN_TRAIN_ITEMS:
        raise TooFewItems(
            f"the bank has {n} train items with candidates for the {task} ranker, fewer than "
            f"{MIN_TRAIN_ITEMS}: no ranker is trained and the heuristic ranking is used"
        )


def _key(text: str) -> str:
    return normalize(clean_option(text))


def distractor_item(ex, retriever, stats: BankStats, embed):
    found, _ = retriever.retrieve(
        RetrievalQuery(
            answer=ex.answer, question=ex.question, context=ex.context, exclude_ids=[ex.id], exclude_splits=EXCLUDE
        ),
        k=POOL_K,
    )
    pool = build_pool(ex.answer, ex.question, ex.context, found, stats, exclude_ids=(ex.id,))
    x, names = features(pool, ItemContext(ex.answer, ex.question, ex.context, found, stats, (ex.id,), embed))
    gold = {k for k in (_key(d) for d in ex.distractors) if k and k != _key(ex.answer)}
    y = np.array([c.key in gold for c in pool], float)
    return x, names, y, len(gold), coverage(pool, list(gold)), len(pool)


def question_item(ex, retriever, stats: BankStats, embed):
    found, _ = retriever.retrieve(
        RetrievalQuery(answer=ex.answer, context=ex.context, exclude_ids=[ex.id], exclude_splits=EXCLUDE), k=POOL_K
    )
    pool = question_pool(ex.answer, ex.context, found, stats, exclude_ids=(ex.id,))
    x, names = question_features(pool, ItemContext(ex.answer, "", ex.context, found, stats, (ex.id,), embed))
    gold, mask = normalize(ex.question), template_mask(ex.question, ex.answer)
    y = np.array([2.0 if c.key == gold else 1.0 if template_mask(c.text, ex.answer) == mask else 0.0 for c in pool])
    hit = [c for c in pool if c.key == gold]
    cov = {s: float(any(s in c.sources for c in hit)) for s in QUESTION_SOURCES}
    cov.update(union=float(bool(hit)), gold=1.0)
    return x, names, y, 1, cov, len(pool)


def collect(
    task: str,
    records: list,
    retriever,
    stats: BankStats,
    embed,
    *,
    progress: Progress | None = None,
    label: str = "items",
) -> Rows:
    item = distractor_item if task == "distractors" else question_item
    rows = Rows(SOURCES if task == "distractors" else QUESTION_SOURCES)
    for n, ex in enumerate(records):
        x, names, y, n_gold, cov, size = item(ex, retriever, stats, embed)
        rows.names = names
        for k, v in cov.items():
            rows.cov[k] += v
        rows.cov["candidates"] += size
        rows.ids.append(ex.id)
        rows.x.append(x)
        rows.y.append(y)
        rows.gold.append(n_gold)
        if progress and (n % 25 == 0 or n == len(records) - 1):
            progress(label, n + 1, len(records))
    return rows


def evaluate(rows: Rows, scores: list[np.ndarray]) -> dict[str, float]:
    """NDCG@3 over items with a positive candidate; recall@n: positives in the top n (n = the item's gold
    count) over every gold option, found by the pool or not; the oracle: the best any order could do; and
    for questions the top candidate's exact and near template accuracy."""
    ndcg, hit, oracle, gold, exact, near = [], 0.0, 0.0, 0, 0.0, 0.0
    for y, s, g in zip(rows.y, scores, rows.gold):
        order = np.argsort(-s, kind="stable")
        gold += g
        hit += float((y[order[:g]] > 0).sum())
        oracle += min(float((y > 0).sum()), g)
        if len(y):
            exact += float(y[order[0]] == 2)
            near += float(y[order[0]] >= 1)
        if y.max(initial=0) > 0:
            k = min(3, len(y))
            disc = np.log2(np.arange(2, 2 + k))
            ndcg.append(float(((2 ** y[order[:k]] - 1) / disc).sum() / ((2 ** np.sort(y)[::-1][:k] - 1) / disc).sum()))
    out = {
        "ndcg@3": round(float(np.mean(ndcg)) if ndcg else 0.0, 4),
        "recall@n": round(hit / max(gold, 1), 4),
        "oracle_recall@n": round(oracle / max(gold, 1), 4),
    }
    if rows.sources == QUESTION_SOURCES:
        out.update(
            {
                "template_exact@1": round(exact / max(len(rows.y), 1), 4),
                "template_near@1": round(near / max(len(rows.y), 1), 4),
            }
        )
    return out


def digest(x: np.ndarray, y: np.ndarray, groups: list[int]) -> str:
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(np.asarray(groups, dtype=np.int64).tobytes())
    return h.hexdigest()


def fit(train: Rows, val: Rows, extra: tuple[np.ndarray, np.ndarray, list[int]] | None = None):
    """LightGBM's lambdarank (what ``LGBMRanker`` wraps) through ``lgb.train``, which needs no scikit-learn;
    early-stopped on val NDCG@3. Returns the booster, its best iteration and the training data's digest."""
    import lightgbm as lgb

    require_items(
        "distractors" if train.sources == SOURCES else "questions", sum(1 for y in train.y if len(y) and y.max() > 0)
    )
    x, y, groups = train.stacked()
    if extra is not None and len(extra[1]):
        x, y, groups = np.vstack([x, extra[0]]), np.concatenate([y, extra[1]]), groups + list(extra[2])
    params = {k: v for k, v in PARAMS.items() if k != "n_estimators"}
    params.update(metric="ndcg", eval_at=[3])
    data = lgb.Dataset(x, y, group=groups, feature_name=train.names, free_raw_data=False)
    vx, vy, vg = val.stacked()
    callbacks: list[Callable[..., Any]] = []
    valid: list[lgb.Dataset] = []
    if len(vy):
        valid = [lgb.Dataset(vx, vy, group=vg, reference=data)]
        callbacks = [lgb.early_stopping(30, verbose=False)]
    booster = lgb.train(params, data, num_boost_round=PARAMS["n_estimators"], valid_sets=valid, callbacks=callbacks)
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    return booster, best, digest(x, y, groups)


def save(task: str, directory: Path, booster, best: int, meta: dict[str, Any]) -> None:
    """The model text and its metadata, each written atomically; the checksum ties them together."""
    text = booster.model_to_string(num_iteration=best)
    model_path, meta_path = paths(task, directory)
    importance = booster.feature_importance(importance_type="gain", iteration=best)
    meta = {
        **meta,
        "version": RANKER_VERSION,
        "task": task,
        "model_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "best_iteration": int(best),
        "params": dict(PARAMS),
        "importance": {
            n: round(float(v), 3) for n, v in sorted(zip(meta["features"], importance), key=lambda kv: (-kv[1], kv[0]))
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    write_text(model_path, text)
    write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True))


def split_records(records: list) -> tuple[list, list]:
    """Train and val records (never test): the bank's own splits, or (a bank without them) a fixed tenth by
    id digest as val."""
    records = [r for r in records if r.split != "test"]
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    if not train:
        rest = [r for r in records if r.split != "val"]
        val = val + [r for r in rest if int(hashlib.sha256(r.id.encode()).hexdigest(), 16) % 10 == 0]
        train = [r for r in rest if r not in val]
    return train, val


def sample(records: list, limit: int) -> list:
    """A deterministic spread of ``limit`` records: by a digest of the id, not the bank's order."""
    keyed = sorted(records, key=lambda r: hashlib.sha256(r.id.encode()).hexdigest())
    return sorted(keyed[:limit], key=lambda r: r.id)


def train_task(
    task: str,
    retriever,
    directory: Path,
    train_recs: list,
    val_recs: list,
    stats: BankStats,
    embed,
    *,
    extra=None,
    progress: Progress | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    train_rows = collect(
        task, train_recs, retriever, stats, embed, progress=progress, label=f"{task} ranker: train items"
    )
    val_rows = collect(task, val_recs, retriever, stats, embed, progress=progress, label=f"{task} ranker: val items")
    booster, best, data_digest = fit(train_rows, val_rows, extra)
    scores = [booster.predict(x, num_iteration=best, num_threads=1) if len(x) else np.zeros(0) for x in val_rows.x]
    baseline_col = "ex_heuristic" if task == "distractors" else "support"
    baseline = [x[:, train_rows.names.index(baseline_col)] if len(x) else np.zeros(0) for x in val_rows.x]
    out = {
        **(meta or {}),
        "features": train_rows.names,
        "training_digest": data_digest,
        "train_items": len(train_rows.ids),
        "val_items": len(val_rows.ids),
        "train_ids_digest": hashlib.sha256("\n".join(train_rows.ids).encode()).hexdigest(),
        "val": {
            **evaluate(val_rows, scores),
            "heuristic": evaluate(val_rows, baseline),
            "coverage": val_rows.coverage(),
        },
    }
    save(task, directory, booster, best, out)
    return {**out, "train_ids": train_rows.ids}
