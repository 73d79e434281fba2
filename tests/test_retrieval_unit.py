"""Retrieval mechanics on the fixture bank with a real Chroma store (hash embedder, no model)."""

import numpy as np

from coe.retrieval.answer_types import answer_type, compatible
from coe.retrieval.index import build_index, default_bank
from coe.retrieval.retriever import RetrievalQuery


def test_answer_types():
    assert answer_type("yes") == "boolean"
    assert answer_type("42") == "number"
    assert answer_type("1,200") == "number"
    assert answer_type("5 meters") == "quantity"
    assert answer_type("owl") == "word"
    assert answer_type("a grizzly bear") == "phrase"
    assert answer_type("The rock is hard and it will not melt in the sun.") == "sentence"
    assert compatible("word", "phrase") and not compatible("boolean", "word")
    assert compatible("phrase", "sentence") and not compatible("phrase", "sentence", strict=True)


def test_bank_excludes_test_split(fixture_dataset):
    bank = default_bank(fixture_dataset)
    assert {e.split for e in bank} == {"train", "val"}
    assert len(bank) == 6


def test_rebuild_is_idempotent(fixture_index, fixture_dataset):
    from tests.conftest import HashEmbedder

    again = build_index(default_bank(fixture_dataset), embedder=HashEmbedder(), store=fixture_index.store)
    assert again == {"status": "up to date", "exemplars": 6, "added": 0}
    assert fixture_index.store.count("default-question") == 6


def test_interrupted_build_resumes(tmp_path, fixture_dataset):
    from coe.plugins.store.chroma import ChromaStore
    from tests.conftest import HashEmbedder

    store = ChromaStore(tmp_path / "c")
    bank = default_bank(fixture_dataset)

    class Boom(HashEmbedder):
        calls = 0

        def embed(self, texts):
            Boom.calls += 1
            if Boom.calls == 2:
                raise KeyboardInterrupt
            return super().embed(texts)

    try:
        build_index(bank, embedder=Boom(), store=store)
    except KeyboardInterrupt:
        pass
    assert store.count("default-answer") == 6 and store.get_marker("index-default") is None
    res = build_index(bank, embedder=HashEmbedder(), store=store)
    assert res["status"] == "built" and store.count("default-question") == 6
    assert res["added"] < 6 * 3  # the finished answer field was not embedded again


def test_retrieves_sibling_and_reports_scores(fixture_index):
    ex, info = fixture_index.retrieve(
        RetrievalQuery(
            answer="rabbit",
            context="food chain grass rabbit fox",
            image_text="grass rabbit fox",
            question="Which animal eats the plant?",
        )
    )
    assert ex[0].question == "Which animal eats the plant?"
    assert all(0 <= e.score <= 1.2 for e in ex)
    assert [e.score for e in ex] == sorted((e.score for e in ex), reverse=True)
    assert set(info["stage_seconds"]) == {"contextualize", "recall", "rerank"}
    assert "question" in ex[0].signals


def test_excludes_own_id_and_splits(fixture_index):
    q = dict(answer="milk", question="Which of these is a liquid?")
    ex, _ = fixture_index.retrieve(RetrievalQuery(**q))
    assert ex and ex[0].id == "5"
    ex, _ = fixture_index.retrieve(RetrievalQuery(**q, exclude_ids=["5"]))
    assert "5" not in {e.id for e in ex}
    ex, _ = fixture_index.retrieve(RetrievalQuery(**q, exclude_splits=["val"]))
    assert all(e.split != "val" for e in ex)


def test_answer_type_penalty_orders_compatible_first(fixture_index):
    ex, _ = fixture_index.retrieve(RetrievalQuery(answer="yes", question="Which object in the picture is larger?"))
    same = [e for e in ex if e.question == "Which object in the picture is larger?"]
    assert same  # the fixture bank holds this question with a word answer
    assert all(e.score < e.signals["question"] for e in same)  # penalised: boolean vs word answers


def test_duplicates_are_dropped(fixture_index):
    ex, _ = fixture_index.retrieve(RetrievalQuery(answer="hot", question="What is the opposite of cold?"))
    keys = [(e.question.lower(), e.answer.lower()) for e in ex]
    assert len(keys) == len(set(keys))


def test_recall_filters_an_overfetch_and_asks_chroma_only_when_excluded_items_crowd_the_top():
    import numpy as np

    from coe.plugins.store.protocol import Hit
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalSettings
    from tests.conftest import HashEmbedder

    class Store:
        def __init__(self, splits):
            self.splits, self.calls = splits, []

        def query(self, collection, embedding, n, where=None, documents=True):
            self.calls.append(where)
            ids = [i for i, s in self.splits if where is None or s not in where["split"]["$nin"]]
            return [Hit(id=i, similarity=1.0, metadata={"split": dict(self.splits)[i]}) for i in ids[:n]]

    mixed = Store([("a", "train"), ("b", "val"), ("c", "train"), ("d", "train"), ("e", "train")])
    # the store itself, not matrices loaded from it: what is asked of it is the point
    r = ExemplarRetriever(HashEmbedder(), mixed, settings=RetrievalSettings(recall_n=2), in_memory=False)
    got = r.recall({"answer": np.zeros(3)}, RetrievalQuery(answer="x", exclude_splits=["val"], exclude_ids=["a"]))
    assert got == {"c", "d"} and mixed.calls == [None]  # one unfiltered query sufficed

    crowded = Store([("v1", "val"), ("v2", "val"), ("v3", "val"), ("v4", "val"), ("t1", "train"), ("t2", "train")])
    r = ExemplarRetriever(HashEmbedder(), crowded, settings=RetrievalSettings(recall_n=2), in_memory=False)
    got = r.recall({"answer": np.zeros(3)}, RetrievalQuery(answer="x", exclude_splits=["val"]))
    assert got == {"t1", "t2"} and crowded.calls == [None, {"split": {"$nin": ["val"]}}]


