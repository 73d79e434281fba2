"""The verify step and its decision policy, with a scripted student and a real Chroma store."""

import pytest

from coe.errors import QuestionMismatch
from coe.graphs import Services, graph
from tests.test_graph import StubReader
from tests.verify_support import ScriptedStudent, task_of

GOOD_Q = "Which organism is eaten by the fox?"
# The greedy question alone, the model's own distractor choice: what each policy test needs to steer.
BASE = {"question_exemplars": 0, "question_samples": 0, "pool_selection": "model", "question_selection": "model",
        "n_distractors": 2, "write_notes": True}


def generation(questions, distractor_lists, notes=None):
    questions, lists = list(questions), list(distractor_lists)

    def reply(request):
        task = task_of(request)
        if task == "question":
            return {"question": questions.pop(0)}
        if task == "rationale":
            return {"rationale": "Arrows point from food to eater. The fox eats the rabbit."}
        if task == "notes":
            n = request.json_schema["properties"]["notes"]["minItems"]
            return {"notes": (notes or [f"looks like a food {i}" for i in range(n)])[:n]}
        return {"distractors": lists.pop(0)}
    return reply


def key_wins(q, options):
    return {"rabbit": 0.8}


def run(llm, retriever, question_given=None, **conf):
    state = {"answer": "rabbit", "context": "This is a food chain from a meadow: grass, rabbit, fox.",
             "n_distractors": 2}
    if question_given:
        state["question_given"] = question_given
    services = Services(llm=llm, retriever=retriever, image_reader=StubReader())
    return graph.invoke(state, config={"configurable": {**BASE, **conf}}, context=services)


def nodes(out):
    return [t["node"] for t in out["trace"]]


