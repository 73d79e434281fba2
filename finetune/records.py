"""Training records built exactly as the graph prompts at inference: the same retrieval, the same stage
prompts, the gold output as the assistant turn.

Retrieval runs once per item without the question, as the graph's ``retrieve`` node does before the
question exists; exemplars come from the train split only and never include the item itself. Later
stages are conditioned on the gold earlier outputs (teacher forcing), as CoE trains them."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel

from coe.atomic import write_text
from coe.agents.candidates import distractor_pool
from coe.agents.generation import ItemInput, distractors_call, question_call, rationale_call
from coe.errors import InputError
from coe.eval.items import EvalItem
from coe.plugins.llm.protocol import ImageRef
from coe.retrieval.retriever import RetrievalQuery
from coe.text import one_line

STAGES = ("qg", "rg", "dg")
RECORD_VERSION = 1


class _PromptOnly:
    """Stands in for an LLM when only the prompt is rendered: images go into the messages."""

    supports_images = True


class Record(BaseModel):
    """One conversation in the Qwen chat format; images by path, in placeholder order."""

    id: str
    pid: str
    stage: str
    messages: list[dict[str, Any]]
    images: list[str] = []
    exemplar_ids: list[str] = []  # every exemplar the prompt drew on (shown, or pooled for options)


def stage_ready(p, stage: str) -> bool:
    """Whether the problem has the gold output this stage trains on."""
    if stage == "qg":
        return bool(p.question.strip())
    if stage == "rg":
        return bool(one_line(p.rationale))
    return bool(p.distractors)


def _item_input(p) -> ItemInput:
    """The item as evaluation presents it to the graph: hint as context, dataset caption and OCR as image text."""
    item = EvalItem.from_problem(p)
    images = [ImageRef(path=Path(p.image_path))] if p.image_path and Path(p.image_path).is_file() else []
    return ItemInput(answer=p.answer, context=item.context, image_text=item.dataset_image_text, images=images)


def _conversation(call, target: dict) -> tuple[list[dict[str, Any]], list[str]]:
    messages, images = [], []
    for m in call.messages:
        content: list[dict[str, Any]] = []
        for ref in m.images:
            content.append({"type": "image", "image": str(ref.path)})
            images.append(str(ref.path))
        content.append({"type": "text", "text": m.content})
        messages.append({"role": m.role, "content": content})
    messages.append(
        {"role": "assistant", "content": [{"type": "text", "text": json.dumps(target, ensure_ascii=False)}]}
    )
    return messages, images


def records_for(p, exemplars: list, stages: Iterable[str], *, k: int = 4) -> list[Record]:
    """The records of one problem: one per stage it has gold output for."""
    llm, item = _PromptOnly(), _item_input(p)
    shown = exemplars[:k]
    out = []
    for stage in stages:
        if not stage_ready(p, stage):
            continue
        if stage == "qg":
            call, target = question_call(llm, item, shown), {"question": p.question}
        elif stage == "rg":
            call, target = rationale_call(llm, item, p.question, shown), {"rationale": one_line(p.rationale)}
        else:
            n = len(p.distractors)
            pool = [
                c.text
                for c in distractor_pool(p.answer, exemplars, item.context, item.image_text, question=p.question, n=n)
            ]
            call = distractors_call(
                llm, item, p.question, one_line(p.rationale) or None, shown, n, candidates=pool, choose=True
            )
            target = {"distractors": list(p.distractors)}
        messages, images = _conversation(call, target)
        used = shown if stage != "dg" else exemplars
        out.append(
            Record(
                id=f"{p.pid}:{stage}",
                pid=p.pid,
                stage=stage,
                messages=messages,
                images=images,
                exemplar_ids=[e.id for e in used],
            )
        )
    return out


def build_records(
    dataset,
    retriever,
    *,
    split: str = "train",
    stages: Iterable[str] = STAGES,
    limit: int | None = None,
    k: int = 4,
    pool_k: int = 10,
    seed: int = 0,
    progress=None,
) -> list[Record]:
    stages = list(stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise InputError(f"unknown stage(s) {unknown or stages}; use some of {', '.join(STAGES)}")
    problems = [p for p in dataset.split(split) if any(stage_ready(p, s) for s in stages)]
    if not problems:
        raise InputError(f"no {split} problems with gold output for stages {','.join(stages)}")
    if limit is not None and limit < len(problems):
        problems = random.Random(seed).sample(problems, limit)
        problems.sort(key=lambda p: int(p.pid) if p.pid.isdigit() else p.pid)
    records: list[Record] = []
    for n, p in enumerate(problems, 1):
        item = _item_input(p)
        q = RetrievalQuery(
            answer=p.answer,
            context=item.context,
            image_text=item.image_text,
            exclude_ids=[p.pid],
            exclude_splits=["val", "test"],
        )  # train exemplars only
        exemplars, _ = retriever.retrieve(q, k=max(k, pool_k))
        records.extend(records_for(p, exemplars, stages, k=k))
        if progress is not None:
            progress(n, len(problems))
    return records


def summarize(records: list[Record], token_lengths: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Counts per stage, items with images, and token-length statistics (prompt, target, total)."""
    stats: dict[str, Any] = {
        "records": len(records),
        "per_stage": dict(Counter(r.stage for r in records)),
        "items": len({r.pid for r in records}),
        "with_images": sum(1 for r in records if r.images),
    }
    if token_lengths:
        import numpy as np

        arr = np.array(token_lengths, dtype=float)
        for name, col in (("prompt", arr[:, 0]), ("target", arr[:, 1]), ("total", arr.sum(axis=1))):
            stats[f"{name}_tokens"] = {
                "mean": round(float(col.mean()), 1),
                "p50": int(np.percentile(col, 50)),
                "p95": int(np.percentile(col, 95)),
                "max": int(col.max()),
            }
    return stats


def write_dataset(records: list[Record], out: Path, meta: dict[str, Any]) -> Path:
    """``out/train.jsonl`` and ``out/manifest.json``, each written whole or not at all."""
    write_text(out / "train.jsonl", "".join(r.model_dump_json() + "\n" for r in records))
    manifest = {"format": "coe-sft", "version": RECORD_VERSION, **meta}
    write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    return out / "train.jsonl"


def read_dataset(path: str | Path) -> list[Record]:
    """Records from a dataset directory (``train.jsonl`` inside) or a ``.jsonl`` file."""
    p = Path(path)
    f = p / "train.jsonl" if p.is_dir() else p
    if not f.is_file():
        hint = " (a multitask dataset; per-stage ones are in its qg/, rg/, dg/ folders)" if p.is_dir() else ""
        raise InputError(f"no training records at {f}{hint}; run `coe finetune prepare` first")
    records = []
    with f.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(Record.model_validate_json(line))
                except ValueError as exc:
                    raise InputError(f"{f}:{n}: not a training record ({str(exc).splitlines()[0]})") from None
    if not records:
        raise InputError(f"{f} holds no training records")
    return records
