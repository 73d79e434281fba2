"""Three-stage contextualized exemplar retrieval: contextualize → recall per field → fused rerank."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from .exemplars import Exemplar
from .index import IMAGE_FIELD
from .query_cache import CachedQueryEmbedder
from .rerank import Scored, diversify, score_candidates


# How far below a similarity threshold the index's own encoder still proposes a candidate for the similarity
# model to judge: on 1,500 ScienceQA val questions (1.1M pairs), the static encoder's cosine fell more than
# 0.06 below MiniLM's at no pair MiniLM put at or above 0.9, and at 17 of the 7,034 at or above 0.6.
SIMILARITY_SLACK = 0.06


class RetrievalQuery(BaseModel):
    answer: str
    question: str | None = None
    context: str = ""
    image_text: str = ""
    subject: str | None = None
    grade: str | None = None
    exclude_ids: list[str] = Field(default_factory=list)
    exclude_splits: list[str] = Field(default_factory=list)
    # Used only by a retriever with an image embedder: the query image for the image collection.
    image_path: Path | None = None


class RetrievalSettings(BaseModel):
    k: int = 4
    recall_n: int = 40
    # Fusion weights per signal; the question signal counts less when the question is only inferred.
    weights: dict[str, float] = {"answer": 0.35, "question": 0.35, "context": 0.30, "image": 0.30}
    inferred_question_weight: float = 0.15
    # A signal below its floor is treated as noise and contributes nothing.
    # "image" compares the query image with exemplar images; "image_text" with exemplars that the image
    # collection holds as text-tower vectors (no image file), whose cross-modal similarities run lower.
    # Both are untuned guesses, not yet calibrated against real CLIP weights.
    floors: dict[str, float] = {"answer": 0.25, "question": 0.25, "context": 0.20, "image": 0.50, "image_text": 0.20}
    min_score: float = 0.05
    type_penalty: float = 0.5
    metadata_bonus: float = 0.05
    diversity: float = 0.15

    def floor(self, field: str, cross_modal: bool = False) -> float:
        """The floor of ``field``'s signal; ``cross_modal``: an image-collection record held as text."""
        if field == IMAGE_FIELD and cross_modal:
            return self.floors.get("image_text", 0.0)
        return self.floors.get(field, 0.0)


