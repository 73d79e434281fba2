"""Build the exemplar bank in the vector store: one collection per retrieval field."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from . import bank_cache
from .exemplars import Exemplar

FIELDS = ("answer", "question", "context")
INDEX_FORMAT = "coe-exemplars-v1"
BATCH = 512
# The optional image collection: CLIP-style vectors, built only when an image embedder is given.
IMAGE_FIELD = "image"
IMAGE_INDEX_FORMAT = "coe-exemplar-images-v1"
IMAGE_BATCH = 64


def field_text(ex: Exemplar, field: str) -> str:
    if field == "answer":
        return ex.answer
    if field == "question":
        return ex.question
    return ex.context


def fingerprint(exemplars: list[Exemplar], embedder_id: str) -> str:
    h = hashlib.sha256(f"{INDEX_FORMAT}|{embedder_id}".encode())
    for ex in exemplars:
        h.update(f"|{ex.id}:{ex.split}:{ex.question}:{ex.answer}".encode())
    return h.hexdigest()


def embed_unique(embedder, texts: list[str]) -> np.ndarray:
    """Many ScienceQA answers and questions repeat; embed each distinct string once."""
    uniq = list(dict.fromkeys(texts))
    vecs = embedder.embed(uniq)
    pos = {t: i for i, t in enumerate(uniq)}
    return vecs[[pos[t] for t in texts]]


def build_index(
    exemplars: Iterable[Exemplar],
    *,
    embedder,
    store,
    bank: str = "default",
    progress: Callable[[str, int, int], None] | None = None,
    force: bool = False,
    append: bool = False,
) -> dict:
    """Upsert the bank; already indexed ids are kept, so an interrupted build resumes where it stopped.

    ``append``: ids name their content (an imported bank's ids are digests), so a grown bank only embeds
    its new records instead of starting over; a change of embedder still rebuilds it."""
    exemplars = list(exemplars)
    fp = fingerprint(exemplars, embedder.model_id)
    marker = store.get_marker(f"index-{bank}")
    if marker and marker.get("fingerprint") == fp and not force:
        return {"status": "up to date", "exemplars": len(exemplars), "added": 0}
    keep = append and marker is not None and marker.get("embedder") == embedder.model_id
    bank_cache.forget(store, bank)
    if force or (marker and marker.get("fingerprint") != fp and not keep):
        for f in FIELDS:
            store.reset(f"{bank}-{f}")
    added = 0
    for field in FIELDS:
        col = f"{bank}-{field}"
        have = store.existing_ids(col)
        todo = [ex for ex in exemplars if ex.id not in have and field_text(ex, field).strip()]
        total = len(todo)
        if progress:
            progress(field, 0, total)
        for start in range(0, total, BATCH):
            chunk = todo[start : start + BATCH]
            texts = [field_text(ex, field) for ex in chunk]
            store.upsert(
                col, [ex.id for ex in chunk], embed_unique(embedder, texts), [ex.to_metadata() for ex in chunk], texts
            )
            added += len(chunk)
            if progress:
                progress(field, min(start + BATCH, total), total)
    store.set_marker(f"index-{bank}", {"fingerprint": fp, "exemplars": len(exemplars), "embedder": embedder.model_id})
    return {"status": "built", "exemplars": len(exemplars), "added": added}


def default_bank(dataset, splits: tuple[str, ...] = ("train", "val")) -> list[Exemplar]:
    out: list[Exemplar] = []
    for split in splits:
        out.extend(Exemplar.from_problem(p) for p in dataset.split(split))
    return out


def exemplar_images(dataset, exemplars: Iterable[Exemplar]) -> dict[str, Path]:
    """Each exemplar's image file where the dataset folder has it (a partial copy lacks most)."""
    out: dict[str, Path] = {}
    for ex in exemplars:
        if ex.has_image:
            path = dataset.get(ex.id).image_path
            if path is not None:
                out[ex.id] = path
    return out


def image_fallback_text(ex: Exemplar) -> str:
    return ex.context.strip() or ex.question


def _image_fingerprint(
    exemplars: list[Exemplar], images: Mapping[str, Path], embedder_id: str, text_fallback: bool
) -> str:
    h = hashlib.sha256(f"{IMAGE_INDEX_FORMAT}|{embedder_id}|{text_fallback}".encode())
    for ex in exemplars:
        path = images.get(ex.id)
        size = Path(path).stat().st_size if path is not None and Path(path).is_file() else -1
        h.update(f"|{ex.id}:{ex.split}:{size}:{image_fallback_text(ex) if text_fallback else ''}".encode())
    return h.hexdigest()


def build_image_index(
    exemplars: Iterable[Exemplar],
    images: Mapping[str, str | Path],
    *,
    image_embedder,
    store,
    bank: str = "default",
    text_fallback: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    force: bool = False,
) -> dict:
    """Fill ``{bank}-image``: each exemplar's image through the image tower; with ``text_fallback``, an
    exemplar without a readable image file gets its context through the text tower instead, so that image
    queries still reach it across modalities. ``metadata["modality"]`` records which tower made a vector.

    Resumable like ``build_index``, under its own marker, so adding images never re-embeds the text fields.
    """
    from coe.errors import InputError
    from coe.imageio import load_image

    exemplars = list(exemplars)
    paths = {k: Path(v) for k, v in images.items()}
    col, key = f"{bank}-{IMAGE_FIELD}", f"index-{bank}-{IMAGE_FIELD}"
    fp = _image_fingerprint(exemplars, paths, image_embedder.model_id, text_fallback)
    marker = store.get_marker(key)
    if marker and marker.get("fingerprint") == fp and not force:
        return {"status": "up to date", "exemplars": len(exemplars), "added": 0, "unreadable": 0}
    if force or (marker and marker.get("fingerprint") != fp):
        store.reset(col)
    have = store.existing_ids(col)
    todo = [ex for ex in exemplars if ex.id not in have and (ex.id in paths or text_fallback)]
    added = unreadable = 0
    # Nearly half of ScienceQA's fallback texts repeat, and the text tower is slow on a CPU: embed each once.
    text_vecs: dict[str, np.ndarray] = {}
    if progress:
        progress(IMAGE_FIELD, 0, len(todo))
    for start in range(0, len(todo), IMAGE_BATCH):
        pictured, texts = [], []
        for ex in todo[start : start + IMAGE_BATCH]:
            if ex.id in paths:
                try:
                    pictured.append((ex, load_image(paths[ex.id])))
                    continue
                except InputError:  # one damaged file in the dataset must not stop the build
                    unreadable += 1
            if text_fallback:
                texts.append(ex)
        if pictured:
            vecs = image_embedder.embed_images([img for _, img in pictured])
            store.upsert(
                col,
                [ex.id for ex, _ in pictured],
                vecs,
                [{**ex.to_metadata(), "modality": "image"} for ex, _ in pictured],
                [str(paths[ex.id]) for ex, _ in pictured],
            )
        if texts:
            docs = [image_fallback_text(ex) for ex in texts]
            new = [d for d in dict.fromkeys(docs) if d not in text_vecs]
            text_vecs.update(zip(new, image_embedder.embed_texts(new)))
            store.upsert(
                col,
                [ex.id for ex in texts],
                np.stack([text_vecs[d] for d in docs]),
                [{**ex.to_metadata(), "modality": "text"} for ex in texts],
                docs,
            )
        added += len(pictured) + len(texts)
        if progress:
            progress(IMAGE_FIELD, min(start + IMAGE_BATCH, len(todo)), len(todo))
    store.set_marker(
        key,
        {
            "fingerprint": fp,
            "exemplars": len(exemplars),
            "embedder": image_embedder.model_id,
            "text_fallback": text_fallback,
        },
    )
    return {"status": "built", "exemplars": len(exemplars), "added": added, "unreadable": unreadable}
