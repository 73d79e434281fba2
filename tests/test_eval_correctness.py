"""Correctness figures of ``coe eval``: QG template scores, bootstrap intervals, answerability and verifier
quality (precision/recall on known-false items), against values computed by hand."""

import json

import pytest

from coe.eval import known_false as kf
from coe.eval.bootstrap import interval, ratio, with_ci
from coe.eval.items import EvalItem, load_items
from coe.eval.report import write_report
from coe.eval.scoring import aggregate
from coe.eval.template_match import states_key, template_mask, template_scores
from coe.eval.verifier_scores import answer_scores, quality_scores
from coe.eval.verify_task import answerability, options_for, run_verify, verifier_quality
from coe.graphs import Services
from coe.retrieval.answer_types import answer_type


def _item(pid, question, answer, distractors=("x", "y"), split="train", rationale=""):
    return EvalItem(pid=str(pid), split=split, question=question, answer=answer, gold_distractors=list(distractors),
                    context="", image_path=None, dataset_image_text="", gold_rationale=rationale, subject=None,
                    grade_band="unknown", context_type="NO")


# --- QG template scores -------------------------------------------------------------------------------

def test_template_exact_near_and_states_key_on_handmade_pairs():
    cases = [  # (generated, gold, key) -> (exact, near, states_key)
        ("which is the capital of utah", "Which is the capital of Utah?", "Salt Lake City", (1, 1, 0)),
        ("What is the capital of Ohio?", "What is the capital of Utah?", "Salt Lake City", (0, 1, 0)),
        ("Select the bird.", "Select the fish.", "robin", (0, 0, 0)),
        ("How long is a 5-meter rope?", "How long is a 12-meter rope?", "5 meters", (0, 1, 0)),
        ("Which figure of speech is used in this text?", "Which figure of speech is used in this text?\n"
         "Tom's words were music to her ears.", "metaphor", (0, 1, 0)),
        ("Is a pencil a solid or a liquid?", "Which is a solid?", "a solid", (0, 0, 1)),
        ("Which animal eats the plant?", "Which animal eats the plant?", "mouse", (1, 1, 0)),
    ]
    got = [template_scores(q, g, k) for q, g, k, _ in cases]
    assert [(s["template_exact"], s["template_near"], s["states_key"]) for s in got] == [c[3] for c in cases]
    # The reference rate: the gold question "Which is a solid?" states the key too.
    assert [s["states_key_gold"] for s in got] == [0, 0, 0, 0, 0, 1, 0]


def test_template_mask_masks_key_numbers_and_names_but_not_sentence_starts():
    assert template_mask("Is the coin hot or cold?", "hot") == "is coin qqkey or cold"
    assert template_mask("Which state is Ohio? Mona said 3 things.", "x") == \
        "which state is qqname mona said qqnum things"
    assert template_mask("Which property do these three objects have?", "x") == \
        template_mask("Which property do these 2 objects have?", "x")
    assert template_mask("What is the capital of (Utah)?", "x") == template_mask("What is the capital of Ohio?", "x")


def test_states_key_is_whole_normalised_phrase():
    assert states_key("Is the Sun a star?", "a star")
    assert not states_key("Is it a sunny day?", "sun")
    assert not states_key(None, "sun")


def test_qg_scores_include_template_scores(fixture_dataset):
    from coe.eval.scoring import Scorer
    from tests.conftest import HashEmbedder

    item = load_items(fixture_dataset, "test", "qg")[0]
    s = Scorer(HashEmbedder()).score("qg", item, {"question": item.question.lower()})
    assert (s["template_exact"], s["template_near"], s["valid"]) == (1.0, 1.0, 1.0)


def test_task_and_kind_options():
    from coe.errors import InputError
    from coe.eval.command import parse_kinds, parse_tasks

    assert parse_tasks("all,verify") == ["qg", "rg", "dg", "verify"]
    assert parse_tasks("verify, qg") == ["qg", "verify"]
    assert parse_kinds("second_key,key_in_question") == ("second_key", "key_in_question")
    with pytest.raises(InputError, match="--task"):
        parse_tasks("verif")
    with pytest.raises(InputError, match="unknown known-false kind"):
        parse_kinds("second_key,typo")


def test_missing_question_scores_zero_but_keeps_gold_reference():
    s = template_scores(None, "Is a rock a solid?", "a solid")
    assert s == {"template_exact": 0.0, "template_near": 0.0, "states_key": 0.0, "states_key_gold": 1.0}


