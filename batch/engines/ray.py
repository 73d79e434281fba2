"""Rows over a Ray cluster: one actor per worker, each holding its own models (built once by the services
factory: a local model, or an OpenAI-compatible client of a vLLM/SGLang server, with Chroma through
``COE_CHROMA_URL``) and running the compiled graph on the rows it is sent.

Results come back to the driver, which alone writes the ledger, so a worker lost mid-row only costs that
row's work: it stays pending and the next run does it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coe.errors import ConfigError

from ..manifest import Row


class _Worker:
    def __init__(self, services_factory: Callable[[], Any], settings: dict[str, Any]) -> None:
        self.services = services_factory()
        self.settings = settings

    def run(self, graph_input: dict[str, Any]) -> dict[str, Any]:
        from coe.graphs.many_items import generate_items

        return generate_items([graph_input], self.services, **self.settings)[0]


def worker_env(runtime_env: dict[str, Any] | None) -> dict[str, Any]:
    """``runtime_env`` with this process's coe settings (``COE_*``, ``HF_HUB_OFFLINE``) added to the workers'
    environment: a worker on another node must find the same model server, Chroma server and options."""
    import os

    env = {
        k: v for k, v in os.environ.items() if k.startswith("COE_") or k in ("HF_HUB_OFFLINE", "ANONYMIZED_TELEMETRY")
    }
    runtime_env = dict(runtime_env or {})
    runtime_env["env_vars"] = {**env, **dict(runtime_env.get("env_vars") or {})}
    return runtime_env


def _connect(address: str | None, runtime_env: dict[str, Any] | None) -> bool:
    """Join the cluster at ``address`` (None: start a local one); True when this call started Ray."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'coe[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            runtime_env=worker_env(runtime_env),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return True


def run_on_ray(
    rows: list[Row],
    services_factory: Callable[[], Any],
    settings: dict[str, Any],
    on_result: Callable[[Row, dict[str, Any]], None],
    *,
    address: str | None = None,
    workers: int = 2,
    max_concurrency: int | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> None:
    """Run ``rows`` on ``workers`` actors, ``max_concurrency`` rows at a time on each (default 1; more
    when the workers send to a model server that batches), calling ``on_result`` here as each ends."""
    import ray

    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    started = _connect(address, runtime_env)
    per_worker = max(1, max_concurrency or 1)
    worker_cls = ray.remote(_Worker)
    # Any: ray types .options(...).remote(...) as a handle-or-class union, and only handles come back
    actors: list[Any] = [
        worker_cls.options(max_concurrency=per_worker).remote(services_factory, settings) for _ in range(workers)
    ]
    queue = list(range(len(rows)))
    inflight: dict[Any, tuple[int, Any]] = {}

    def submit(actor: Any) -> None:
        if queue:
            i = queue.pop(0)
            inflight[actor.run.remote(rows[i].graph_input())] = (i, actor)

    try:
        for actor in actors:
            for _ in range(per_worker):
                submit(actor)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            i, actor = inflight.pop(ready[0])
            on_result(rows[i], ray.get(ready[0]))
            submit(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
