"""``coe batch run``: every pending row of a manifest through the compiled graph, each finished item kept
in the run ledger the moment it is done.

The rows go through ``graph.batch_as_completed`` (``coe.graphs.many_items.iter_items``), the same compiled
graph ``coe generate`` invokes; batching the model calls is the backend's business. ``engine="ray"``
spreads the rows over a Ray cluster (``batch.engines.ray``); either way only this process writes the
ledger, so its exactly-once semantics do not depend on the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from coe.errors import InputError

from .ledger import Ledger
from .manifest import Row, read_manifest

ENGINES = ("local", "ray")


@dataclass
class Summary:
    run_dir: Path
    total: int = 0
    done: int = 0
    failed: int = 0
    invalid: int = 0
    flagged: int = 0
    verified: int = 0
    written_now: int = 0
    failed_now: int = 0
    seconds: float = 0.0
    added: int = 0
    redone: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds_per_item(self) -> float | None:
        n = self.written_now + self.failed_now
        return self.seconds / n if n else None


def item_record(row: Row, out: dict[str, Any], *, k: int, model: str) -> tuple[dict[str, Any], float]:
    """The stored item for one graph result, and the seconds its steps took."""
    from coe.generate import mcq_from_output

    seconds = sum(float(t.get("seconds") or 0.0) for t in out.get("trace", []))
    item = mcq_from_output(out, k=k, image=row.image_path, model=model, seconds=seconds)
    return item.model_dump(mode="json"), seconds


def _local(
    rows: list[Row],
    services_factory: Callable[[], Any],
    settings: dict[str, Any],
    max_concurrency: int | None,
    on_result: Callable[[Row, dict[str, Any]], None],
) -> None:
    from coe.graphs.many_items import iter_items

    services = services_factory()
    if max_concurrency is None and not getattr(services.llm, "native_batching", False):
        # a model server takes its client's concurrency; an in-process model (llama.cpp) computes one
        # request at a time, and running items one after another keeps each finished item early in the ledger
        max_concurrency = getattr(services.llm, "max_concurrency", None) or 1
    inputs = [r.graph_input() for r in rows]
    try:
        for i, out in iter_items(inputs, services, max_concurrency=max_concurrency, **settings):
            on_result(rows[i], out)
    except KeyboardInterrupt:
        # items already running stop at their next token instead of finishing unseen
        cancel = getattr(services.llm, "cancel", None)
        if callable(cancel):
            cancel()
        raise


def run_batch(
    manifest: str | Path,
    run_dir: str | Path,
    *,
    model: str | None = None,
    settings: dict[str, Any] | None = None,
    max_concurrency: int | None = None,
    retry_failed: bool = False,
    engine: str = "local",
    address: str | None = None,
    workers: int = 2,
    banks: tuple[str, ...] = ("default",),
    services_factory: Callable[[], Any] | None = None,
    runtime_env: dict[str, Any] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
    allow_outside: bool = False,
) -> Summary:
    """Write the items a manifest asks for into ``run_dir``; a second call continues an interrupted run.
    ``allow_outside``: rows may name pictures outside the manifest's folder.

    ``settings`` are ``GraphSettings`` fields (kept in the ledger: a rerun must use the same ones; each
    row's ``n_distractors`` is its own). ``services_factory`` builds the models (default:
    ``default_services(model)``; each Ray worker calls it once). ``on_start(todo, total)`` and
    ``on_item(entry)`` report progress."""
    from coe.graphs.services import default_services
    from coe.graphs.settings import check_settings

    if engine not in ENGINES:
        raise InputError(f"--engine must be one of: {', '.join(ENGINES)}")
    settings = dict(settings or {})
    k = check_settings(settings).k
    rows, errors = read_manifest(manifest, allow_outside=allow_outside)
    summary = Summary(run_dir=Path(run_dir).expanduser().resolve())
    with Ledger(run_dir) as ledger:
        recorded = {"model": model, "banks": list(banks), **settings}
        ledger.begin(
            manifest=str(Path(manifest).expanduser().resolve()), settings=recorded, defaults={"banks": ["default"]}
        )
        summary.__dict__.update(ledger.sync(rows, errors))
        todo = ledger.todo(retry_failed=retry_failed)
        if on_start:
            on_start(len(todo), len(rows) + len(errors))
        factory = services_factory or partial(default_services, model, tuple(banks))

        def on_result(row: Row, out: dict[str, Any]) -> None:
            if "error" in out:  # the graph raised a CoeError for this row
                ledger.record_failed(row.id, str(out["error"]))
                summary.failed_now += 1
                entry = {"id": row.id, "state": "failed", "error": str(out["error"])}
            else:
                record, seconds = item_record(row, out, k=k, model=model or "")
                ledger.record_done(row.id, record, seconds=seconds)
                summary.written_now += 1
                entry = {"id": row.id, "state": "done", "status": record["status"]}
            if on_item:
                on_item(entry)

        t0 = time.perf_counter()
        try:
            if todo and engine == "local":
                _local(todo, factory, settings, max_concurrency, on_result)
            elif todo:
                from .engines.ray import run_on_ray

                run_on_ray(
                    todo,
                    factory,
                    settings,
                    on_result,
                    address=address,
                    workers=workers,
                    max_concurrency=max_concurrency,
                    runtime_env=runtime_env,
                )
        finally:
            summary.seconds = time.perf_counter() - t0
            counts = ledger.counts()
            summary.total, summary.done, summary.failed = counts["total"], counts["done"], counts["failed"]
            summary.invalid, summary.flagged = counts["invalid"], counts["flagged"]
            summary.verified = counts["verified"]
            summary.failures = ledger.failures()
    return summary