# --- bootstrap ---------------------------------------------------------------------------------------

def test_bootstrap_constant_values_give_a_point_interval():
    assert interval([1.0] * 20) == (1.0, 1.0)
    assert interval([1.0, 1.0], den=[2.0, 2.0]) == (0.5, 0.5)
    assert interval([float("nan"), 1.0, 1.0]) == (1.0, 1.0)  # NaN items are left out
    lo, hi = interval([])
    assert lo != lo and hi != hi  # NaN: nothing to resample


def test_bootstrap_two_items_hand_computed():
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5th and 97.5th
    # percentiles are 0 and 1.
    assert interval([0.0, 1.0], resamples=4000, seed=3) == (0.0, 1.0)


def test_bootstrap_is_seeded_and_matches_the_normal_approximation():
    values = [1.0] * 200 + [0.0] * 200
    a = interval(values, seed=7)
    assert a == interval(values, seed=7)
    assert a != interval(values, seed=8)
    half = 1.96 * (0.25 / 400) ** 0.5  # 0.049
    assert a[0] == pytest.approx(0.5 - half, abs=0.012) and a[1] == pytest.approx(0.5 + half, abs=0.012)
    assert ratio([1, 0, 1], [1, 1, 2]) == pytest.approx(0.5)


def test_with_ci_format():
    assert with_ci(0.5123, (0.4712, 0.5548)) == "0.512 [0.47, 0.55]"
    assert with_ci(0.5, (float("nan"), float("nan"))) == "0.500"
    assert with_ci(float("nan"), None) == "–"


def test_aggregate_carries_an_interval_for_every_overall_mean():
    items = [_item(i, "q", "a") for i in range(10)]
    rows = [(it, {"valid": 1.0, "bleu4": float(i % 2)}) for i, it in enumerate(items)]
    agg = aggregate(rows, seed=0)
    assert agg["ci"]["valid"] == [1.0, 1.0]
    lo, hi = agg["ci"]["bleu4"]
    assert lo < agg["overall"]["bleu4"] == 0.5 < hi
    assert aggregate(rows, seed=0)["ci"] == agg["ci"]


# --- verifier quality and answerability figures ------------------------------------------------------

def test_precision_recall_and_false_positive_rate_hand_computed():
    records = [{"kind": "gold", "pid": "1", "flagged": False}, {"kind": "gold", "pid": "2", "flagged": True},
               {"kind": "gold", "pid": "3", "flagged": False},
               *[{"kind": "key_in_question", "pid": p, "flagged": True} for p in "123"],
               {"kind": "second_key", "pid": "1", "flagged": False},
               {"kind": "second_key", "pid": "3", "flagged": True}]
    skipped = [{"kind": "second_key", "pid": "2", "reason": "no WordNet synonym of the key"}]
    q = quality_scores(records, skipped)
    assert q["gold"]["false_positive_rate"]["value"] == pytest.approx(1 / 3)
    kq = q["kinds"]["key_in_question"]
    assert (kq["n"], kq["recall"]["value"], kq["precision"]["value"]) == (3, 1.0, pytest.approx(3 / 4))
    sk = q["kinds"]["second_key"]
    # pids 1 and 3: one of two flagged; their gold items are not flagged, so precision 1/1
    assert (sk["n"], sk["skipped"], sk["recall"]["value"], sk["precision"]["value"]) == (2, 1, 0.5, 1.0)
    assert sk["skip_reasons"] == {"no WordNet synonym of the key": 1}
    # overall: 4 of 5 known-false flagged; gold flags paired with them: pid 2 once → precision 4/5
    o = q["overall"]
    assert (o["n"], o["recall"]["value"], o["precision"]["value"]) == (5, 0.8, 0.8)
    assert o["recall"]["ci"][0] <= 0.8 <= o["recall"]["ci"][1]
    assert kq["recall"]["ci"] == [1.0, 1.0]


def test_known_false_without_its_gold_verdict_is_an_error():
    with pytest.raises(ValueError, match="without a verified gold item"):
        quality_scores([{"kind": "key_in_question", "pid": "9", "flagged": True}], [])


