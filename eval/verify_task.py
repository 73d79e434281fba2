"""``coe eval --task verify``: answerability of gold and generated items, and the verifier on known-false items.

Both parts call the model once per (item, question, options) and cache the answer under a key of that
content, the model, the seed and the verification version, so an interrupted run resumes and a changed
generated item is answered afresh."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coe.agents.validation import normalize

from . import known_false
from .bootstrap import RESAMPLES
from .items import EvalItem
from .metrics import validity
from .runner import cache_root, image_text_for, run_variant, write_json
from .verifier_scores import answer_scores, calibrate_margin, quality_scores, verified_precision

SolveFn = Callable[[EvalItem, str, list[str], int], dict[str, float]]
VerifyFn = Callable[[EvalItem, str, list[str], int], dict[str, Any]]
Progress = Callable[[str, int, int], None]


class Student:
    """The answering agent and verifier of ``coe.agents.verify`` on evaluation items."""

    def __init__(self, llm, image_reader, cache: Path, retriever=None, solutions: dict[str, str] | None = None) -> None:
        from coe.agents.prompting import PROMPT_VERSION
        from coe.agents.verify import VERIFY_VERSION

        self.llm, self.image_reader, self.cache, self.retriever = llm, image_reader, cache, retriever
        self.solutions = solutions or {}
        self.version = f"{llm.model_id}|verify-{VERIFY_VERSION}|prompts-{PROMPT_VERSION}"

    def _input(self, item: EvalItem):
        from coe.agents.generation import ItemInput
        from coe.plugins.llm.protocol import ImageRef

        images = [ImageRef(path=item.image_path)] if item.image_path and item.image_path.is_file() else []
        return ItemInput(
            answer=item.answer,
            context=item.context,
            images=images,
            image_text=image_text_for(item, self.image_reader, self.cache),
        )

    def solve(self, item: EvalItem, question: str, options: list[str], seed: int) -> dict[str, float]:
        from coe.agents.student import solve

        return solve(self.llm, self._input(item), question, options, seed=seed)

    def verify(self, item: EvalItem, question: str, distractors: list[str], seed: int) -> dict[str, Any]:
        from coe.agents.verify import verify_item

        # question_given stays off for every item, gold included: the question is what is under test.
        from .predict import exclude_splits

        # the gold solution stands in for the item's own rationale (the lecture around it describes every
        # option's topic, so it would "state" most distractors)
        from coe.graphs.settings import GraphSettings

        # The text-only solve and the student's scores on an item a model-free check flags change no verdict:
        # they are skipped here, which is what makes a large sample affordable.
        return verify_item(
            self.llm,
            self._input(item),
            question,
            distractors,
            seed=seed,
            retriever=self.retriever,
            exclude_ids=[item.pid],
            exclude_splits=exclude_splits(item.split),
            rationale=self.solutions.get(item.pid, item.gold_rationale) or None,
            settings=GraphSettings(text_only=False),
            model_free_first=True,
        ).model_dump(mode="json")


def folder_for(cache: Path, split: str, version: str, seed: int) -> Path:
    cfg = {"split": split, "model": version, "seed": seed}
    return cache / "verify" / hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]


def _cached(path: Path, compute: Callable[[], Any]) -> Any:
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_json(path, value)
    return value


def _content_key(question: str, options: list[str]) -> str:
    return hashlib.sha256(json.dumps([question, options]).encode()).hexdigest()[:10]


def options_for(item: EvalItem, question: str | None, distractors: list[str] | None) -> list[str] | str:
    """The key and the distractors as one option list, or why the item cannot be put to a student."""
    if not (question or "").strip():
        return "no question"
    if not distractors:
        return "no distractors"
    flags = validity(distractors, item.answer, len(distractors))
    broken = [k for k in ("duplicates", "equals_answer", "placeholders") if flags[k]]
    return f"distractors with {', '.join(broken)}" if broken else [item.answer, *distractors]


def generated_sources(
    items: list[EvalItem], variant: str, qg: dict[str, dict], dg: dict[str, dict]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``dg:V`` (gold question, V's distractors) and ``qg+dg:V`` (V's question and V's distractors; the
    distractors were written for the gold question, as in the DG task)."""
    return {
        f"dg:{variant}": {
            i.pid: {"question": i.question, "distractors": dg.get(i.pid, {}).get("distractors")} for i in items
        },
        f"qg+dg:{variant}": {
            i.pid: {"question": qg.get(i.pid, {}).get("question"), "distractors": dg.get(i.pid, {}).get("distractors")}
            for i in items
        },
    }


