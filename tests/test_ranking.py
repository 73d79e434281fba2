"""The learned distractor ranker: bank counts and leave-one-out, features computed by hand, the ranker file's
checks, deterministic training, and reviewers' decisions changing the order."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from coe.retrieval.exemplars import Exemplar
from coe.ranking.bank import BankStats
from coe.ranking.candidates import build_pool
from coe.ranking.features import ItemContext, features
from tests.conftest import HashEmbedder


def ex(id, question, answer, distractors, split="train", context=""):
    return Exemplar(id=id, question=question, answer=answer, distractors=distractors, split=split, context=context)


HAND = [ex("a", "Which is a mammal?", "dog", ["frog", "snake"]),
        ex("b", "Which is a mammal?", "cat", ["frog", "lizard"]),
        ex("c", "Which is a bird?", "owl", ["dog", "frog"])]


def test_bank_counts_and_leave_one_out():
    s = BankStats(HAND)
    assert dict(s.beside("dog")) == {"frog": 2, "snake": 1, "owl": 1}
    # item a itself is the only one where snake stands beside dog
    assert dict(s.beside("dog", ["a"])) == {"frog": 1, "owl": 1}
    assert s.frequency("frog") == 3 and s.frequency("frog", ["b"]) == 2
    counts, n = s.as_distractor("Which is a mammal?")
    assert (dict(counts), n) == ({"frog": 2, "snake": 1, "lizard": 1}, 2)
    counts, n = s.as_distractor("which is a mammal", ["b"])
    assert (dict(counts), n) == ({"frog": 1, "snake": 1}, 1)
    by_answer, by_type = s.questions("dog", ["a"])
    assert dict(by_answer) == {} and dict(by_type) == {"which is mammal": 1, "which is bird": 1}


def test_pool_sources_and_features_by_hand():
    s = BankStats(HAND)
    material = "A frog sits by the pond."
    pool = build_pool("dog", "Which is a mammal?", material, [], s)
    assert [c.text for c in pool] == ["frog", "owl", "snake", "lizard"]
    assert pool[0].sources == {"beside", "template", "material"}
    assert pool[3].sources == {"template"}
    x, names = features(pool, ItemContext("dog", "Which is a mammal?", material, [], s))
    col = lambda name: x[:, names.index(name)].tolist()  # noqa: E731
    # counts per 1,000 bank items (N = 3)
    assert col("beside_count") == pytest.approx([2000 / 3, 1000 / 3, 1000 / 3, 0])
    assert col("beside_share") == [1.0, 0.5, 0.5, 0.0]            # dog stands in 2 items
    # PMI = log(count * N / (freq(dog) * freq(option))), N = 3 items
    assert col("beside_pmi")[:3] == pytest.approx([math.log(2 * 3 / (2 * 3)), math.log(1 * 3 / (2 * 1)),
                                                   math.log(1 * 3 / (2 * 1))])
    assert col("beside_pmi")[3] == -5.0
    assert col("template_count") == pytest.approx([2000 / 3, 0, 1000 / 3, 1000 / 3])
    assert col("template_items") == pytest.approx([2000 / 3] * 4)           # two items ask it
    # frog stands in all three items, owl (a key), snake and lizard in one each
    assert col("option_freq_log") == pytest.approx([math.log1p(3000 / 3)] + [math.log1p(1000 / 3)] * 3)
    assert col("template_share") == [1.0, 0.0, 0.5, 0.5]
    # only item a asks this template with the key dog (item b asks it with cat)
    assert col("keyed_count") == pytest.approx([1000 / 3, 0, 1000 / 3, 0])
    assert col("keyed_share") == [1.0, 0.0, 1.0, 0.0] and col("keyed_items") == pytest.approx([1000 / 3] * 4)
    assert col("in_material") == [1, 0, 0, 0]
    assert col("src_material") == [1, 0, 0, 0] and col("n_sources") == [3, 1, 2, 1]
    assert col("words_log_ratio") == [0, 0, 0, 0] and col("plural_agree") == [1, 1, 1, 1]


def test_count_features_are_relative_to_the_bank_size():
    # the same bank twice over (as train+val is to train): counts double, the features do not
    double = HAND + [e.model_copy(update={"id": e.id + "2"}) for e in HAND]
    from coe.ranking.questions import question_features, question_pool

    def cols(bank):
        s = BankStats(bank)
        pool = build_pool("dog", "Which is a mammal?", "", [], s)
        x, names = features(pool, ItemContext("dog", "Which is a mammal?", "", [], s))
        qpool = question_pool("dog", "", [], s)
        qx, qnames = question_features(qpool, ItemContext("dog", "", "", [], s))
        return ({c.text: x[i] for i, c in enumerate(pool)}, names), ({c.text: qx[i] for i, c in enumerate(qpool)}, qnames)
    (one, names), (q_one, q_names) = cols(HAND)
    (two, _), (q_two, _) = cols(double)
    assert set(one) == set(two) and set(q_one) == set(q_two)
    for name in ("beside_count", "template_count", "template_items", "option_freq_log", "key_freq_log"):
        i = names.index(name)
        assert [one[k][i] for k in sorted(one)] == pytest.approx([two[k][i] for k in sorted(one)]), name
    for name in ("count_given_answer", "answer_items_log"):
        i = q_names.index(name)
        assert [q_one[k][i] for k in sorted(q_one)] == pytest.approx([q_two[k][i] for k in sorted(q_one)]), name
    assert BankStats(double).beside("dog")["frog"] == 2 * BankStats(HAND).beside("dog")["frog"]


def test_wordnet_sisters_the_bank_knows_join_the_pool():
    # wolf, fox and hyena are WordNet sisters of dog (under canine); the bank offers wolf and fox as options
    # somewhere, never beside dog, and fox more often; hyena it never offers
    bank = [*HAND, ex("d", "Which is a predator?", "owl", ["wolf", "fox"]), ex("e", "Which hunts?", "cat", ["fox"])]
    s = BankStats(bank)
    wordnet = [c for c in build_pool("dog", "Which is a mammal?", "", [], s) if "wordnet" in c.sources]
    assert [c.text for c in wordnet] == ["fox", "wolf"]
    # leave-one-out: with item d out, the bank no longer knows wolf
    out = [c.text for c in build_pool("dog", "", "", [], s, exclude_ids=("d",)) if "wordnet" in c.sources]
    assert out == ["fox"]
    assert not [c for c in build_pool("dog", "Which is a mammal?", "", [], s, sisters=None) if "wordnet" in c.sources]


def test_pool_leaves_the_item_out():
    s = BankStats(HAND)
    keys = [c.key for c in build_pool("dog", "Which is a mammal?", "", [], s, exclude_ids=("a",))]
    assert "snake" not in keys and "frog" in keys and "lizard" in keys
    assert s.for_template_and_key("Which is a mammal?", "dog", ["a"]) == ({}, 0)
    assert s.for_template_and_key("Which is a mammal?", "cat", ["a"]) == ({"frog": 1, "lizard": 1}, 1)


# --- a small bank, indexed in a real Chroma store, for training --------------------------------------------

GROUPS = {  # a templated bank: each question has its own option family
    "Which animal is a predator?": ["hawk", "owl", "fox", "wolf", "eagle"],
    "Which of these is a fruit?": ["apple", "pear", "plum", "grape", "cherry"],
    "Which of these is a metal?": ["iron", "copper", "zinc", "tin", "lead"],
    "Which planet is shown?": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury"],
}


def small_bank() -> list[Exemplar]:
    out = []
    n = 0
    for q, family in GROUPS.items():
        for i, answer in enumerate(family):
            for j in range(4):
                others = [o for o in family if o != answer]
                rot = others[j % len(others):] + others[:j % len(others)]
                split = ("test" if n % 7 == 3 else "val" if n % 5 == 1 else "train")
                out.append(ex(f"{n:03d}", q, answer, rot[:2], split=split, context=f"Look at the {family[0]}."))
                n += 1
    return out


@pytest.fixture
def bank_retriever(tmp_path):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index
    from coe.retrieval.retriever import ExemplarRetriever

    store = ChromaStore(tmp_path / "chroma")
    embedder = HashEmbedder()
    build_index(small_bank(), embedder=embedder, store=store)
    return ExemplarRetriever(embedder, store)


def test_training_is_deterministic_and_never_sees_test_items(bank_retriever, tmp_path):
    from coe.ranking.build import build_rankers

    first = build_rankers(bank_retriever, directory=tmp_path / "r1")
    second = build_rankers(bank_retriever, directory=tmp_path / "r2")
    for name in ("distractors.lgb.txt", "distractors.json"):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes()
    test_ids = {e.id for e in small_bank() if e.split == "test"}
    val_ids = {e.id for e in small_bank() if e.split == "val"}
    assert test_ids and first["train_ids"] and not (set(first["train_ids"]) & (test_ids | val_ids))
    meta = json.loads((tmp_path / "r1" / "distractors.json").read_text())
    assert meta["val_items"] > 0 and set(meta["val"]) >= {"ndcg@3", "recall@n", "coverage"}
    assert meta["features"] == first["features"] and "beside_count" in meta["importance"]
    # a second build of the same index is skipped
    assert build_rankers(bank_retriever, directory=tmp_path / "r1")["status"] == "up to date"
    assert second["training_digest"] == first["training_digest"]


def test_a_bank_too_small_to_train_on_is_refused_in_one_line_and_nothing_is_written(tmp_path):
    from coe.plugins.store.chroma import ChromaStore
    from coe.ranking.build import build_rankers
    from coe.ranking.train import MIN_TRAIN_ITEMS, TooFewItems
    from coe.retrieval.index import build_index
    from coe.retrieval.retriever import ExemplarRetriever

    store = ChromaStore(tmp_path / "chroma")
    tiny = [e for e in small_bank() if e.split == "train"][:MIN_TRAIN_ITEMS - 1]
    build_index(tiny, embedder=HashEmbedder(), store=store)
    with pytest.raises(TooFewItems, match=f"{MIN_TRAIN_ITEMS - 1} train items .* heuristic ranking is used"):
        build_rankers(ExemplarRetriever(HashEmbedder(), store), directory=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_missing_and_corrupt_ranker_files(tmp_path):
    from coe.ranking.model import RANKER_VERSION, load, paths

    ranker, reason = load("distractors", tmp_path / "none")
    assert ranker is None and "no distractors ranker" in reason and "heuristic" in reason
    model_path, meta_path = paths("distractors", tmp_path / "bad")
    model_path.parent.mkdir()
    model_path.write_text("tree\nnot a model")
    meta_path.write_text("{not json")
    ranker, reason = load("distractors", tmp_path / "bad")
    assert ranker is None and "unreadable" in reason and "\n" not in reason
    meta_path.write_text(json.dumps({"version": RANKER_VERSION, "model_sha256": "0" * 64, "features": []}))
    ranker, reason = load("distractors", tmp_path / "bad")
    assert ranker is None and "damaged" in reason
    meta_path.write_text(json.dumps({"version": 0}))
    assert "version 0" in load("distractors", tmp_path / "bad")[1]


def test_a_ranker_of_another_index_is_not_used(bank_retriever, tmp_path):
    from coe.ranking.build import build_rankers
    from coe.ranking.model import load

    build_rankers(bank_retriever, directory=tmp_path / "r")
    assert load("distractors", tmp_path / "r", index="another index")[1].startswith(
        f"the distractors ranker in {tmp_path / 'r'} was trained on another exemplar index")


def _item_order(retriever, directory, answer="hawk", question="Which animal is a predator?"):
    from coe.ranking.select import rank_pool
    from coe.retrieval.retriever import RetrievalQuery

    splits = ["val", "test"]
    found, _ = retriever.retrieve(RetrievalQuery(answer=answer, question=question, exclude_splits=splits), k=10)
    ranked, reason = rank_pool(answer, question, "", found, retriever, exclude_splits=splits, directory=directory)
    assert reason is None
    return [r["option"] for r in ranked]


def test_reviewer_decisions_change_the_order(bank_retriever, tmp_path):
    from coe.batch.ledger import Ledger
    from coe.batch.manifest import Row
    from coe.ranking.build import build_rankers

    build_rankers(bank_retriever, directory=tmp_path / "before")
    before = _item_order(bank_retriever, tmp_path / "before")
    top = before[0]
    run = tmp_path / "run"
    with Ledger(run) as ledger:
        ledger.begin(manifest="m.csv", settings={})
        rows = [Row(id=f"r{i}", line=i + 2, answer="hawk") for i in range(3)]
        ledger.sync(rows, [])
        for r in rows:
            ledger.record_done(r.id, {"question": "Which animal is a predator?", "answer": "hawk",
                                      "distractors": [top, before[1]], "status": "verified"}, seconds=0.1)
            ledger.edit(r.id, {"distractors": ["owl" if top != "owl" else "eagle", before[1]]})
            ledger.decide(r.id, "accepted")
    result = build_rankers(bank_retriever, directory=tmp_path / "after", from_runs=[str(run)])
    assert result["reviewed_items"] == 3 and result["decision_rows"] > 0
    after = _item_order(bank_retriever, tmp_path / "after")
    assert after.index(top) > before.index(top)


def _graph_run(retriever, **conf):
    from coe.graphs import Services, graph
    from tests.scripted_llm import ScriptedLLM
    from tests.test_graph import StubReader

    llm = ScriptedLLM(lambda request: {"question": "Which animal is a predator?"})
    services = Services(llm=llm, retriever=retriever, image_reader=StubReader())
    out = graph.invoke({"answer": "hawk", "question_given": "Which animal is a predator?", "n_distractors": 2},
                       config={"configurable": {"n_distractors": 2, "verify": False, "write_notes": False,
                                                "use_rationale": False, "pool_selection": "learned", **conf}},
                       context=services)
    return out, llm, next(t for t in out["trace"] if t["node"] == "distractors")


def test_graph_uses_the_learned_ranking_without_a_model_call(bank_retriever, tmp_path, monkeypatch):
    from coe.ranking.build import build_rankers
    from coe.ranking.model import ranker_dir

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    build_rankers(bank_retriever, directory=ranker_dir(["default"]))
    out, llm, step = _graph_run(bank_retriever)
    assert step["source"] == "learned ranking" and out["distractors"] == step["parsed"]
    assert [r["option"] for r in step["ranking"][:2]] == out["distractors"] and not llm.requests
    assert set(out["distractors"]) <= {"owl", "fox", "wolf", "eagle"}


def test_graph_without_a_ranker_uses_the_heuristic_and_says_why(bank_retriever, tmp_path, monkeypatch):
    monkeypatch.setenv("COE_HOME", str(tmp_path / "empty-home"))
    out, llm, step = _graph_run(bank_retriever)
    assert step["source"] == "pool ranking" and len(out["distractors"]) == 2
    assert "no distractors ranker" in step["note"] and "heuristic" in step["note"]


def test_question_step_takes_the_question_rankers_choice(bank_retriever, tmp_path, monkeypatch):
    from coe.graphs import Services, build_graph
    from coe.ranking.build import build_rankers
    from coe.ranking.model import ranker_dir
    from tests.scripted_llm import ScriptedLLM
    from tests.test_graph import StubReader

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    result = build_rankers(bank_retriever, directory=ranker_dir(["default"]))
    assert result["questions"]["val_items"] > 0 and "template_exact@1" in result["questions"]["val"]
    llm = ScriptedLLM(lambda request: {"question": "What is this?"})
    out = build_graph(until="question").invoke(
        {"answer": "copper", "context": "Look at the iron.", "n_distractors": 2},
        config={"configurable": {"question_selection": "learned", "verify": False, "exclude_splits": ["test"]}},
        context=Services(llm=llm, retriever=bank_retriever, image_reader=StubReader()))
    step = next(t for t in out["trace"] if t["node"] == "question")
    assert step["source"] == "learned ranking" and not llm.requests
    assert out["question"] == "Which of these is a metal?" == step["candidates"][0]["text"]


# --- the default selection: "auto", resolved from whether the backend sees the picture ---------------------

def _backend(sees: bool):
    from tests.scripted_llm import ScriptedLLM
    from tests.test_graph import stage_of

    llm = ScriptedLLM(lambda request: {"question": "What is this?"} if stage_of(request) == "question"
                      else {"distractors": ["zinc", "tin"]})
    llm.supports_images = sees  # a text-only backend (llama.cpp GGUF) or one that sees the picture
    return llm


def test_auto_resolves_from_the_backend_and_forced_values_stay():
    from coe.graphs.settings import GraphSettings, resolve_selection

    default = GraphSettings()
    assert (default.pool_selection, default.question_selection) == ("auto", "auto")
    s, shown = resolve_selection(default, _backend(False))
    assert (s.pool_selection, s.question_selection) == ("learned", "learned")
    assert shown["auto"] == {"pool_selection": "learned", "question_selection": "learned"}
    assert s.max_distractor_rounds == 0 and s.text_only is False
    assert "cannot see the picture" in shown["why"]
    s, shown = resolve_selection(default, _backend(True))
    assert (s.pool_selection, s.question_selection) == ("blend", "model") and "sees the picture" in shown["why"]
    assert s.max_distractor_rounds == 1 and s.text_only is True
    # a value the user forces is kept on either backend, and nothing "auto" is left to show
    forced = GraphSettings(pool_selection="blend", question_selection="model", max_distractor_rounds=2,
                           text_only=True)
    assert resolve_selection(forced, _backend(False)) == (forced, None)
    forced = GraphSettings(pool_selection="learned", question_selection="learned", max_distractor_rounds=0,
                           text_only=False)
    assert resolve_selection(forced, _backend(True)) == (forced, None)
    # unset rounds are resolved even when both selections are forced
    s, shown = resolve_selection(GraphSettings(pool_selection="learned", question_selection="learned"), _backend(True))
    assert s.max_distractor_rounds == 1 and shown is None
    with pytest.raises(ValueError):
        GraphSettings(pool_selection="learnt")


def test_choose_forces_either_side():
    from coe.errors import InputError
    from coe.graphs.settings import GraphSettings, choose_settings, resolve_selection

    assert choose_settings("auto") == {}
    for choose, sees, expected in (("rankers", True, ("learned", "learned")), ("model", False, ("blend", "model"))):
        s, shown = resolve_selection(GraphSettings(**choose_settings(choose)), _backend(sees))
        assert (s.pool_selection, s.question_selection) == expected and shown is None
    with pytest.raises(InputError, match="--choose must be auto, rankers, model"):
        choose_settings("learnt")


def _default_run(retriever, llm, **conf):
    from coe.graphs import Services, graph
    from tests.test_graph import StubReader

    out = graph.invoke({"answer": "copper", "context": "Look at the iron.", "n_distractors": 2},
                       config={"configurable": {"n_distractors": 2, "verify": False, "use_rationale": False,
                                                "write_notes": False, "exclude_splits": ["test"], **conf}},
                       context=Services(llm=llm, retriever=retriever, image_reader=StubReader()))
    return out, {t["node"]: t for t in out["trace"]}


def test_text_only_backend_defaults_to_the_rankers(bank_retriever, tmp_path, monkeypatch):
    from coe.ranking.build import build_rankers
    from coe.ranking.model import ranker_dir

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    build_rankers(bank_retriever, directory=ranker_dir(["default"]))
    llm = _backend(False)
    out, steps = _default_run(bank_retriever, llm)
    assert not llm.requests  # neither the question nor the distractors asked the model
    assert steps["question"]["source"] == "learned ranking" and out["question"] == "Which of these is a metal?"
    assert steps["distractors"]["source"] == "learned ranking" and out["distractors"] == steps["distractors"]["parsed"]
    assert set(out["distractors"]) <= {"iron", "zinc", "tin", "lead"}
    for node in ("question", "distractors"):
        assert steps[node]["selection"]["auto"] == {"pool_selection": "learned", "question_selection": "learned"}
    # the printed item says who chose
    from rich.console import Console

    from coe.generate import mcq_from_output
    from coe.render import show_item
    console = Console(width=200, record=True)
    show_item(mcq_from_output(out, k=3, image=None), console)
    printed = console.export_text()
    assert printed.count("learned ranking, no model call") == 2 and "Which of these is a metal?" in printed
    # forcing the model path on the same backend: the model writes both, nothing resolved to show
    llm = _backend(False)
    out, steps = _default_run(bank_retriever, llm, pool_selection="model", question_selection="model",
                              question_exemplars=0, question_samples=0)
    assert out["question"] == "What is this?" and out["distractors"] == ["zinc", "tin"]
    assert len(llm.requests) == 2 and "selection" not in steps["question"] and "selection" not in steps["distractors"]


def test_image_capable_backend_keeps_the_model_steps(bank_retriever, tmp_path, monkeypatch):
    from coe.ranking.build import build_rankers
    from coe.ranking.model import ranker_dir

    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    build_rankers(bank_retriever, directory=ranker_dir(["default"]))
    llm = _backend(True)
    out, steps = _default_run(bank_retriever, llm)
    assert out["question"] == "What is this?" and out["distractors"] == ["zinc", "tin"] and len(llm.requests) == 2
    for node in ("question", "distractors"):
        assert steps[node]["selection"]["auto"] == {"pool_selection": "blend", "question_selection": "model"}
    assert steps["distractors"].get("source") != "learned ranking"
    # forcing the rankers on the same backend
    llm = _backend(True)
    out, steps = _default_run(bank_retriever, llm, pool_selection="learned", question_selection="learned")
    assert not llm.requests and steps["distractors"]["source"] == "learned ranking"


def test_threads_of_one_batch_build_the_bank_counts_once(monkeypatch):
    import threading
    import time

    from coe.ranking import bank

    built = []

    def records(retriever, exclude_splits=()):
        built.append(threading.get_ident())
        time.sleep(0.2)  # long enough for every thread to ask while the first one builds
        return []

    class Retriever:  # stats are kept per retriever object
        pass

    monkeypatch.setattr(bank, "bank_records", records)
    retriever, got = Retriever(), []
    threads = [threading.Thread(target=lambda: got.append(bank.stats_for(retriever, ["test"]))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 4 and all(s is got[0] for s in got)