def test_answer_scores_count_unusable_items_apart():
    records = [{"source": "gold", "pid": "1", "key_prob": 0.9, "key_top": True},
               {"source": "gold", "pid": "2", "key_prob": 0.3, "key_top": False},
               {"source": "dg:coe", "pid": "1", "key_prob": 0.6, "key_top": True},
               {"source": "dg:coe", "pid": "2", "unusable": "no distractors"}]
    s = answer_scores(records)
    assert s["gold"]["n"] == 2 and s["gold"]["key_top"]["value"] == 0.5
    assert s["gold"]["key_prob"]["value"] == pytest.approx(0.6)
    assert (s["dg:coe"]["n"], s["dg:coe"]["unusable"], s["dg:coe"]["key_top"]["value"]) == (1, 1, 1.0)


def test_options_for_refuses_items_a_student_cannot_be_given():
    it = _item(1, "Which is hot?", "fire", ["ice", "snow"])
    assert options_for(it, "Which is hot?", ["ice", "snow"]) == ["fire", "ice", "snow"]
    assert options_for(it, None, ["ice"]) == "no question"
    assert options_for(it, "q?", None) == "no distractors"
    assert options_for(it, "q?", ["Fire.", "ice"]) == "distractors with equals_answer"
    assert options_for(it, "q?", ["ice", "Ice"]) == "distractors with duplicates"


def test_answerability_key_top_is_strict_and_cached(tmp_path):
    items = [_item(1, "Which is hot?", "fire", ["ice", "snow"], split="test")]
    calls = []

    def solve(item, question, options, seed):
        calls.append((question, tuple(options), seed))
        return {"fire": 0.4, "ice": 0.4, "snow": 0.2} if question == "Tie?" else {"fire": 0.5, "ice": 0.3, "snow": 0.2}
    generated = {"qg+dg:v": {"1": {"question": "Tie?", "distractors": ["ice", "snow"]}}}
    recs = answerability(items, generated, solve, tmp_path, seed=4)
    assert [(r["source"], r["key_top"]) for r in recs] == [("gold", True), ("qg+dg:v", False)]
    assert calls[0] == ("Which is hot?", ("fire", "ice", "snow"), 4)
    again = answerability(items, generated, lambda *a: pytest.fail("answered again"), tmp_path, seed=4)
    assert again == recs


# --- known-false construction ------------------------------------------------------------------------

@pytest.fixture
def fixture_pool(fixture_dataset):
    return [EvalItem.from_problem(p) for p in fixture_dataset]


def test_known_false_kinds_on_the_fixture(fixture_dataset, fixture_pool):
    items = load_items(fixture_dataset, "test", "dg")
    built, skipped = kf.build(items, kf.Pool(fixture_pool), seed=0)
    by = {(b["kind"], b["pid"]): b for b in built}
    skips = {(s["kind"], s["pid"]): s["reason"] for s in skipped}
    for item in items:
        k = by[("key_in_question", item.pid)]
        assert k["question"] == f"{item.question} Answer: {item.answer}" and k["distractors"] == item.gold_distractors
        u = by[("unrelated_question", item.pid)]
        source = next(p for p in fixture_pool if p.question == u["question"])
        assert answer_type(source.answer) != answer_type(item.answer) and source.pid in u["note"]
        assert u["distractors"] == item.gold_distractors
        # No other fixture item shares "grass" or "hat" as its answer.
        assert skips[("wrong_template", item.pid)] == "no item of another template has the same answer"
    # "Which word rhymes with cat?": a synonym of "hat" is just another word, not a second key.
    assert skips[("second_key", "8")] == "question about the word itself"
    # Every (kind, item) is either built or skipped with a reason, once.
    assert len(built) + len(skipped) == len(items) * len(kf.KINDS)
    assert kf.build(items, kf.Pool(fixture_pool), seed=0) == (built, skipped)


def test_wrong_template_takes_a_sibling_of_another_template(fixture_dataset, fixture_pool):
    item = next(i for i in load_items(fixture_dataset, "test", "dg") if i.answer == "grass")
    same_template = _item(100, "In this food chain, which organism is the producer?", "Grass")
    assert kf.wrong_template(item, kf.Pool([*fixture_pool, same_template]), kf._rng(0, "x", "7")) == \
        "no item of another template has the same answer"
    other = _item(101, "What do rabbits eat?", "grass.", split="val")
    built, _ = kf.build([item], kf.Pool([*fixture_pool, same_template, other]), seed=0, kinds=("wrong_template",))
    assert built == [{"kind": "wrong_template", "pid": item.pid, "question": "What do rabbits eat?",
                      "distractors": item.gold_distractors, "note": "from val 101"}]


