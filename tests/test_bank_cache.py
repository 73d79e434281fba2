"""The on-disk copy of a bank's matrices: a new process reads it instead of the store, and only while it
matches the store (a rebuilt, changed or damaged index falls back to the store and writes it again)."""

import numpy as np
import pytest

from tests.conftest import HashEmbedder
from tests.store_support import Counting


# What a load from the store reads in full: the question field shares the answer field's records and is read
# as its sibling (vectors only); the context field lacks the items without a context.
FULL_READS = ["default-answer", "default-context"]


@pytest.fixture
def built(fixture_dataset, tmp_path):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank

    path = tmp_path / "chroma"
    build_index(default_bank(fixture_dataset), embedder=HashEmbedder(), store=ChromaStore(path))
    return path


def _retrieve(store, query):
    from coe.retrieval.retriever import ExemplarRetriever

    return [(e.id, e.score, e.question) for e in ExemplarRetriever(HashEmbedder(), store).retrieve(query, k=4)[0]]


def test_a_second_process_reads_the_copy_and_retrieves_the_same(built):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.memory_bank import InMemoryBank
    from coe.retrieval.retriever import RetrievalQuery

    q = RetrievalQuery(answer="a fox", context="A pond food web with frogs and herons.", exclude_splits=["val"])
    first = Counting(ChromaStore(built))
    want = _retrieve(first, q)
    assert first.full == FULL_READS
    assert list((built / "coe-bank-cache").glob("*.npz"))

    again = Counting(ChromaStore(built))  # a new store object: what a new process starts with
    assert _retrieve(again, q) == want and again.full == []
    bank = InMemoryBank(again)
    a, b = bank.loaded("default-answer"), InMemoryBank(first).loaded("default-answer")
    assert a.ids == b.ids and np.array_equal(a.vectors, b.vectors) and a.metadatas == b.metadatas
    docs = {h.id: h.document for h in bank.query("default-answer", a.vectors[0], 3)}
    stored = first.store.get_records("default-answer", list(docs))
    assert len(docs) == 3 and docs == {i: r["document"] for i, r in stored.items()}


def test_a_rebuilt_index_is_read_from_the_store_again(built, fixture_dataset):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.retriever import RetrievalQuery

    q = RetrievalQuery(answer="a fox", context="A pond food web with frogs and herons.")
    _retrieve(ChromaStore(built), q)  # writes the copy
    bank = default_bank(fixture_dataset)
    changed = [bank[0].model_copy(update={"question": "Which of these animals hunts at night?"}), *bank[1:]]
    build_index(changed, embedder=HashEmbedder(), store=ChromaStore(built))  # another fingerprint

    reader = Counting(ChromaStore(built))
    got = _retrieve(reader, RetrievalQuery(answer="an owl", question="Which of these animals hunts at night?"))
    assert reader.full == FULL_READS
    assert any(question == "Which of these animals hunts at night?" for _, _, question in got)
    after = Counting(ChromaStore(built))
    assert _retrieve(after, q) and after.full == []  # the copy was written again, for the new index


def test_a_damaged_copy_or_an_interrupted_build_is_not_trusted(built, fixture_dataset):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.memory_bank import InMemoryBank

    InMemoryBank(ChromaStore(built)).loaded("default-answer")  # writes the copy
    [copy] = (built / "coe-bank-cache").glob("*.npz")
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    reader = Counting(ChromaStore(built))
    assert InMemoryBank(reader).loaded("default-answer").ids and reader.full == FULL_READS
    assert np.load(copy)["head"].size  # written whole again

    class Failing(Counting):
        def upsert(self, *args):
            raise OSError("disk full")

    bank = default_bank(fixture_dataset)
    grown = [*bank, bank[0].model_copy(update={"id": "new-1", "question": "Which of these is a new item?"})]
    with pytest.raises(OSError, match="disk full"):  # the marker still names the old records
        build_index(grown, embedder=HashEmbedder(), store=Failing(ChromaStore(built)), append=True)
    reader = Counting(ChromaStore(built))
    assert InMemoryBank(reader).loaded("default-answer").ids and reader.full == FULL_READS


def test_a_store_that_is_not_a_local_folder_has_no_copy(tmp_path):
    from coe.retrieval.bank_cache import cache_path

    class Remote:
        location = "http://localhost:8000"

    class Local:
        location = str(tmp_path)
        prefix = "coe"

    assert cache_path(Remote(), "default") is None
    assert cache_path(Local(), "default").parent == tmp_path / "coe-bank-cache"
    assert cache_path(Local(), "default") != cache_path(Local(), "other")


def test_coe_index_build_leaves_the_copy_a_first_item_reads(tmp_path):
    """`make demo` builds the index in one process and writes the item in another: the copy is made by the
    build, so the first item reads it instead of the store."""
    import os
    import subprocess
    import sys

    from coe.modelstore.wordnet import nltk_data_dir
    from coe.paths import models_dir
    from tests.conftest import FIXTURE

    chroma = tmp_path / "chroma"
    env = {**os.environ, "COE_HOME": str(tmp_path / "home"), "COE_MODELS_DIR": str(models_dir()),
           "COE_NLTK_DATA": str(nltk_data_dir()), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "coe.cli", "index", "build", "--data", str(FIXTURE), "--chroma-dir",
                           str(chroma), "--no-rankers"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.memory_bank import InMemoryBank

    reader = Counting(ChromaStore(chroma))
    assert InMemoryBank(reader).loaded("default-answer").ids and reader.full == []
