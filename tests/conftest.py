import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

FIXTURE = Path(__file__).parent / "fixtures" / "mini_scienceqa"


class HashEmbedder:
    """Deterministic bag-of-words vectors: shared words → similar vectors. Unit tests only."""

    name = "hash"
    model_id = "hash-bow-64"
    dim = 64

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = int(hashlib.md5(w.strip(".,?!").encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out


@pytest.fixture
def fixture_dataset():
    from coe.datasets import ScienceQA
    return ScienceQA(FIXTURE)


@pytest.fixture
def fixture_index(tmp_path, fixture_dataset):
    """A real Chroma store holding the fixture's train+val bank, embedded with the hash embedder."""
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.retriever import ExemplarRetriever

    store = ChromaStore(tmp_path / "chroma")
    embedder = HashEmbedder()
    build_index(default_bank(fixture_dataset), embedder=embedder, store=store)
    return ExemplarRetriever(embedder, store)