def test_second_key_uses_a_wordnet_synonym_of_the_key():
    item = _item(1, "Which of these can take a family on a road trip?", "a car", ["a sled", "a kite", "a raft"],
                 rationale="A car is a motor vehicle with four wheels and an engine.")
    built, skipped = kf.build([item], kf.Pool([item]), seed=0, kinds=("second_key",))
    assert not skipped
    [b] = built
    new = [d for d in b["distractors"] if d not in item.gold_distractors]
    assert len(new) == 1 and len(b["distractors"]) == 3 and b["question"] == item.question
    from nltk.corpus import wordnet
    assert new[0].replace(" ", "_") in wordnet.synset("car.n.01").lemma_names() and "car.n.01" in b["note"]
    none = _item(2, "Which is bigger?", "zxqv", ["a", "b"])
    _, skipped = kf.build([none], kf.Pool([none]), seed=0, kinds=("second_key",))
    assert skipped == [{"kind": "second_key", "pid": "2", "reason": "no WordNet synonym of the key"}]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown known-false kind"):
        kf.build([], kf.Pool([]), kinds=("nonsense",))


# --- the verify task end to end, with a fake student ---------------------------------------------------

class FakeStudent:
    """Flags a question that announces its answer or a distractor outside the gold options."""

    version = "fake-student"

    def __init__(self, gold):
        self.gold, self.calls = gold, 0

    def solve(self, item, question, options, seed):
        self.calls += 1
        return {o: (0.7 if o == item.answer else 0.3 / (len(options) - 1)) for o in options}

    def verify(self, item, question, distractors, seed):
        self.calls += 1
        bad = "Answer:" in question or question != item.question or set(distractors) != set(self.gold[item.pid])
        return {"status": "flagged" if bad else "verified", "reasons": ["bad"] if bad else [], "key_prob": 0.7,
                "key_top": True}


def test_run_verify_on_the_fixture_resumes_and_reports(tmp_path, fixture_dataset, fixture_index):
    items = load_items(fixture_dataset, "test", "dg")
    services = Services(llm=None, retriever=fixture_index, image_reader=None)
    student = FakeStudent({i.pid: i.gold_distractors for i in items})
    out = run_verify(items, fixture_dataset, services, "none", ["copy"], cache=tmp_path, student=student, seed=0)
    assert set(out["answerability"]) == {"gold", "dg:copy", "qg+dg:copy"}
    assert out["answerability"]["gold"]["key_top"]["value"] == 1.0
    q = out["quality"]
    assert q["gold"]["false_positive_rate"]["value"] == 0.0
    assert q["kinds"]["key_in_question"]["recall"]["value"] == 1.0
    assert q["kinds"]["key_in_question"]["precision"]["value"] == 1.0
    assert q["overall"]["n"] == len([r for r in out["known_false"] if r["kind"] != "gold"])
    assert q["overall"]["skipped"] == len(out["skipped"]) > 0
    # Resumed from the cache: no model call the second time.
    again = FakeStudent(student.gold)
    assert run_verify(items, fixture_dataset, services, "none", ["copy"], cache=tmp_path, student=again,
                      seed=0)["quality"] == q and again.calls == 0
    meta = {"split": "test", "tasks": ["verify"], "n_items": len(items), "stratify": False, "seed": 0, "model": "m",
            "machine": {"cpus": 2}, "wall_seconds": 1.0, "command": "coe eval --task verify", "embed_threshold": 0.85}
    text = write_report(tmp_path / "rep", [], meta, out).read_text()
    assert "## Answerability" in text and "## Verifier quality" in text
    assert "| key_in_question | 2 | 0 | 1.000 [1.00, 1.00] |" in text
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())["verify"]
    assert saved["quality"]["overall"]["n"] == q["overall"]["n"]


def test_interrupted_verification_keeps_finished_items(tmp_path, fixture_dataset, fixture_pool):
    items = load_items(fixture_dataset, "test", "dg")
    n = {"calls": 0}

    def verify(item, question, distractors, seed):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt
        return {"status": "verified", "reasons": []}
    with pytest.raises(KeyboardInterrupt):
        verifier_quality(items, kf.Pool(fixture_pool), verify, tmp_path, kinds=("key_in_question",))
    assert len(list((tmp_path / "verdicts").glob("*.json"))) == 2 and not list(tmp_path.rglob("*.tmp"))
    records, _ = verifier_quality(items, kf.Pool(fixture_pool), verify, tmp_path, kinds=("key_in_question",))
    assert len(records) == 2 * len(items) and n["calls"] == 3 + (2 * len(items) - 2)  # only the missing ones
