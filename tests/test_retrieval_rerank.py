"""The array rerank and diversity return exactly what the per-candidate loops they replaced returned: the same
exemplars, in the same order, with the same scores and signals, on real banks. The loops are kept here, and
only here, as the reference."""

import re

import numpy as np
import pytest

from coe.retrieval.answer_types import answer_type, compatible
from coe.retrieval.exemplars import Exemplar
from coe.retrieval.index import FIELDS, IMAGE_FIELD, build_index, default_bank
from coe.retrieval.rerank import Scored, diversify, score_candidates
from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery, RetrievalSettings


# --- the reference: the loops as they were ------------------------------------------------------------------
def _norm(s):
    return re.sub(r"\s+", " ", s.lower()).strip()


def loop_score(r, bank, candidates, vectors, weights, q):
    s = r.settings
    store = r.views[bank]
    ids = sorted(candidates)
    if not ids:
        return [], {}
    sims = {i: {} for i in ids}
    question_vecs = {}
    cross_modal = set()
    if IMAGE_FIELD in vectors:
        images = store.get_records(f"{bank}-{IMAGE_FIELD}", ids)
        cross_modal = {i for i, rec in images.items() if rec["metadata"].get("modality") == "text"}
    for field in FIELDS + ((IMAGE_FIELD,) if IMAGE_FIELD in vectors else ()):
        embs = store.get_embeddings(f"{bank}-{field}", ids)
        if field == "question":
            question_vecs = embs
        if field in vectors:
            for i, e in embs.items():
                sims[i][field] = float(np.dot(vectors[field], e))
    records = store.get_records(f"{bank}-answer", ids)
    want_type = answer_type(q.answer)
    total_w = sum(weights.values())
    scored = []
    for i in ids:
        meta = records.get(i, {}).get("metadata")
        if meta is None or meta.get("split") in q.exclude_splits:
            continue
        ex = Exemplar.from_metadata(i, meta)
        signals = {f: round(v, 4) for f, v in sims[i].items()}
        fused = sum(weights[f] * v for f, v in sims[i].items()
                    if f in weights and v >= r.settings.floor(f, i in cross_modal))
        score = fused / total_w
        if not compatible(want_type, ex.answer_type):
            score *= s.type_penalty
        if q.subject and ex.subject == q.subject:
            score += s.metadata_bonus
        if q.grade and ex.grade == q.grade:
            score += s.metadata_bonus
        if score < s.min_score:
            continue
        scored.append(ex.model_copy(update={"score": round(score, 4), "signals": signals, "bank": bank}))
    scored.sort(key=lambda e: (-e.score, e.id))
    return scored, {(bank, i): v for i, v in question_vecs.items()}


def loop_diverse(r, scored, qvecs, k):
    chosen, seen = [], set()
    pool = list(scored)
    keys = {id(ex): (_norm(ex.question), _norm(ex.answer)) for ex in pool}
    while pool and len(chosen) < k:
        best, best_val = None, -1e9
        for ex in pool[: 4 * k + len(chosen)]:
            if keys[id(ex)] in seen:
                continue
            key = (ex.bank, ex.id)
            redundancy = max((float(np.dot(qvecs[key], qvecs[(c.bank, c.id)])) for c in chosen
                              if key in qvecs and (c.bank, c.id) in qvecs), default=0.0)
            val = ex.score - r.settings.diversity * max(redundancy, 0.0)
            if val > best_val:
                best, best_val = ex, val
        if best is None:
            break
        pool.remove(best)
        seen.add(keys[id(best)])
        chosen.append(best)
        pool = [e for e in pool if keys[id(e)] not in seen]
    return chosen


def loop_retrieve(r, q, k):
    texts = r.contextualize(q)
    vectors = dict(zip(texts, r.query_embedder.embed([t for t, _ in texts.values()])))
    weights = {f: w for f, (_, w) in texts.items()}
    scored, qvecs = [], {}
    for bank in r.banks:
        part, vecs = loop_score(r, bank, r.recall(vectors, q, bank), vectors, weights, q)
        scored += part
        qvecs.update(vecs)
    scored.sort(key=lambda e: (-e.score, e.bank, e.id))
    return scored, loop_diverse(r, scored, qvecs, k)


# --- the comparison ----------------------------------------------------------------------------------------
def as_rows(exemplars):
    return [(e.bank, e.id, e.score, e.signals, e.question, e.answer, e.distractors) for e in exemplars]


def assert_same(r, q, k):
    want_scored, want = loop_retrieve(r, q, k)
    got, info = r.retrieve(q, k=k)
    assert as_rows(got) == as_rows(want)
    assert [e.model_dump() for e in got] == [e.model_dump() for e in want]
    # every candidate's score, not just the chosen ones
    texts = r.contextualize(q)
    vectors = dict(zip(texts, r.query_embedder.embed([t for t, _ in texts.values()])))
    weights = {f: w for f, (_, w) in texts.items()}
    scored = Scored.concat([score_candidates(r, b, r.recall(vectors, q, b), vectors, weights, q) for b in r.banks])
    order = np.lexsort((scored.ids, scored.bank, -scored.score))
    assert [(str(scored.bank[i]), str(scored.ids[i]), float(scored.score[i])) for i in order] == \
        [(e.bank, e.id, e.score) for e in want_scored]
    return want_scored, want