class ExemplarRetriever:
    def __init__(
        self,
        embedder,
        store,
        *,
        bank: str = "default",
        banks: list[str] | tuple[str, ...] | None = None,
        settings: RetrievalSettings | None = None,
        image_embedder=None,
        in_memory: bool = True,
        similarity_embedder=None,
    ) -> None:
        """``banks``: the exemplar banks to search (default: ``[bank]``); each is queried and the results
        merge by fused score, so every exemplar carries the ``bank`` it came from. ``in_memory``: read each
        bank's text collections into matrices once (``InMemoryBank``) instead of querying the store on every
        retrieval. ``similarity_embedder``: the model whose cosines the checks' thresholds mean
        (``similarity``; default: ``embedder``), when the index's encoder is another one."""
        from .memory_bank import InMemoryBank

        self.embedder = embedder
        self.query_embedder = CachedQueryEmbedder(embedder)
        same = similarity_embedder is None or similarity_embedder is embedder
        self.similarity = self.query_embedder if same else CachedQueryEmbedder(similarity_embedder)
        self.raw_store, self.in_memory = store, in_memory
        self.banks = list(dict.fromkeys(banks or [bank]))
        self.bank = self.banks[0]
        self.views = {b: InMemoryBank(store, b) if in_memory else store for b in self.banks}
        self.store = self.views[self.bank]
        self.settings = settings or RetrievalSettings()
        self.image_embedder = image_embedder
        if image_embedder is not None:
            self._check_image_index()

    def with_banks(self, banks: list[str] | tuple[str, ...]) -> ExemplarRetriever:
        """The same retriever (embedder and its query cache, store, settings) searching ``banks`` instead."""
        other = ExemplarRetriever(
            self.embedder,
            self.raw_store,
            banks=list(banks),
            settings=self.settings,
            image_embedder=self.image_embedder,
            in_memory=self.in_memory,
        )
        other.query_embedder = self.query_embedder
        other.similarity = self.similarity  # the shared query cache when it is the similarity model too
        return other

    def _check_image_index(self) -> None:
        from coe.errors import ConfigError

        want = self.image_embedder.model_id
        for bank in self.banks:
            marker = self.store.get_marker(f"index-{bank}-{IMAGE_FIELD}")
            if marker is None and bank != "default":
                continue  # an imported bank without pictures: its records go without the image signal
            if marker is None:
                raise ConfigError(
                    "the exemplar image index is not built; run `coe index build --image-embedder "
                    "NAME` with the same image model and weights"
                )
            if marker.get("embedder") != want:
                # Vectors of two different models are not comparable, even when their sizes agree.
                raise ConfigError(
                    f"the exemplar image index was built with {marker.get('embedder')}, not {want}; "
                    "rebuild it with `coe index build --image-embedder NAME --force`"
                )

    # Stage 1 -------------------------------------------------------------
    def contextualize(self, q: RetrievalQuery) -> dict[str, tuple[str, float]]:
        """Text per field to embed, with the weight its signal carries in the fused score."""
        s = self.settings
        material = " ".join(t for t in (q.context, q.image_text) if t.strip())
        texts: dict[str, tuple[str, float]] = {"answer": (q.answer, s.weights["answer"])}
        if q.question and q.question.strip():
            texts["question"] = (q.question, s.weights["question"])
        elif material:
            texts["question"] = (f"{material} {q.answer}", s.inferred_question_weight)
        if material:
            texts["context"] = (material, s.weights["context"])
        return texts

    # Stage 2 -------------------------------------------------------------
    def recall(self, vectors: dict[str, np.ndarray], q: RetrievalQuery, bank: str | None = None) -> set[str]:
        """The ``recall_n`` nearest allowed exemplars per field. Chroma's metadata filter costs ~20 ms a
        query at 15k items against ~2 ms unfiltered, so the split filter runs here on an over-fetch; only
        when excluded items crowd the top does Chroma filter."""
        excluded, blocked = set(q.exclude_splits), set(q.exclude_ids)
        n = self.settings.recall_n
        fetch = (2 * n if excluded else n) + len(blocked)

        def allowed(hits):
            return [h.id for h in hits if h.id not in blocked and h.metadata.get("split") not in excluded][:n]

        bank = bank or self.bank
        store = self.views[bank]
        ids: set[str] = set()
        for field, vec in vectors.items():
            col = f"{bank}-{field}"
            hits = store.query(col, vec, fetch, documents=False)
            keep = allowed(hits)
            if len(keep) < n and len(hits) == fetch and excluded:
                keep = allowed(
                    store.query(
                        col, vec, n + len(blocked), documents=False, where={"split": {"$nin": sorted(excluded)}}
                    )
                )
            ids.update(keep)
        return ids

    def same_questions(
        self,
        question: str,
        *,
        n: int = 20,
        min_similarity: float = 0.9,
        exclude_ids: list[str] | None = None,
        exclude_splits: list[str] | None = None,
    ) -> list[Exemplar]:
        """Exemplars asking (nearly) this question, most similar first (over every bank), each with ``score``
        = the question similarity by ``similarity``: in a templated bank, what such questions are answered
        with. With an index encoder other than the similarity model, the index proposes candidates down to
        ``SIMILARITY_SLACK`` below the threshold and the similarity model decides."""
        rescore = self.similarity is not self.query_embedder
        floor = min_similarity - SIMILARITY_SLACK if rescore else min_similarity
        vec = self.query_embedder.embed([question])[0]
        blocked, excluded = set(exclude_ids or []), set(exclude_splits or [])
        out: list[Exemplar] = []
        for bank, store in self.views.items():
            hits = [
                h
                for h in store.query(f"{bank}-question", vec, (2 if rescore else 1) * n + len(blocked), documents=False)
                if h.id not in blocked and h.similarity >= floor
            ]
            records = store.get_records(f"{bank}-answer", [h.id for h in hits])
            found = [
                (Exemplar.from_metadata(h.id, records[h.id]["metadata"]), h.similarity)
                for h in hits
                if h.id in records and records[h.id]["metadata"].get("split") not in excluded
            ]
            if rescore and found:
                texts = list(dict.fromkeys(e.question for e, _ in found))
                vecs = self.similarity.embed([question, *texts])
                sim = dict(zip(texts, (vecs[1:] @ vecs[0]).tolist()))
                found = sorted(
                    ((e, sim[e.question]) for e, _ in found if sim[e.question] >= min_similarity), key=lambda f: -f[1]
                )
            out += [e.model_copy(update={"score": round(s, 4), "bank": bank}) for e, s in found[:n]]
        return sorted(out, key=lambda e: -e.score)[:n]

    # Stage 3 -------------------------------------------------------------
    def rerank(
        self,
        candidates: set[str],
        vectors: dict[str, np.ndarray],
        weights: dict[str, float],
        q: RetrievalQuery,
        k: int | None = None,
    ) -> list[Exemplar]:
        """The first bank's candidates fused, scored and diversified (``retrieve`` merges every bank's)."""
        scored = score_candidates(self, self.bank, candidates, vectors, weights, q)
        return diversify(scored, k or self.settings.k, self.settings.diversity)

    def retrieve(self, q: RetrievalQuery, k: int | None = None) -> tuple[list[Exemplar], dict]:
        """Top ``k`` (default ``settings.k``) exemplars with scores, and what each stage did."""
        t0 = time.perf_counter()
        texts = self.contextualize(q)
        fields = list(texts)
        embs = self.query_embedder.embed([texts[f][0] for f in fields])
        vectors = {f: embs[n] for n, f in enumerate(fields)}
        weights = {f: texts[f][1] for f in fields}
        use_image = self.image_embedder is not None and bool(q.image_path)
        if use_image:
            vectors[IMAGE_FIELD] = self.image_embedder.embed_images([q.image_path])[0]
            weights[IMAGE_FIELD] = self.settings.weights.get(IMAGE_FIELD, 0.0)
        t1 = time.perf_counter()
        candidates = {bank: self.recall(vectors, q, bank) for bank in self.banks}
        t2 = time.perf_counter()
        # one scale for every bank (same embedder, same fusion): merging is a sort
        scored = Scored.concat(
            [score_candidates(self, bank, ids, vectors, weights, q) for bank, ids in candidates.items()]
        )
        result = diversify(scored, k or self.settings.k, self.settings.diversity)
        t3 = time.perf_counter()
        info = {
            "query_texts": {f: texts[f][0] for f in fields},
            "weights": weights,
            "banks": self.banks,
            "candidates": sum(len(ids) for ids in candidates.values()),
            "exemplar_banks": [{"id": e.id, "bank": e.bank} for e in result],
            "stage_seconds": {
                "contextualize": round(t1 - t0, 4),
                "recall": round(t2 - t1, 4),
                "rerank": round(t3 - t2, 4),
            },
        }
        if use_image:
            info["query_image"] = {"path": str(q.image_path), "embedder": self.image_embedder.model_id}
        return result, info
