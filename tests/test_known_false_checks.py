"""The known-false kinds for the teacher's faults, and the calibration of the "verified" margin."""

from coe.agents.item_checks import item_checks
from coe.eval import known_false as kf
from coe.eval.items import EvalItem
from coe.eval.verifier_scores import calibrate_margin, is_verified, verified_precision


def _item(pid, question, answer, distractors, rationale=""):
    return EvalItem(pid=str(pid), split="val", question=question, answer=answer, gold_distractors=list(distractors),
                    context="", image_path=None, dataset_image_text="", gold_rationale=rationale, subject=None,
                    grade_band="unknown", context_type="NO")


CUP = _item(1, "Is a cup a solid or a liquid?", "a solid", ["a liquid"])
FERN = _item(2, "Which describes the fern's life cycle?", "The spores grow into new ferns.",
             ["The eggs grow into spores.", "The sperm make seeds."],
             rationale="Fern plants make spores. The spores grow into new ferns.\nA fern plant makes eggs and sperm.")
TRADE = _item(3, "What can Finn and Tiana trade to each get what they want?",
              "Finn can trade his tomatoes for Tiana's broccoli.", ["Tiana can trade her broccoli for Finn's oranges."])
OTHER = _item(4, "What can Lorenzo and Maya trade to each get what they want?",
              "Lorenzo can trade his apples for Maya's carrots.", ["Maya can trade her carrots for Lorenzo's pears."])
CITY = _item(5, "Which of these cities is marked on the map?", "Denver", ["Boise", "Helena"])
POOL = kf.Pool([CUP, FERN, TRADE, OTHER, CITY, _item(6, "Which phrase is a noun phrase?", "a tall tree",
                                                      ["ran quickly"])])


def built(kind, item):
    out, skipped = kf.build([item], POOL, seed=0, kinds=(kind,))
    assert not skipped, skipped
    return out[0]


def found(b, item):
    return {c.check for c in item_checks(b["question"], item.answer, b["distractors"], rationale=item.gold_rationale)
            if c.severity == "flag"}


def test_each_new_kind_breaks_the_item_the_way_its_check_looks_for():
    assert set(kf.KINDS) >= {"subject_option", "near_duplicate", "other_form", "other_names", "rationale_true",
                             "vague_question"}
    b = built("subject_option", CUP)
    assert b["distractors"] == ["a cup"] and "subject_option" in found(b, CUP)
    b = built("near_duplicate", FERN)
    assert b["question"] == FERN.question and "near_duplicate" in found(b, FERN)
    b = built("other_form", FERN)
    assert "other_form" in found(b, FERN) and "a tall tree" in b["distractors"]
    b = built("other_names", TRADE)
    assert "Finn" not in b["question"] and {"Lorenzo", "Maya"} & set(b["question"].split())
    assert b["distractors"] == TRADE.gold_distractors and "names_mismatch" in found(b, TRADE)
    b = built("rationale_true", FERN)
    assert "A fern plant makes eggs and sperm." in b["distractors"] and "rationale_true" not in found(b, FERN)
    assert "rationale_states" in found(b, FERN)
    b = built("vague_question", CITY)
    assert b["question"] != CITY.question and "vague_question" in found(b, CITY)


def test_a_kind_that_does_not_fit_the_item_is_skipped_with_its_reason():
    _, skipped = kf.build([CITY], POOL, seed=0, kinds=("other_names", "rationale_true"))
    assert {s["kind"]: s["reason"] for s in skipped} == {
        "other_names": "no names shared by the question and a sentence key",
        "rationale_true": "options are not sentences"}
    # the same seed builds the same items
    kinds = ("subject_option", "other_form", "other_names", "rationale_true", "vague_question")
    assert kf.build([FERN, TRADE], POOL, seed=3, kinds=kinds) == kf.build([FERN, TRADE], POOL, seed=3, kinds=kinds)


def _r(kind, pid, key_prob, strongest, flagged=False, blind=False):
    return {"kind": kind, "pid": pid, "flagged": flagged, "key_prob": key_prob, "strongest_prob": strongest,
            "blind": blind}


def test_verified_precision_and_the_calibrated_margin_by_hand():
    records = [_r("gold", "a", 0.8, 0.1), _r("x", "a", 0.6, 0.3), _r("y", "a", 0.5, 0.5, flagged=True),
               _r("gold", "b", 0.6, 0.3), _r("x", "b", 0.9, 0.05), _r("gold", "c", 0.9, 0.05, blind=True),
               _r("x", "c", 0.3, 0.4)]
    assert not is_verified(records[2], 0.0) and not is_verified(records[5], 0.0)
    # margin 0.1: gold a (counted twice: two known-false versions) and gold b verified, c (blind) not;
    # known-false a/x and b/x verified
    v = verified_precision(records, 0.1, resamples=0)
    assert (v["n_gold"], v["n_false"]) == (2, 2) and v["precision"]["value"] == 3 / 5
    # margin 0.35: gold b and known-false a/x drop out: 2 right of 3
    assert verified_precision(records, 0.35, resamples=0)["precision"]["value"] == 2 / 3
    best, table = calibrate_margin(records, target=0.65)
    assert best == 0.35 and len(table) == 21
    assert calibrate_margin(records, target=0.99)[0] is None


def test_all_kinds_is_the_default_of_the_verify_task():
    from coe.eval.command import parse_kinds
    assert parse_kinds("all") == kf.KINDS and parse_kinds("subject_option,vague_question") == \
        ("subject_option", "vague_question")