def queries(items):
    for n, p in enumerate(items):
        common = dict(answer=p.answer, context=p.hint if not p.hint_missing else "", image_text=p.caption,
                      exclude_ids=[p.pid])
        yield RetrievalQuery(question=p.question, exclude_splits=["test"], **common)
        yield RetrievalQuery(**common)  # the question to be written: inferred from material and answer
        if n % 3 == 0:
            yield RetrievalQuery(question=p.question, subject=p.subject, grade=p.grade, exclude_splits=["val"],
                                 **common)


@pytest.fixture(scope="module")
def real_banks(tmp_path_factory):
    """Two banks of real ScienceQA exemplars (many templated repeats, ids shared between the banks), embedded
    with the real MiniLM in a real Chroma store; and test items to query them with."""
    from coe.dataset_loaders import ScienceQA
    from coe.modelstore import is_pulled
    from coe.paths import scienceqa_dir
    from coe.plugins.embed.minilm_onnx import MiniLMOnnxEmbedder
    from coe.plugins.store.chroma import ChromaStore

    if not (scienceqa_dir() / "problems.json").is_file():
        pytest.fail(f"ScienceQA data not found at {scienceqa_dir()} (set COE_SCIENCEQA_DIR)")
    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    dataset = ScienceQA()
    bank = default_bank(dataset)
    store = ChromaStore(tmp_path_factory.mktemp("chroma"))
    embedder = MiniLMOnnxEmbedder()
    build_index(bank[:600:3], embedder=embedder, store=store)
    build_index(bank[1:600:4], embedder=embedder, store=store, bank="teacher")
    return embedder, store, list(dataset.split("test"))[:24]


@pytest.mark.slow
@pytest.mark.parametrize("in_memory", [True, False])
def test_array_rerank_matches_the_loops_on_real_banks(real_banks, in_memory):
    """The in-memory matrices on every query; the store's own API (one round trip per lookup) on a few."""
    embedder, store, items = real_banks
    one = ExemplarRetriever(embedder, store, in_memory=in_memory)
    both = ExemplarRetriever(embedder, store, banks=["default", "teacher"], in_memory=in_memory)
    crowded = ExemplarRetriever(embedder, store, banks=["default", "teacher"], in_memory=in_memory,
                                settings=RetrievalSettings(diversity=0.6, recall_n=60))
    repeats = picked = 0
    for q in queries(items if in_memory else items[:6]):
        for r, k in ((one, 4), (both, 4), (crowded, 8)):
            scored, chosen = assert_same(r, q, k)
            picked += len(chosen)
            keys = [(_norm(e.question), _norm(e.answer)) for e in scored]
            repeats += len(keys) - len(set(keys))
    # the comparison covered what the diversity step does: picks, and exact repeats to drop
    assert picked > (150 if in_memory else 40) and repeats > (30 if in_memory else 5)


def test_array_rerank_matches_the_loops_on_the_fixture(fixture_index):
    """The hash-embedded fixture bank, through the store's own API as well (no in-memory matrices)."""
    for r in (fixture_index, ExemplarRetriever(fixture_index.embedder, fixture_index.raw_store, in_memory=False)):
        for q in (RetrievalQuery(answer="rabbit", context="food chain grass rabbit fox", image_text="grass rabbit fox"),
                  RetrievalQuery(answer="milk", question="Which of these is a liquid?", exclude_ids=["5"]),
                  RetrievalQuery(answer="yes", question="Which object in the picture is larger?",
                                 subject="natural science", exclude_splits=["val"])):
            _, chosen = assert_same(r, q, 4)
            assert chosen


def test_no_candidates_and_empty_scores():
    empty = Scored.concat([])
    assert diversify(empty, 4, 0.15) == []


def test_query_embeddings_are_cached_by_exact_text(fixture_index):
    from coe.retrieval.query_cache import CachedQueryEmbedder

    calls = []

    class Counting:
        model_id, dim = "counting", 64

        def embed(self, texts):
            calls.append(list(texts))
            return fixture_index.embedder.embed(texts)

    cached = CachedQueryEmbedder(Counting(), maxsize=2)
    first = cached.embed(["a fox", "a hen"])
    again = cached.embed(["a hen", "a fox"])
    assert np.array_equal(first[::-1], again) and calls == [["a fox"], ["a hen"]]  # each text alone, once
    again[:] = 0.0  # what a caller gets is its own copy: the cache is not changed through it
    assert np.array_equal(cached.embed(["a fox"])[0], first[0]) and len(calls) == 2
    cached.embed(["a fox ", "a cow"])  # another text (a space differs) is encoded; the cache keeps two
    assert calls[-2:] == [["a fox "], ["a cow"]] and cached.cache_info().currsize == 2
    cached.embed(["a hen"])
    assert calls[-1] == ["a hen"]  # evicted, encoded again


@pytest.mark.slow
def test_minilm_embedders_share_one_session_and_a_text_alone_is_stable():
    from coe.modelstore import is_pulled
    from coe.plugins.embed.minilm_onnx import MiniLMOnnxEmbedder
    from coe.retrieval.query_cache import CachedQueryEmbedder

    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    a, b = MiniLMOnnxEmbedder(), MiniLMOnnxEmbedder(max_length=256)
    assert a._session is b._session  # loaded once per process, whoever asks
    long = "Below is a food web from Little Rock Lake, a freshwater lake ecosystem in Wisconsin. " * 3
    cached = CachedQueryEmbedder(a)
    alone = cached.embed(["copepod"])[0]
    beside = cached.embed([long, "copepod"])[1]
    assert np.array_equal(alone, beside) and np.array_equal(alone, a.embed(["copepod"])[0])
    assert np.isclose(np.linalg.norm(alone), 1.0, atol=1e-3)
