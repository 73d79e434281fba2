"""The passage and figure of a material that teach an answer: the graph's context and picture for a
material-grounded item, with where they came from (``source``)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from coe.ingest import store
from coe.ingest.figures import load

from coe.errors import InputError
from coe.limits import MAX_CONTEXT_CHARS

TOP_K = 20
# Below this cosine a passage that does not even name the answer is not about it.
MIN_SIMILARITY = 0.35
LOCATION_KEYS = ("page", "page_label", "slide", "title", "section")


def _mentions(text: str, answer: str) -> bool:
    from coe.agents.validation import normalize

    key = normalize(answer, articles=True)
    return bool(key) and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", normalize(text, articles=True)) is not None


def _prose(text: str) -> bool:
    """Mostly words: not a table of contents, an index or a code listing."""
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and sum(c.isalpha() for c in chars) >= 0.75 * len(chars)


def cosine(hit: Any) -> float:
    """The hit's cosine similarity: LlamaIndex's Chroma store reports exp(-distance), distance = 1 - cosine."""
    return 1.0 + math.log(max(hit.score or 0.0, 1e-12))


def search(material: str, query: str, *, top_k: int = TOP_K, embedder: Any = None) -> list[Any]:
    """LlamaIndex retrieval over the material's Chroma collection: ``NodeWithScore`` hits, best first."""
    from coe.ingest.embedding import CoeEmbedding
    from llama_index.core import VectorStoreIndex

    store.existing_material(material)
    index = VectorStoreIndex.from_vector_store(store.vector_store(material), embed_model=CoeEmbedding(embedder))
    return index.as_retriever(similarity_top_k=top_k).retrieve(query)


def _figure(material: str, hit: Any, answer: str) -> dict[str, Any] | None:
    """The passage's own figure, else one of its page's (slide's, section's) other passages."""
    figures = load(hit.node.metadata.get("figures"))
    if not figures:
        res = store.collection(material).get(
            where={"$and": [{"ref_doc_id": hit.node.ref_doc_id}, {"figure_count": {"$gt": 0}}]}, include=["metadatas"]
        )
        figures = [f for m in res["metadatas"] for f in load((m or {}).get("figures"))]
    if not figures:
        return None
    return next((f for f in figures if _mentions(f.get("caption", ""), answer)), figures[0])


def source_of(
    material: str, metadata: dict[str, Any], passage_id: str, figure: dict | None, score: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "material": material,
        "file": metadata.get("file_name", ""),
        "file_path": metadata.get("file_path", ""),
        "passage_id": passage_id,
    }
    out.update({k: metadata[k] for k in LOCATION_KEYS if metadata.get(k) not in (None, "")})
    if figure is not None:
        out.update(
            figure=figure.get("id"),
            figure_caption=figure.get("caption", ""),
            figure_path=str(store.material_dir(material) / figure["path"]),
        )
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def material_input(material: str, answer: str, *, embedder: Any = None) -> dict[str, Any]:
    """``{"context", "image_path", "source"}`` for an item about ``answer``: the best passage that names it
    (else the nearest one, when near enough) and its figure. ``InputError`` when the material has none."""
    hits = search(material, answer, embedder=embedder)
    ranked = sorted(
        hits, key=lambda h: (not _mentions(h.node.get_content(), answer), not _prose(h.node.get_content()), -cosine(h))
    )
    if not ranked or (not _mentions(ranked[0].node.get_content(), answer) and cosine(ranked[0]) < MIN_SIMILARITY):
        raise InputError(f"the material {material!r} has no passage about {answer!r}")
    best = ranked[0]
    figure = _figure(material, best, answer)
    image_path = None
    if figure is not None:
        path = store.material_dir(material) / figure["path"]
        image_path = str(path) if Path(path).is_file() else None
    context = best.node.get_content().strip()[:MAX_CONTEXT_CHARS]
    return {
        "context": context,
        "image_path": image_path,
        "source": source_of(
            material, best.node.metadata, best.node.node_id, figure if image_path else None, cosine(best)
        ),
    }


def describe_source(source: dict[str, Any]) -> str:
    """One line: "biology.pdf, page 12, figure biology-p12-1 (Figure 3: ...), material bio"."""
    parts = [source.get("file", "")]
    for key, word in (("page_label", "page"), ("slide", "slide"), ("section", "section")):
        if source.get(key) not in (None, ""):
            parts.append(f"{word} {source[key]}")
            break
    if source.get("figure"):
        caption = source.get("figure_caption", "")
        parts.append(f"figure {source['figure']}" + (f" ({caption})" if caption else ""))
    parts.append(f"material {source.get('material', '')}")
    return ", ".join(p for p in parts if p)
