"""Model-free cues: giveaways and misfits a teacher spots at once, and what must not trigger them."""

from coe.agents.cues import kind_check_available, option_cues, question_cues


def checks(cues, severity="flag"):
    return {(c.check, c.option) for c in cues if c.severity == severity}


def test_a_question_that_announces_or_states_its_key_is_flagged():
    assert ("answer_in_question", None) in checks(question_cues("Which continent is highlighted? Answer: Asia", "Asia"))
    assert ("key_in_question", None) in checks(
        question_cues("Which organism, the copepod, is a primary consumer?", "copepod", ["rotifer", "shiner"]))


def test_choices_named_in_the_question_and_lookalike_keys_are_not_giveaways():
    # ScienceQA names every choice in some questions; that is an enumeration, not a giveaway
    assert not checks(question_cues("Is a pencil a solid, a liquid, or a gas?", "a solid", ["a liquid", "a gas"]))
    # "sample A" must not match "each sample" (articles are kept when looking for a phrase)
    assert not checks(question_cues("Compare the particles in each sample. Which sample is hotter?", "sample A",
                                    ["sample B", "neither; the samples have the same temperature"]))


def test_an_option_of_another_kind_than_the_key_is_flagged():
    assert kind_check_available(), "WordNet must be set up (make test installs wordnet-base)"
    assert ("other_kind", "Vanuatu") in checks(option_cues("Which continent is highlighted?", "Asia",
                                                           ["Vanuatu", "Europe", "Africa"]))
    # a state capital beside towns and cities of the same kind is fine
    assert not checks(option_cues("What is the capital of Colorado?", "Denver", ["Nashville", "Laramie", "Boulder"]))
    assert ("other_kind", "It is a long sentence that explains a thing in detail.") in checks(
        option_cues("Which animal eats grass?", "rabbit", ["It is a long sentence that explains a thing in detail."]))


def test_options_missing_from_the_material_are_reported_when_the_question_is_about_it():
    material = "Food web: copepod, shiner, green algae, water flea"
    cues = option_cues("Which organism in this food web is a primary consumer?", "copepod",
                       ["rotifer", "shiner"], material)
    assert ("not_in_material", "rotifer") in checks(cues, "warn")
    assert ("not_in_material", "shiner") not in checks(cues, "warn")
    # OCR drops the space in a diagram's two-word labels; one word is still not found inside another
    ocr = "Text in the image: blackcrappie bacteria shiner greenalgae copepod plant"
    cues = option_cues("Which organism in this food web is an omnivore?", "copepod",
                       ["black crappie", "green algae", "ant", "water flea"], ocr)
    assert {d for c, d in checks(cues, "warn") if c == "not_in_material"} == {"ant", "water flea"}
    # not about the material: nothing to say
    assert not checks(option_cues("Which animal is a mammal?", "copepod", ["rotifer"], material), "warn")
