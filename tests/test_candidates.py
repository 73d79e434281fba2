from coe.agents.candidates import candidate_pool
from coe.retrieval.exemplars import Exemplar


def ex(i, answer, distractors, score):
    return Exemplar(id=str(i), question="Which organism is a producer?", answer=answer,
                    distractors=distractors, score=score)


def test_pool_ranks_by_support_and_material():
    exemplars = [ex(1, "grass", ["fox", "rabbit"], 0.8), ex(2, "kelp", ["sea otter", "grass"], 0.6),
                 ex(3, "lichen", ["caribou", "Fox"], 0.5)]
    pool = candidate_pool("kelp", exemplars, material="A food web with sea otter, urchin and kelp.")
    texts = [c.text for c in pool]
    assert "kelp" not in [t.lower() for t in texts]          # never the answer itself
    # support: grass 0.8 + 0.6 = 1.4; sea otter 0.6 + half the top score for being in the material
    assert texts[:3] == ["grass", "sea otter", "fox"] and pool[1].in_material
    assert pool[2].sources == ["1", "3"]                     # "fox" and "Fox" are one candidate
    assert len({t.lower() for t in texts}) == len(texts)


def test_restatements_of_the_answer_are_dropped():
    from coe.agents.candidates import restates_answer
    answer = "The magnitude of the magnetic force is the same in both pairs."
    assert restates_answer("The magnetic force is the same in both pairs.", answer)
    assert not restates_answer("The magnitude of the magnetic force is smaller in Pair 1.", answer)
    assert not restates_answer("not having Bekko patterning", "having Bekko patterning")  # negation flips it
    assert restates_answer("hasty generalization: a very broad claim", "hasty generalization: a broad claim")


def test_pool_filters_answer_types():
    exemplars = [ex(1, "yes", ["no"], 0.9), ex(2, "wolf", ["moose", "The wolf eats moose in winter."], 0.5)]
    pool = candidate_pool("bear", exemplars)
    assert [c.text for c in pool] == ["moose", "wolf"]


def test_same_answer_exemplars_weigh_more():
    exemplars = [ex(1, "wolf", ["moose"], 0.5), ex(2, "bear", ["lynx"], 0.5)]
    assert [c.text for c in candidate_pool("bear", exemplars)][0] == "lynx"


def test_word_map_and_adapt():
    from coe.agents.candidates import adapt, word_map
    m = word_map("What information supports the conclusion that Russell acquired this trait?",
                 "What information supports the conclusion that Seth acquired this trait?")
    assert m == {"Russell": "Seth"}
    assert adapt("Russell is most interested in plant biology.", m) == "Seth is most interested in plant biology."
    assert word_map("Colorado", "Montana") == {}          # unlike texts give no map
    assert word_map("Love,\nJenna", "Love,\nZoe") == {"Jenna": "Zoe"}
    assert adapt("love,\nJenna", {"Jenna": "Zoe"}) == "love,\nZoe"   # line break kept


def test_pool_adapts_exemplar_options_to_the_item():
    q = "What information supports the conclusion that {} acquired this trait?"
    e = Exemplar(id="1", question=q.format("Russell"), answer="Russell learned biology by reading.",
                 distractors=["Russell is most interested in plant biology."], score=0.9)
    pool = candidate_pool("Seth learned biology by doing experiments.", [e], question=q.format("Seth"))
    assert pool[0].text == "Seth is most interested in plant biology." and pool[0].sources == ["1*"]
    assert "Russell is most interested in plant biology." in [c.text for c in pool]


def test_options_differing_only_in_case_from_the_answer_are_not_candidates():
    # normalisation makes "love, Zoe" the answer itself, so it can never be a valid distractor
    e = Exemplar(id="1", question="Which closing is correct?", answer="Love,\nJenna",
                 distractors=["love,\nJenna"], score=0.9)
    assert all(c.text.lower() != "love, zoe" for c in candidate_pool("Love,\nZoe", [e]))
