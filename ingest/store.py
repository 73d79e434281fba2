"""Where a material lives: its folder under ``$COE_HOME/materials/NAME`` (docstore, file registry, figures)
and its Chroma collection (``coe-material-NAME``, in the same Chroma as the exemplar index)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from coe.errors import InputError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
COLLECTION_PREFIX = "coe-material"
REGISTRY = "files.json"
DOCSTORE = "docstore.json"
FIGURES = "figures"


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise InputError(
            f"a material name is 1-40 lowercase letters, digits, '-' or '_' "
            f"(starting with a letter or digit), got {name!r}"
        )
    return name


def materials_root() -> Path:
    from coe.paths import coe_home

    return coe_home() / "materials"


def material_dir(name: str, *, create: bool = False) -> Path:
    path = materials_root() / check_name(name)
    if create:
        from coe.paths import writable_dir

        return writable_dir(path, "material", "COE_HOME")
    return path


def existing_material(name: str) -> Path:
    """The folder of an ingested material, or an ``InputError`` naming the ones there are."""
    path = material_dir(name)
    if not (path / REGISTRY).is_file():
        known = ", ".join(list_materials()) or "none yet (coe ingest PATH --material NAME)"
        raise InputError(f"no material named {name!r}; materials: {known}")
    return path


def list_materials() -> list[str]:
    root = materials_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / REGISTRY).is_file())


def read_registry(folder: Path) -> dict[str, Any]:
    """file path → {"sha256", "size", "docs": [doc ids], "kind"}: what each file gave at its last ingest."""
    path = folder / REGISTRY
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged registry only costs a full re-read; the docstore still skips unchanged pages


def write_registry(folder: Path, registry: dict[str, Any]) -> None:
    from coe.atomic import write_text

    write_text(folder / REGISTRY, json.dumps(registry, indent=1, sort_keys=True))


def chroma_store():
    """The Chroma the materials live in. Chroma itself, whatever ``COE_VECTOR_STORE`` names for the exemplar
    banks: LlamaIndex's ``ChromaVectorStore`` writes and reads the material's collection directly."""
    from coe.plugins.store.chroma import ChromaStore

    return ChromaStore(prefix=COLLECTION_PREFIX)


def collection(name: str):
    """The material's Chroma collection (cosine space, no embedding function of Chroma's own)."""
    return chroma_store().collection(check_name(name))


def vector_store(name: str):
    """The collection as LlamaIndex's vector store; each write is a boundary for ``coe.kill_points``."""
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from coe.kill_points import wrote

    class _Watched(ChromaVectorStore):
        def add(self, nodes, **kwargs):
            out = super().add(nodes, **kwargs)
            wrote("material vectors")
            return out

        def delete(self, ref_doc_id, **kwargs):
            super().delete(ref_doc_id, **kwargs)
            wrote("material vectors")

    # pydantic's mypy plugin derives _Watched's __init__ from the fields, missing ChromaVectorStore's own
    return _Watched(chroma_collection=collection(name))  # type: ignore[call-arg]


def passages(name: str) -> list[dict[str, Any]]:
    """Every stored passage of a material: id, text and metadata, in file and page order."""
    res = collection(name).get(include=["metadatas", "documents"])
    rows = [
        {"id": i, "text": d or "", "metadata": m or {}}
        for i, m, d in zip(res["ids"], res["metadatas"], res["documents"])
    ]
    return sorted(
        rows,
        key=lambda r: (
            r["metadata"].get("file_path", ""),
            r["metadata"].get("order", 0),
            r["metadata"].get("chunk", 0),
        ),
    )


def remove_material(name: str) -> None:
    from coe.store_lock import writer_lock

    with writer_lock(material_dir(name), f"material {check_name(name)!r}"):
        folder = existing_material(name)
        chroma_store().reset(check_name(name))
        shutil.rmtree(folder)


def drop_empty(name: str) -> None:
    """What a first ingest that put nothing in left: the folder (no file registered) and its collection.
    The caller holds the material's writer lock."""
    folder = material_dir(name)
    if read_registry(folder):
        return
    chroma_store().reset(check_name(name))
    shutil.rmtree(folder, ignore_errors=True)