def test_the_in_memory_bank_answers_as_the_store_does(fixture_dataset, tmp_path):
    """Held-out queries (texts not in the bank) give the same exemplars from matrices as from Chroma."""
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.memory_bank import InMemoryBank
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery
    from tests.conftest import HashEmbedder

    store = ChromaStore(tmp_path / "chroma")
    build_index(default_bank(fixture_dataset), embedder=HashEmbedder(), store=store)
    memory = ExemplarRetriever(HashEmbedder(), store)
    direct = ExemplarRetriever(HashEmbedder(), store, in_memory=False)
    assert isinstance(memory.store, InMemoryBank) and not isinstance(direct.store, InMemoryBank)
    for q in (
        RetrievalQuery(answer="a fox", context="A pond food web with frogs and herons."),
        RetrievalQuery(answer="Texas", question="Which state is farthest south?", exclude_splits=["val"]),
        RetrievalQuery(answer="melted", question="What happened to the snow?", exclude_ids=["3"]),
    ):
        got, _ = memory.retrieve(q, k=4)
        want, _ = direct.retrieve(q, k=4)
        assert [(e.id, e.score) for e in got] == [(e.id, e.score) for e in want]
    vec = HashEmbedder().embed(["Which animal eats the plant?"])[0]
    # documents=False: the question field holds no documents in memory (a query for them goes to the store)
    hits = memory.store.query("default-question", vec, 3, where={"split": {"$nin": ["train"]}}, documents=False)
    assert hits and all(h.metadata["split"] != "train" for h in hits)
    assert [h.id for h in hits] == [
        h.id for h in store.query("default-question", vec, 3, where={"split": {"$nin": ["train"]}})
    ]


def test_the_in_memory_bank_reads_metadata_once_per_bank_unless_a_field_holds_other_records(fixture_dataset, tmp_path):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.memory_bank import InMemoryBank
    from tests.conftest import HashEmbedder
    from tests.store_support import Counting

    store = ChromaStore(tmp_path / "chroma")
    build_index(default_bank(fixture_dataset), embedder=HashEmbedder(), store=store)
    ids, vectors, metas, _ = store.get_all("default-question")
    store.collection("default-context").delete(ids=[ids[0]])  # a field that lacks a record
    counting = Counting(store)
    bank = InMemoryBank(counting)
    answer, question, context = (bank.loaded(f"default-{f}") for f in ("answer", "question", "context"))
    assert counting.full == ["default-answer", "default-context"]  # the question field shares the metadata
    assert question.ids == answer.ids and question.metadatas is answer.metadatas
    row = {i: n for n, i in enumerate(ids)}
    assert np.array_equal(question.vectors, vectors[[row[i] for i in answer.ids]])
    assert bank.get_records("default-question", ids[:1])[ids[0]]["document"]  # the store still has it
    assert bank.query("default-question", vectors[0], 1)[0].document  # asked for, it comes from the store
    assert ids[0] not in context.row and ids[0] in answer.row


def test_retrieval_is_deterministic_whatever_order_the_bank_was_indexed_in(fixture_dataset, tmp_path):
    """The same query over two stores filled in opposite orders gives the same exemplars, scores and order
    (eval caches and reports rest on it)."""
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery
    from tests.conftest import HashEmbedder

    bank = default_bank(fixture_dataset)
    results = []
    for name, exemplars in (("forward", bank), ("backward", bank[::-1])):
        store = ChromaStore(tmp_path / name)
        build_index(exemplars, embedder=HashEmbedder(), store=store)
        retriever = ExemplarRetriever(HashEmbedder(), store)
        q = RetrievalQuery(answer="a rabbit", context="A meadow food chain with grass and foxes.")
        results.append([[(e.id, e.score) for e in retriever.retrieve(q, k=6)[0]] for _ in range(2)])
    assert results[0][0] == results[0][1] == results[1][0] == results[1][1]
    assert len(results[0][0]) >= 3


class ExactText:
    """A similarity model that knows only identical texts: cosine 1 for the same string, 0 otherwise."""

    name = "exact"
    model_id = "exact-text"
    dim = 4096

    def embed(self, texts):
        import hashlib

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, int(hashlib.sha256(t.encode()).hexdigest(), 16) % self.dim] = 1.0
        return out


def test_same_questions_are_decided_by_the_similarity_model_when_the_index_encoder_differs(
    fixture_index, fixture_dataset
):
    from coe.retrieval.retriever import ExemplarRetriever

    question = default_bank(fixture_dataset)[0].question
    by_index = fixture_index.same_questions(question, n=50, min_similarity=0.45)
    assert any(e.question != question for e in by_index)  # the bag-of-words index calls other questions alike

    judged = ExemplarRetriever(
        fixture_index.embedder, fixture_index.raw_store, similarity_embedder=ExactText()
    ).same_questions(question, n=50, min_similarity=0.45)
    assert judged and {e.question for e in judged} == {question}
    assert {e.score for e in judged} == {1.0}
    assert {e.id for e in judged} == {e.id for e in by_index if e.question == question}