def test_a_sound_item_is_verified_with_its_checks(fixture_index):
    llm = ScriptedStudent(generation([GOOD_Q], [["grass", "fox"]]), prefer=key_wins,
                          yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    out = run(llm, fixture_index)
    assert out["status"] == "verified" and out["reasons"] == []
    v = out["verification"]
    assert v["key_top"] and v["key_prob"] == pytest.approx(0.8)
    assert set(v["option_probs"]) == {"rabbit", "grass", "fox"} and v["second_keys"] == []
    assert v["also_correct"] == {"grass": 0.1, "fox": 0.1}
    assert out["difficulty"] == "easy"
    assert out["distractor_notes"] == ["looks like a food 0", "looks like a food 1"]
    assert nodes(out)[-3:] == ["validate", "verify", "notes"]
    # options were shown in more than one order (position bias), and as a student sees them: key among them
    answer_prompts = [r for r in llm.scored if task_of(r) == "answer"]
    assert len({r.messages[-1].content for r in answer_prompts}) >= 2


def test_one_note_copied_for_every_option_is_asked_again_then_left_out(fixture_index):
    same = ["The image shows a penguin, not a consumer."] * 2
    llm = ScriptedStudent(generation([GOOD_Q], [["grass", "fox"]], notes=same), prefer=key_wins,
                          yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    out = run(llm, fixture_index)
    notes = next(t for t in out["trace"] if t["node"] == "notes")
    assert out["distractor_notes"] == [] and out["status"] == "verified"  # the item stands without notes
    assert notes["parse_errors"] == ["the notes repeat each other; each wrong option needs its own"] * 2
    assert len(notes["raw"]) == 2  # asked twice


def test_an_unusable_model_question_falls_back_to_the_exemplar_questions(fixture_index):
    from coe.errors import ModelOutputError

    def fresh():
        return ScriptedStudent(generation(["rabbit"] * 4, [["grass", "fox"]]), prefer=key_wins,
                               yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    out = run(fresh(), fixture_index, question_exemplars=4)
    question = next(t for t in out["trace"] if t["node"] == "question")
    assert "unusable after 2 attempts" in question["error"]
    assert out["question"] != "rabbit" and question["candidates"][0]["source"] != "model"
    with pytest.raises(ModelOutputError, match="unusable after 2 attempts"):
        run(fresh(), fixture_index)  # no other candidate: the item fails, as before


def test_flagged_question_goes_back_with_the_reason_then_verifies(fixture_index):
    llm = ScriptedStudent(generation(["Which animal is eaten? Answer: rabbit", GOOD_Q],
                                     [["grass", "fox"], ["grass", "fox"]]),
                          prefer=key_wins, yes=lambda q, o: 0.9 if o == "rabbit" else 0.1)
    out = run(llm, fixture_index)
    assert out["question"] == GOOD_Q and out["status"] == "verified"
    q_prompts = [r for r in llm.requests if task_of(r) == "question"]
    assert len(q_prompts) == 2
    assert "A previous question was rejected: the question announces its answer" in q_prompts[1].messages[-1].content
    decisions = [t["decision"] for t in out["trace"] if t["node"] == "verify"]
    assert decisions == ["question", "done"]


def test_a_distractor_judged_correct_is_replaced(fixture_index):
    # "bunny" is the key in other words: the student judges it correct as often as the key.
    llm = ScriptedStudent(generation([GOOD_Q], [["grass", "bunny"], ["grass", "hawk"]]),
                          prefer=lambda q, o: {"rabbit": 0.5, "bunny": 0.45},
                          yes=lambda q, o: 0.9 if o in ("rabbit", "bunny") else 0.1)
    out = run(llm, fixture_index)
    assert "bunny" not in out["distractors"] and out["distractors"] == ["grass", "hawk"]
    assert out["status"] == "verified"
    first = next(t for t in out["trace"] if t["node"] == "verify")
    assert first["decision"] == "distractors" and any("bunny" in r for r in first["reasons"])


def test_rounds_are_bounded_and_what_still_fails_is_flagged(fixture_index):
    llm = ScriptedStudent(generation([GOOD_Q, GOOD_Q, GOOD_Q], [["grass", "hawk"]] * 6),
                          prefer=lambda q, o: {"grass": 0.9}, yes=lambda q, o: 0.1)
    out = run(llm, fixture_index, max_question_rounds=1, max_distractor_rounds=1)
    assert out["status"] == "flagged"
    assert any("prefers \"grass\"" in r for r in out["reasons"])
    assert out["valid"] and len(out["distractors"]) == 2  # flagged, never invalid
    assert [t["decision"] for t in out["trace"] if t["node"] == "verify"] == ["question", "done"]


def test_a_text_only_backend_leaves_a_doubted_option_in_place_flagged(fixture_index):
    llm = ScriptedStudent(generation([GOOD_Q], [["grass", "bunny"], ["grass", "hawk"]]),
                          prefer=lambda q, o: {"rabbit": 0.5, "bunny": 0.45},
                          yes=lambda q, o: 0.9 if o in ("rabbit", "bunny") else 0.1)
    llm.supports_images = False  # a llama.cpp GGUF model
    out = run(llm, fixture_index, pool_selection="model", question_selection="model")
    assert out["distractors"] == ["grass", "bunny"] and out["status"] == "flagged"
    assert any("bunny" in r for r in out["reasons"])
    assert [t["decision"] for t in out["trace"] if t["node"] == "verify"] == ["done"]
    assert out["trace"][0]["settings"]["max_distractor_rounds"] == 0


def empty_bank(folder):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index
    from coe.retrieval.retriever import ExemplarRetriever
    from tests.conftest import HashEmbedder

    store = ChromaStore(folder / "empty")
    build_index([], embedder=HashEmbedder(), store=store)
    return ExemplarRetriever(HashEmbedder(), store)


def test_a_rejected_option_nothing_can_replace_leaves_the_verified_set_flagged(tmp_path):
    # the model writes the rejected option back every time and there is no pool or exemplar to repair from
    llm = ScriptedStudent(generation([GOOD_Q], [["grass", "fox"]] * 6),
                          prefer=lambda q, o: {"rabbit": 0.5, "grass": 0.45},
                          yes=lambda q, o: 0.9 if o in ("rabbit", "grass") else 0.1)
    out = run(llm, empty_bank(tmp_path), max_retries=1, max_distractor_rounds=1)  # nothing to repair from
    assert out["distractors"] == ["grass", "fox"] and out["status"] == "flagged"
    assert any("grass" in r for r in out["reasons"]) and "no valid replacement" in out["reasons"][-1]
    assert [t["decision"] for t in out["trace"] if t["node"] == "verify"] == ["distractors"]
    assert nodes(out)[-2:] == ["validate", "notes"]
    assert out["distractor_notes"]  # the kept item is finished like any other


def test_a_given_question_the_answer_does_not_answer_is_refused(fixture_index):
    llm = ScriptedStudent(generation([], []), yes=lambda q, o: 0.02)
    with pytest.raises(QuestionMismatch, match="does not answer the given question"):
        run(llm, fixture_index, question_given="What is the capital of France?")
    assert not [r for r in llm.requests if task_of(r) == "rationale"]  # no rationale invented around it


def test_a_configured_given_min_yes_decides_a_question_the_bank_does_not_know(fixture_index):
    question = "Which animal in this meadow has long ears?"
    lukewarm = lambda q, o: 0.3  # noqa: E731  above the default threshold (0.2), below the configured one
    out = run(ScriptedStudent(generation([], [["grass", "fox"]]), yes=lukewarm), fixture_index,
              question_given=question)
    assert out["question"] == question
    with pytest.raises(QuestionMismatch, match="P\\(yes\\) 0.30"):
        run(ScriptedStudent(generation([], [["grass", "fox"]]), yes=lukewarm), fixture_index,
            question_given=question, given_min_yes=0.5)


def test_repaired_options_go_through_the_same_checks(fixture_index):
    bad = ["option A", "rabbit"]
    # every repair candidate is judged correct too: the verifier must see (and flag) them
    llm = ScriptedStudent(generation([GOOD_Q], [bad, bad, bad, bad, bad, bad]), prefer=key_wins,
                          yes=lambda q, o: 0.95)
    out = run(llm, fixture_index, max_retries=1, max_distractor_rounds=0)
    assert out["repaired"]
    assert set(out["repaired"]) <= set(out["verification"]["also_correct"])
    assert out["status"] == "flagged" and set(out["repaired"]) & set(out["verification"]["second_keys"])


def test_generate_several_keep_best_prefers_what_the_student_can_answer(fixture_index):
    good, vague = "Which animal does the fox eat in this food chain?", "What is shown?"
    llm = ScriptedStudent(generation([vague, good], [["grass", "fox"]]), prefer=key_wins,
                          yes=lambda q, o: (0.9 if q == good else 0.2) if o == "rabbit" else 0.1)
    out = run(llm, fixture_index, question_samples=1, question_exemplars=0)
    assert out["question"] == good
    step = next(t for t in out["trace"] if t["node"] == "question")
    assert [c["text"] for c in step["candidates"]][:2] == [good, vague]


def test_exemplar_questions_are_candidates(fixture_index):
    llm = ScriptedStudent(generation(["What is shown?"], [["grass", "fox"]]), prefer=key_wins,
                          yes=lambda q, o: 0.9 if ("eat" in q and o == "rabbit") else 0.1)
    out = run(llm, fixture_index, question_samples=0, question_exemplars=4)
    step = next(t for t in out["trace"] if t["node"] == "question")
    sources = {c["source"] for c in step["candidates"]}
    assert "model" in sources and sources - {"model"}  # exemplar ids beside the model's own
    kept = [c for c in step["candidates"] if not c["dropped"]]
    assert out["question"] == max(kept, key=lambda c: c["score"])["text"]


class TemplateBank:
    """A bank that knows two templates, with a toy embedder in which cities and organisms are two clusters."""

    AXES = {"Paris": 0, "Boston": 0, "Denver": 0, "Madrid": 0, "copepod": 1, "rotifer": 1, "shiner": 1}

    def __init__(self):
        from coe.retrieval.exemplars import Exemplar
        self.rows = {"What is the capital of France?": [("Paris", ["Madrid", "Boston"]), ("Denver", ["Boston"])],
                     "Which organism is a producer in this food web?": [("rotifer", ["shiner"])]}
        self.Exemplar = Exemplar
        self.similarity = self

    def embed(self, texts):
        import numpy as np
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.AXES.get(t, 2)] = 1.0
        return out

    def same_questions(self, question, **kw):
        return [self.Exemplar(id=f"{question}-{i}", question=question, answer=a, distractors=d, score=1.0)
                for i, (a, d) in enumerate(self.rows.get(question, []))]


def test_the_bank_tells_whether_the_key_fits_the_question():
    from coe.agents.fit import answer_fit

    bank = TemplateBank()
    assert answer_fit(bank, "What is the capital of France?", "copepod").misfit
    fits = answer_fit(bank, "What is the capital of France?", "Paris")
    assert fits.known and not fits.misfit and fits.closest == "Paris"
    assert not answer_fit(bank, "Which organism is a producer in this food web?", "copepod").misfit
    assert not answer_fit(bank, "Who wrote Hamlet?", "copepod").known  # a question the bank does not know


def test_a_given_question_the_bank_says_the_key_cannot_answer_is_refused():
    from coe.agents.generation import ItemInput
    from coe.agents.verify import check_given_question
    from coe.graphs.settings import GraphSettings

    llm = ScriptedStudent(lambda r: {}, yes=lambda q, o: 0.9)  # the student alone would let it through
    ok, p_yes, why = check_given_question(llm, ItemInput(answer="copepod"), "What is the capital of France?",
                                          GraphSettings(), retriever=TemplateBank())
    assert not ok and p_yes == 0.9 and "unlike what questions like this are answered with" in why


def test_blend_ranking_and_difficulty_steer_the_choice(fixture_index):
    from coe.agents.candidates import Candidate
    from coe.agents.generation import ItemInput
    from coe.agents.selection import rank_distractors

    pool = [Candidate(text=t, score=s) for t, s in (("grass", 1.0), ("hawk", 0.9), ("snake", 0.8))]
    draw = {"rabbit": 0.4, "grass": 0.02, "hawk": 0.08, "snake": 0.5}
    llm = ScriptedStudent(lambda r: {}, prefer=lambda q, o: draw)
    item = ItemInput(answer="rabbit", context="food chain")
    hard = rank_distractors(llm, item, GOOD_Q, pool, votes=[], n=2, difficulty="hard")
    easy = rank_distractors(llm, item, GOOD_Q, pool, votes=[], n=2, difficulty="easy")
    assert "snake" in hard.chosen and "snake" not in easy.chosen
    voted = rank_distractors(llm, item, GOOD_Q, pool, votes=["owl"], n=2, difficulty="medium",
                             exclude=["grass"])
    assert "grass" not in [r["option"] for r in voted.ranking]
    assert any(r["option"] == "owl" and r["vote"] for r in voted.ranking)


def test_another_seed_gives_another_alternative(fixture_index):
    def make():
        return ScriptedStudent(generation(["Which animal does the fox eat?"] * 3, [["grass", "fox"]] * 3),
                               prefer=key_wins, yes=lambda q, o: 0.8 if o == "rabbit" else 0.1)
    outs = {seed: run(make(), fixture_index, question_exemplars=4, seed=seed)["question"] for seed in range(4)}
    assert len(set(outs.values())) > 1
    assert run(make(), fixture_index, question_exemplars=4, seed=0)["question"] == outs[0]  # same seed, same item
