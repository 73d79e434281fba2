"""The run ledger: one SQLite file (WAL) in the run folder holding every row's state, input digest, output
and review decision.

Each finished item is written in its own transaction, so a run killed at any moment (``kill -9``, a full
disk, Ctrl-C) leaves every item either recorded whole or not at all; running ``coe batch run`` again
writes the missing ones and nothing twice (the row id is the primary key). Exports and the console read
the items from here, so there is no second copy of them to disagree with.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coe.errors import ConfigError, InputError

from .manifest import Row, RowError

LEDGER_NAME = "ledger.sqlite"
SCHEMA_VERSION = "1"
STATES = ("pending", "done", "failed", "invalid")
DECISIONS = ("accepted", "rejected")
EDITABLE = ("question", "answer", "distractors", "rationale", "distractor_notes")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    line INTEGER NOT NULL,
    digest TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'invalid')),
    input TEXT,
    output TEXT,
    error TEXT,
    status TEXT,
    seconds REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    decision TEXT CHECK (decision IN ('accepted', 'rejected') OR decision IS NULL),
    edited TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_state ON items (state, position);
"""


def state_error(exc: sqlite3.Error, where: Path) -> ConfigError:
    """A storage failure in words: which folder, and what to do about it."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return ConfigError(
            f"cannot write the run ledger in {where}: the folder is read-only or missing; "
            "choose a writable --out folder"
        )
    if "disk is full" in text or "disk i/o" in text:
        return ConfigError(
            f"cannot write the run ledger in {where}: the disk is full (or failing); free space "
            "and run the same command again to continue (finished items are kept)"
        )
    if "locked" in text or "busy" in text:
        return ConfigError(f"the run ledger in {where} is busy: another coe batch run is writing this run")
    return ConfigError(f"the run ledger in {where} cannot be used: {exc}")


class Ledger:
    """The ledger of the run in ``run_dir``; ``create=False`` opens an existing run only."""

    def __init__(self, run_dir: str | Path, *, create: bool = True) -> None:
        self.run_dir = Path(run_dir).expanduser().resolve()
        self.path = self.run_dir / LEDGER_NAME
        if not create and not self.path.is_file():
            raise InputError(f"no batch run in {self.run_dir} (no {LEDGER_NAME}); start one with coe batch run")
        try:
            if create:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a finished item is on disk before the next one starts, even if the machine stops
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except OSError as exc:
            raise ConfigError(f"cannot create the run folder {self.run_dir}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise state_error(exc, self.run_dir) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise state_error(exc, self.run_dir) from None

    # --- the run ------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self._db.execute("SELECT key, value FROM meta")}

    def begin(self, *, manifest: str, settings: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
        """Start the run, or check that a resumed one keeps its settings (items from two settings in one
        run would not be one batch). ``defaults``: the value of a setting a run started before the setting
        existed was made with."""
        meta = self.meta()
        if meta:
            stored = {**(defaults or {}), **meta.get("settings", {})}
            if stored != settings:
                changed = sorted(k for k in set(settings) | set(stored) if settings.get(k) != stored.get(k))
                raise InputError(
                    f"the run in {self.run_dir} was started with other settings "
                    f"({', '.join(changed)}); run it with the same options or choose a new --out"
                )
            return
        with self._write() as db:
            for key, value in (
                ("schema", SCHEMA_VERSION),
                ("manifest", manifest),
                ("settings", settings),
                ("created", time.time()),
            ):
                db.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def sync(self, rows: list[Row], errors: list[RowError]) -> dict[str, int]:
        """Bring the manifest's rows in: new rows become pending, a done row whose input changed is redone,
        bad rows are recorded with their error. Returns how many rows were added and redone."""
        added = redone = 0
        now = time.time()
        with self._write() as db:
            known = {r["id"]: r for r in db.execute("SELECT id, digest, state FROM items")}
            entries = sorted([(r.line, r) for r in rows] + [(e.line, e) for e in errors], key=lambda x: x[0])
            for position, (line, entry) in enumerate(entries):
                old = known.get(entry.id)
                if isinstance(entry, RowError):
                    if old is None or old["state"] == "invalid":
                        db.execute(
                            "INSERT OR REPLACE INTO items (id, position, line, state, error, updated) "
                            "VALUES (?, ?, ?, 'invalid', ?, ?)",
                            (entry.id, position, line, entry.error, now),
                        )
                    continue
                digest = entry.digest()
                if old is not None and old["digest"] == digest:
                    db.execute("UPDATE items SET position = ?, line = ? WHERE id = ?", (position, line, entry.id))
                    continue
                if old is not None and old["state"] != "invalid":
                    redone += 1
                else:
                    added += 1
                db.execute(
                    "INSERT OR REPLACE INTO items (id, position, line, digest, state, input, updated) "
                    "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (entry.id, position, line, digest, entry.model_dump_json(), now),
                )
        return {"added": added, "redone": redone}

    def todo(self, *, retry_failed: bool = False) -> list[Row]:
        states = ("pending", "failed") if retry_failed else ("pending",)
        marks = ", ".join("?" * len(states))
        return [
            Row.model_validate_json(r["input"])
            for r in self._db.execute(f"SELECT input FROM items WHERE state IN ({marks}) ORDER BY position", states)
        ]

    def record_done(self, row_id: str, item: dict[str, Any], *, seconds: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = 'done', output = ?, status = ?, error = NULL, seconds = ?, "
                "attempts = attempts + 1, decision = NULL, edited = NULL, updated = ? WHERE id = ?",
                (json.dumps(item, ensure_ascii=False), item.get("status"), seconds, time.time(), row_id),
            )

    def record_failed(self, row_id: str, error: str, *, seconds: float = 0.0) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = 'failed', error = ?, seconds = ?, attempts = attempts + 1, "
                "updated = ? WHERE id = ?",
                (error, seconds, time.time(), row_id),
            )

    # --- reading ------------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (*STATES, "verified", "unconfirmed", "flagged", "unverified", *DECISIONS)}
        for r in self._db.execute(
            "SELECT state, status, decision, COUNT(*) AS n FROM items GROUP BY state, status, decision"
        ):
            out[r["state"]] += r["n"]
            if r["state"] == "done":
                out[r["status"] or "unverified"] += r["n"]
                if r["decision"]:
                    out[r["decision"]] += r["n"]
        out["total"] = sum(out[s] for s in STATES)
        return out

    def entries(self, *, states: tuple[str, ...] = STATES) -> list[dict[str, Any]]:
        """Every row (in manifest order) as a dict: id, line, state, status, error, decision, seconds, tags,
        input, and ``item`` — the written item with the reviewer's edits applied (None when not done)."""
        marks = ", ".join("?" * len(states))
        return [
            self._entry(r)
            for r in self._db.execute(f"SELECT * FROM items WHERE state IN ({marks}) ORDER BY position", states)
        ]

    def entry(self, row_id: str) -> dict[str, Any] | None:
        """One row as ``entries`` gives it, or None when the run has no such row."""
        r = self._db.execute("SELECT * FROM items WHERE id = ?", (row_id,)).fetchone()
        return self._entry(r) if r is not None else None

    def failures(self) -> list[dict[str, Any]]:
        """The rows without an item: id, line, state (failed or invalid) and error."""
        return [
            {"id": r["id"], "line": r["line"], "state": r["state"], "error": r["error"]}
            for r in self._db.execute(
                "SELECT id, line, state, error FROM items WHERE state IN ('failed', 'invalid') ORDER BY position"
            )
        ]

    @staticmethod
    def _entry(r: sqlite3.Row) -> dict[str, Any]:
        row = Row.model_validate_json(r["input"]) if r["input"] else None
        item = json.loads(r["output"]) if r["output"] and r["state"] == "done" else None
        if item is not None and r["edited"]:
            item.update(json.loads(r["edited"]))
        return {
            "id": r["id"],
            "line": r["line"],
            "state": r["state"],
            "status": r["status"],
            "error": r["error"],
            "decision": r["decision"],
            "seconds": r["seconds"],
            "attempts": r["attempts"],
            "tags": row.tags if row else [],
            "input": row.graph_input() if row else None,
            "item": item,
            "edited": sorted(json.loads(r["edited"])) if r["edited"] else [],
        }

    # --- review -------------------------------------------------------------------------------------------

    def _done(self, row_id: str) -> sqlite3.Row:
        r = self._db.execute("SELECT state, output, edited FROM items WHERE id = ?", (row_id,)).fetchone()
        if r is None:
            raise InputError(f"no item {row_id!r} in the run {self.run_dir}")
        if r["state"] != "done":
            raise InputError(f"the item {row_id!r} has no output to review ({r['state']})")
        return r

    def decide(self, row_id: str, decision: str | None) -> None:
        """Accept, reject, or (None) undecide one written item."""
        if decision is not None and decision not in DECISIONS:
            raise InputError(f"a decision is one of {', '.join(DECISIONS)}")
        self._done(row_id)
        with self._write() as db:
            db.execute("UPDATE items SET decision = ?, updated = ? WHERE id = ?", (decision, time.time(), row_id))

    def accept_verified(self) -> int:
        """Accept every verified item nobody has decided on yet; returns how many."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE items SET decision = 'accepted', updated = ? WHERE state = 'done' "
                "AND status = 'verified' AND decision IS NULL",
                (time.time(),),
            )
            return cur.rowcount

    def edit(self, row_id: str, fields: dict[str, Any]) -> None:
        """Keep a reviewer's changes beside the written item (the model's own output stays as it was)."""
        bad = sorted(set(fields) - set(EDITABLE))
        if bad:
            raise InputError(f"cannot edit {bad[0]!r}; editable fields: {', '.join(EDITABLE)}")
        r = self._done(row_id)
        edited = {**json.loads(r["edited"] or "{}"), **fields}
        with self._write() as db:
            db.execute(
                "UPDATE items SET edited = ?, updated = ? WHERE id = ?",
                (json.dumps(edited, ensure_ascii=False), time.time(), row_id),
            )

    def replace_item(self, row_id: str, item: dict[str, Any]) -> None:
        """A regenerated item (e.g. new distractors) in place of the written one; the decision is reset."""
        self._done(row_id)
        with self._write() as db:
            db.execute(
                "UPDATE items SET output = ?, status = ?, edited = NULL, decision = NULL, updated = ? WHERE id = ?",
                (json.dumps(item, ensure_ascii=False), item.get("status"), time.time(), row_id),
            )
