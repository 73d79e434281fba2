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
    assert texts[0] == "sea otter" and pool[0].in_material   # present in the material beats support
    assert texts[1:3] == ["grass", "fox"]                    # support: 0.8 + 0.6, then 0.8 + 0.5
    assert pool[2].sources == ["1", "3"]                     # "fox" and "Fox" are one candidate
    assert len({t.lower() for t in texts}) == len(texts)


def test_pool_filters_answer_types():
    exemplars = [ex(1, "yes", ["no"], 0.9), ex(2, "wolf", ["moose", "The wolf eats moose in winter."], 0.5)]
    pool = candidate_pool("bear", exemplars)
    assert [c.text for c in pool] == ["moose", "wolf"]


def test_same_answer_exemplars_weigh_more():
    exemplars = [ex(1, "wolf", ["moose"], 0.5), ex(2, "bear", ["lynx"], 0.5)]
    assert [c.text for c in candidate_pool("bear", exemplars)][0] == "lynx"
