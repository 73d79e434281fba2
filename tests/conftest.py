import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    from tests import tiers
    tiers.configure(config)
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
    from coe.dataset_loaders import ScienceQA
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


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: what "fails at once when offline" means, without a clock."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network touched")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


GGUF_PRESET = "qwen2.5-coder-0.5b-instruct-q4"


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The real Qwen2 tokenizer, read from the pulled 0.5B GGUF, with the VL special tokens."""
    from tests.tiers import require
    require("transformers", "vlm")
    from coe.modelstore import is_pulled, resolve_llm
    from coe.plugins.llm.vl_random import load_qwen2_tokenizer

    if not is_pulled(GGUF_PRESET):
        pytest.fail(f"needs the {GGUF_PRESET} model (coe models pull {GGUF_PRESET})")
    _, gguf = resolve_llm(GGUF_PRESET)
    return load_qwen2_tokenizer(gguf)


@pytest.fixture(scope="session")
def checkpoints(qwen_tokenizer, tmp_path_factory):
    """Tiny random Qwen2-VL and Qwen2.5-VL checkpoints saved to disk, loadable by the plugin's real path."""
    from coe.plugins.llm.vl_random import save_random_checkpoint

    root = tmp_path_factory.mktemp("vl")
    return {family: save_random_checkpoint(root / family, qwen_tokenizer, family=family, seed=0)
            for family in ("qwen2_vl", "qwen2_5_vl")}
