"""The ranker files beside the exemplar index: where they live, loading with checks, scoring.

A missing, old or damaged file is never a crash: ``load`` returns ``None`` with a one-line reason, the
caller uses the heuristic and records the reason in its trace."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from coe.paths import coe_home

RANKER_VERSION = 3  # 3: WordNet sister terms join the pool
TASKS = ("distractors", "questions")
log = logging.getLogger("coe.ranking")


def ranker_dir(banks: list[str] | tuple[str, ...] = ("default",), home: Path | None = None) -> Path:
    """``COE_HOME/rankers/<banks>``: beside the exemplar index, one set per combination of banks."""
    return (home or coe_home()) / "rankers" / "+".join(banks)


def paths(task: str, directory: Path) -> tuple[Path, Path]:
    return directory / f"{task}.lgb.txt", directory / f"{task}.json"


class Ranker:
    def __init__(self, booster, meta: dict[str, Any]):
        self.booster, self.meta = booster, meta
        self.features: list[str] = meta["features"]

    def score(self, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.zeros(0)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=float)


class RankerUnavailable(Exception):
    pass


def index_fingerprint(retriever) -> str:
    """The exemplar index a ranker is trained on (its build markers): a ranker of another index (rebuilt,
    or another bank of the same name) is out of date."""
    h = hashlib.sha256()
    for bank in retriever.banks:
        marker = retriever.raw_store.get_marker(f"index-{bank}") or {}
        h.update(f"{bank}:{marker.get('fingerprint', '')}|".encode())
    return h.hexdigest()


def read(task: str, directory: Path, features: list[str] | None = None, index: str | None = None) -> Ranker:
    """The ranker, or ``RankerUnavailable`` with a one-line reason."""
    model_path, meta_path = paths(task, directory)
    rebuild = "rebuild it with `coe rank train`"
    if not model_path.is_file() or not meta_path.is_file():
        raise RankerUnavailable(f"no {task} ranker in {directory}; `coe rank train` builds it")
    try:
        meta = json.loads(meta_path.read_text())
        text = model_path.read_text()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RankerUnavailable(f"the {task} ranker in {directory} is unreadable ({type(exc).__name__}); {rebuild}")
    if not isinstance(meta, dict) or meta.get("version") != RANKER_VERSION:
        got = meta.get("version") if isinstance(meta, dict) else None
        raise RankerUnavailable(
            f"the {task} ranker in {directory} is version {got}, this coe reads version {RANKER_VERSION}; {rebuild}"
        )
    if hashlib.sha256(text.encode()).hexdigest() != meta.get("model_sha256"):
        raise RankerUnavailable(f"the {task} ranker file {model_path} is damaged (checksum differs); {rebuild}")
    if index is not None and meta.get("index_fingerprint") != index:
        raise RankerUnavailable(f"the {task} ranker in {directory} was trained on another exemplar index; {rebuild}")
    if features is not None and meta.get("features") != features:
        raise RankerUnavailable(f"the {task} ranker in {directory} was trained on other features; {rebuild}")
    try:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=text)
    except Exception as exc:  # LightGBM raises its own error types for a bad model text
        raise RankerUnavailable(f"the {task} ranker in {directory} does not load ({exc}); {rebuild}".replace("\n", " "))
    return Ranker(booster, meta)


_LOADED: dict[tuple, tuple[Ranker | None, str | None]] = {}
_WARNED: set[str] = set()
_LOCK = threading.Lock()


def load(
    task: str, directory: Path, features: list[str] | None = None, index: str | None = None
) -> tuple[Ranker | None, str | None]:
    """The ranker (cached per file state) or ``(None, reason)``; the reason is logged once per process."""
    model_path, meta_path = paths(task, directory)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None for p in (model_path, meta_path))
    key = (task, str(directory), stamp, tuple(features or ()), index)
    with _LOCK:
        if key not in _LOADED:
            try:
                _LOADED[key] = (read(task, directory, features, index), None)
            except RankerUnavailable as exc:
                _LOADED[key] = (None, f"{exc}; the heuristic ranking is used")
        ranker, reason = _LOADED[key]
        if reason and reason not in _WARNED:
            _WARNED.add(reason)
            log.warning(reason)
    return ranker, reason


def fingerprint(directory: Path) -> str:
    """The checksums of the ranker files in ``directory`` ("none" when there are none)."""
    out = []
    for task in TASKS:
        try:
            out.append(json.loads(paths(task, directory)[1].read_text()).get("model_sha256", "?"))
        except (OSError, ValueError):
            out.append("none")
    return "+".join(out)