def answerability(
    items: list[EvalItem],
    generated: dict[str, dict[str, dict[str, Any]]],
    solve_fn: SolveFn,
    folder: Path,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """One record per (source, item): the gold item and every generated version, put to the student."""
    sources = {"gold": {i.pid: {"question": i.question, "distractors": i.gold_distractors} for i in items}, **generated}
    records = []
    for s_n, (source, preds) in enumerate(sources.items()):
        for n, item in enumerate(items):
            pred = preds.get(item.pid) or {}
            options = options_for(item, pred.get("question"), pred.get("distractors"))
            record: dict[str, Any] = {"source": source, "pid": item.pid}
            if isinstance(options, str):
                record["unusable"] = options
            else:
                question = pred["question"]
                path = folder / "answer" / f"{item.pid}-{_content_key(question, options)}.json"
                probs = _cached(path, lambda: solve_fn(item, question, options, seed))
                key_prob = float(probs[item.answer])
                others = [p for o, p in probs.items() if normalize(o) != normalize(item.answer)]
                record.update(probs=probs, key_prob=key_prob, key_top=all(key_prob > p for p in others))
            records.append(record)
            if progress:
                progress("verify/answerability", s_n * len(items) + n + 1, len(sources) * len(items))
    return records


def verifier_quality(
    items: list[EvalItem],
    pool: known_false.Pool,
    verify_fn: VerifyFn,
    folder: Path,
    *,
    seed: int = 0,
    kinds: tuple[str, ...] = known_false.KINDS,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records, skips): every gold item and every known-false item built from it, verified."""
    built, skipped = known_false.build(items, pool, seed=seed, kinds=kinds)
    todo = [
        {"kind": "gold", "pid": i.pid, "question": i.question, "distractors": i.gold_distractors, "note": ""}
        for i in items
    ] + built
    by_pid = {i.pid: i for i in items}
    records = []
    for n, kf in enumerate(todo):
        item = by_pid[kf["pid"]]
        path = folder / "verdicts" / f"{kf['pid']}-{_content_key(kf['question'], kf['distractors'])}.json"
        v = _cached(path, lambda: verify_fn(item, kf["question"], kf["distractors"], seed))
        records.append(
            {
                **kf,
                "flagged": v["status"] == "flagged",
                "status": v["status"],
                "reasons": v.get("reasons", []),
                "checks": sorted({c["check"] for c in v.get("cues", []) if c["severity"] == "flag"}),
                "key_prob": v.get("key_prob"),
                "strongest_prob": v.get("strongest_prob"),
                "blind": bool(v.get("blind")),
                "fit_known": (v.get("fit") or {}).get("known"),
                "spread": _spread(v.get("option_probs") or {}),
            }
        )
        if progress:
            progress("verify/known-false", n + 1, len(todo))
    return records, skipped


def _spread(probs: dict[str, float]) -> float | None:
    top = sorted(probs.values(), reverse=True)
    return round(top[0] - top[1], 6) if len(top) > 1 else None


def run_verify(
    items: list[EvalItem],
    dataset,
    services,
    model_id: str,
    variants: list[str],
    *,
    seed: int = 0,
    kinds: tuple[str, ...] = known_false.KINDS,
    resamples: int = RESAMPLES,
    cache: Path | None = None,
    student=None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Both parts over one sample; the generated items are each variant's cached QG and DG predictions
    (computed first where missing). ``student`` defaults to ``Student`` on the services' model."""
    cache = cache or cache_root()
    student = student or Student(
        services.llm, services.image_reader, cache, services.retriever, solutions={p.pid: p.solution for p in dataset}
    )
    generated: dict[str, dict[str, dict[str, Any]]] = {}
    for v in variants:
        qg = run_variant("qg", v, items, services, model_id, cache=cache, progress=progress)["predictions"]
        dg = run_variant("dg", v, items, services, model_id, cache=cache, progress=progress)["predictions"]
        generated.update(generated_sources(items, v, qg, dg))
    folder = folder_for(cache, items[0].split if items else "", student.version, seed)
    answers = answerability(items, generated, student.solve, folder, seed=seed, progress=progress)
    pool = known_false.Pool([EvalItem.from_problem(p) for p in dataset])
    records, skipped = verifier_quality(items, pool, student.verify, folder, seed=seed, kinds=kinds, progress=progress)
    from coe.graphs.settings import GraphSettings

    margin = GraphSettings().confirm_margin
    best, table = calibrate_margin(records)
    return {
        "config_id": folder.name,
        "model": student.version,
        "n_items": len(items),
        "kinds": list(kinds),
        "answerability": answer_scores(answers, seed=seed, resamples=resamples),
        "quality": quality_scores(records, skipped, seed=seed, resamples=resamples),
        "verified": verified_precision(records, margin, seed=seed, resamples=resamples),
        "calibration": {"margin": best, "table": table},
        "answers": answers,
        "known_false": records,
        "skipped": skipped,
    }
