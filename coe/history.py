"""A local store of past runs: one JSON file per run under ``coe_home()/traces``.

``coe generate`` and the ``coe ui`` console both record here, so each can list and reopen the
other's runs. Files are written atomically (a temporary file in the same folder, then
``os.replace``), so a reader never sees half a file and concurrent writers of different runs never
touch each other's files.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coe.atomic import write_text
from coe.errors import InputError
from coe.paths import coe_home

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8,32}$")
SUMMARY_KEYS = ("run_id", "created", "updated", "source", "status", "answer", "question", "model", "variant")


def traces_dir() -> Path:
    return coe_home() / "traces"


def new_run_id() -> str:
    """Sortable by time, unique across processes: ``20250101T120000Z-<hex>``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def _path(run_id: str, root: Path | None = None) -> Path:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise InputError(f"not a run id: {run_id!r}")
    return (root or traces_dir()) / f"{run_id}.json"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def save_run(record: dict[str, Any], *, root: Path | None = None) -> str:
    """Write (or replace) one run; returns its id. ``record`` should hold ``item``, ``trace``,
    ``inputs``, ``settings``, ``source`` and ``status``; a ``run_id`` is made when absent."""
    record = dict(record)
    run_id = record.setdefault("run_id", new_run_id())
    path = _path(run_id, root)
    record.setdefault("created", now())
    record["updated"] = now()
    item = record.get("item") or {}
    record.setdefault("answer", item.get("answer") or (record.get("inputs") or {}).get("answer"))
    record.setdefault("question", item.get("question"))
    record.setdefault("model", item.get("model"))
    write_text(path, json.dumps(record, ensure_ascii=False, indent=1, default=str))
    return run_id


def load_run(run_id: str, *, root: Path | None = None) -> dict[str, Any]:
    path = _path(run_id, root)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"no such run: {run_id}") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"run {run_id} is unreadable ({exc})") from exc


def list_runs(*, limit: int = 200, root: Path | None = None) -> list[dict[str, Any]]:
    """Summaries of the newest runs first (unreadable files are skipped)."""
    folder = root or traces_dir()
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.glob("*.json") if _RUN_ID.match(p.stem)), reverse=True)
    out = []
    for p in files[:limit]:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append({k: data.get(k) for k in SUMMARY_KEYS} | {"run_id": p.stem})
    return out


def record_item(
    item: dict[str, Any],
    *,
    source: str,
    inputs: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    status: str = "done",
    run_id: str | None = None,
    variant: str | None = None,
    error: str | None = None,
    root: Path | None = None,
) -> str:
    """Record a finished (or failed) item; its ``trace`` is stored beside it, not inside it."""
    item = dict(item)
    trace = item.pop("trace", [])
    record: dict[str, Any] = {
        "source": source,
        "status": status,
        "inputs": inputs or {},
        "settings": settings or {},
        "variant": variant,
        "item": item,
        "trace": trace,
    }
    if error:
        record["error"] = error
    if run_id:
        record["run_id"] = run_id
    return save_run(record, root=root)
