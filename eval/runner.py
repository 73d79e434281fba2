"""Run variants over a sample, resumably: each finished item is cached by id and configuration."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coe.atomic import write_text
from coe.agents.candidates import POOL_VERSION
from coe.agents.prompting import PROMPT_VERSION
from coe.paths import coe_home
from coe.settings import settings

from .items import EvalItem
from .predict import base_variant, predict, variant_settings


def cache_root() -> Path:
    return settings().eval_cache or coe_home() / "eval-cache"


def config_id(
    task: str, split: str, variant: str, model: str, rankers: str | None = None, embedder: str | None = None
) -> str:
    from coe.graphs.settings import GraphSettings

    graph = variant_settings(variant)
    cfg = {
        "task": task,
        "split": split,
        "variant": variant,
        # every setting as the graph runs it, defaults included: a changed default is another configuration
        # ("auto" selections are resolved by the backend, whose name is in the key)
        "settings": GraphSettings(**graph).model_dump(mode="json") if graph is not None else None,
        "model": model if graph is not None else None,
        "prompts": PROMPT_VERSION,
        "pool": POOL_VERSION if graph is not None else None,
    }
    if rankers:  # a retrained ranker makes other predictions
        cfg["rankers"] = rankers
    if embedder:  # so does an index read with another encoder
        cfg["embedder"] = embedder
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    # the folder is named by the base variant; the digest tells its settings apart
    return f"{base_variant(variant)}-{digest}"


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, ensure_ascii=False))  # a crash never leaves a half-written cache entry


def image_text_for(item: EvalItem, reader, cache: Path) -> str:
    """OCR + caption of the real image when it is here, else the dataset's caption and OCR text."""
    path = cache / "image_text" / f"{item.split}-{item.pid}.json"
    if path.is_file():
        return json.loads(path.read_text())["text"]
    text = item.dataset_image_text
    if item.image_path is not None and reader is not None:
        from coe.imageio import load_image

        text = reader.describe(load_image(item.image_path), source_path=item.image_path).as_prompt_text()
    write_json(path, {"text": text})
    return text


def rankers_used(variant: str, services) -> str | None:
    """The checksums of the ranker files a variant's graph settings use (None when it uses none)."""
    graph = variant_settings(variant)
    if graph is None:
        return None
    from coe.graphs.settings import GraphSettings

    s = GraphSettings(**graph)
    # "learned" picks with them; the verified blend and keep-best question step start from them
    if not (
        "learned" in (s.pool_selection, s.question_selection)
        or (s.verify and (s.pool_selection == "blend" or s.question_exemplars))
    ):
        return None
    from coe.ranking.model import fingerprint, ranker_dir

    return fingerprint(ranker_dir(getattr(services.retriever, "banks", ["default"])))


def run_variant(
    task: str,
    variant: str,
    items: list[EvalItem],
    services,
    model: str,
    *,
    cache: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    cache = cache or cache_root()
    embedder = getattr(getattr(services.retriever, "embedder", None), "model_id", None)
    cid = config_id(task, items[0].split if items else "", variant, model, rankers_used(variant, services), embedder)
    folder = cache / task / cid
    preds: dict[str, dict] = {}
    computed = 0
    t0 = time.perf_counter()
    for n, item in enumerate(items):
        path = folder / f"{item.pid}.json"
        if path.is_file():
            preds[item.pid] = json.loads(path.read_text())
        else:
            image_text = image_text_for(item, services.image_reader, cache)
            preds[item.pid] = predict(task, variant, item, services, image_text)
            write_json(path, preds[item.pid])
            computed += 1
        if progress:
            progress(f"{task}/{variant}", n + 1, len(items))
    return {
        "variant": variant,
        "task": task,
        "config_id": cid,
        "predictions": preds,
        "computed": computed,
        "cached": len(items) - computed,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "item_seconds": sum(p.get("seconds", 0.0) for p in preds.values()),
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info
