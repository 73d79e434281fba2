"""Answer targets a material teaches, as a batch manifest: figure captions' subjects and the terms that
recur across its passages (capitalised names and multi-word terms first), each with the passage that
teaches it as context and that passage's figure as picture."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from coe.errors import InputError
from coe.ingest import store
from coe.ingest.figures import CAPTION, load
from coe.ingest.retrieve import source_of

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")
_BREAK = re.compile(r"[.,;:!?()\[\]{}\"<>=|/\\\n]+")
MAX_WORDS = 3
MIN_CHARS = 4


def _stopwords() -> set[str]:
    from llama_index.core.utils import globals_helper  # NLTK's English list, shipped with LlamaIndex

    return set(globals_helper.stopwords) | {
        "also",
        "may",
        "used",
        "use",
        "using",
        "one",
        "two",
        "e.g",
        "i.e",
        "figure",
        "fig",
        "page",
        "chapter",
        "section",
        "example",
        "see",
    }


def _phrases(text: str, stop: set[str]) -> list[tuple[str, bool]]:
    """(phrase, capitalised mid-sentence) for every 1-3 word run without stopwords, punctuation or digits."""
    out = []
    for clause in _BREAK.split(text):
        words = clause.split()
        run: list[tuple[str, bool]] = []
        for i, raw in enumerate(words + [""]):
            word = raw.strip("'-")
            if word and _WORD.fullmatch(word) and word.lower() not in stop:
                run.append((word, i > 0 and word[0].isupper() and not word.isupper()))
                continue
            for start in range(len(run)):
                for end in range(start + 1, min(start + MAX_WORDS, len(run)) + 1):
                    phrase = " ".join(w for w, _ in run[start:end])
                    if len(phrase) >= MIN_CHARS:
                        out.append((phrase, all(c for _, c in run[start:end])))
            run = []
    return out


def _caption_subject(caption: str, stop: set[str]) -> str:
    """A caption's main term: "Figure 3: The water cycle in a forest" → "water cycle"."""
    text = CAPTION.sub("", caption).strip()
    found = [p for p, _ in _phrases(text, stop)]
    if not found:
        return ""
    return max(found[:6], key=lambda p: (len(p.split()) if len(p.split()) <= 2 else 0, -found.index(p)))


def suggest_targets(material: str, n: int = 20) -> list[dict[str, Any]]:
    """Up to ``n`` targets: ``{"answer", "kind", "context", "image", "source"}``, figures' first."""
    store.existing_material(material)
    stop = _stopwords()
    rows = store.passages(material)
    if not rows:
        raise InputError(f"the material {material!r} has no passages")
    folder = store.material_dir(material)
    targets: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(answer: str, kind: str, row: dict[str, Any], figure: dict | None) -> None:
        key = re.sub(r"(?<=[^s])s$", "", answer.lower())  # "flowables" repeats "flowable"
        if not answer or key in seen or len(targets) >= n:
            return
        seen.add(key)
        meta = row["metadata"]
        figure = figure or next(iter(load(meta.get("figures"))), None)
        image = str(folder / figure["path"]) if figure and (folder / figure["path"]).is_file() else ""
        targets.append(
            {
                "answer": answer,
                "kind": kind,
                "context": row["text"].strip()[:4000],
                "image": image,
                "source": source_of(material, meta, row["id"], figure if image else None),
            }
        )

    for row in rows:
        for fig in [f for f in load(row["metadata"].get("figures")) if f.get("captioned")]:
            add(_caption_subject(fig.get("caption", ""), stop), "figure", row, fig)
    spread: dict[str, set[int]] = defaultdict(set)
    counts: Counter[str] = Counter()
    proper: Counter[str] = Counter()
    spelling: dict[str, Counter[str]] = defaultdict(Counter)
    for i, row in enumerate(rows):
        for phrase, capital in _phrases(row["text"], stop):
            key = phrase.lower()
            spread[key].add(i)
            counts[key] += 1
            proper[key] += capital
            spelling[key][phrase] += 1

    def score(key: str) -> float:
        words = len(key.split())
        return len(spread[key]) * (1 + 0.5 * (words - 1)) * (1.5 if proper[key] * 2 >= counts[key] else 1.0)

    # on half the passages or more it is a running header or footer ("User Guide"), not a subject
    doc_of = [r["metadata"].get("ref_doc_id") or r["id"] for r in rows]
    half = max(2, len(set(doc_of)) // 2)
    recurring = [
        k
        for k in spread
        if len(spread[k]) >= 2 and len({doc_of[i] for i in spread[k]}) <= half and k not in {"none", "true", "false"}
    ]
    for key in sorted(recurring, key=lambda k: (-score(k), k)):
        # a word that mostly occurs inside one longer term is that term, not a target of its own
        if any(
            key in other.split() or f" {key} " in f" {other} "
            for other in recurring
            if other != key and len(spread[other]) >= 0.8 * len(spread[key])
        ):
            continue
        best = max(spread[key], key=lambda i: (rows[i]["text"].lower().count(key), -i))
        add(spelling[key].most_common(1)[0][0], "term", rows[best], None)
    return targets


def manifest_csv(material: str, targets: list[dict[str, Any]]) -> str:
    """The targets as a ``coe batch run`` manifest (image paths absolute, tags naming the source)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "image", "context", "answer", "tags"], lineterminator="\n")
    writer.writeheader()
    for k, t in enumerate(targets, start=1):
        src = t["source"]
        where = next((f"{key} {src[key]}" for key in ("page", "slide", "section") if src.get(key)), "")
        tags = [material, t["kind"], src.get("file", ""), where, src.get("figure", "")]
        writer.writerow(
            {
                "id": f"{material}-{k:03d}",
                "image": t["image"],
                "context": t["context"],
                "answer": t["answer"],
                "tags": ";".join(re.sub(r"[;,]", " ", str(x)) for x in tags if x),
            }
        )
    return buf.getvalue()


def write_manifest(material: str, targets: list[dict[str, Any]], out: str | Path) -> Path:
    from coe.atomic import write_text

    return write_text(Path(out).expanduser(), manifest_csv(material, targets))
