"""The checks for what teachers caught in items a student model had passed, and what must not trigger them."""

import numpy as np

from coe.agents.claim import check_line, claim
from coe.agents.item_checks import item_checks, names, near_duplicates


def flags(cues):
    return {(c.check, c.option) for c in cues if c.severity == "flag"}


def test_an_option_that_is_the_questions_own_subject_is_flagged():
    assert ("subject_option", "a cup") in flags(item_checks("Is a cup a solid or a liquid?", "a solid",
                                                            ["a liquid", "a cup"]))
    # the choices the question lists are not its subject, with or without their article
    assert not flags(item_checks("Is a pencil a solid, a liquid, or a gas?", "a solid", ["a liquid", "a gas"]))
    assert not flags(item_checks("Look at the word. Does it have a closed syllable or an open syllable?\nmen",
                                 "closed", ["open"]))
    # a lead-in sentence may name an option; the question proper does not
    assert not flags(item_checks("After the Akkadian Empire ended, many cities tried to control Mesopotamia. "
                                 "Which empire started controlling Mesopotamia?", "the Babylonian Empire",
                                 ["the Akkadian Empire", "the Elamite Empire"]))


def test_options_that_say_the_same_thing_are_flagged_by_text_and_by_embedding():
    fern = flags(near_duplicates("They can fuse and form a fertilized egg.",
                                 ["They can fuse and form fertilized eggs.", "The spores grow into plants."]))
    assert fern == {("near_duplicate", "They can fuse and form fertilized eggs.")}

    sentences = {"The plant grows in wet soil.": [1.0, 0.0], "The plant grows in damp soil.": [0.99, 0.02],
                 "The plant grows in dry soil.": [0.98, 0.05], "It needs no water.": [0.0, 1.0],
                 "The magnetic force is stronger in Pair 1.": [0.0, 1.0],
                 "The magnetic force is stronger in Pair 2.": [0.01, 0.99]}

    def embed(texts):
        return np.array([sentences[t] for t in texts])

    def opposed(a, b):  # stands in for WordNet's antonyms
        return {a, b} == {"wet", "dry"}
    # close in embedding space and no opposites between them: the same thing said twice
    found = flags(near_duplicates("It needs no water.", ["The plant grows in wet soil.",
                                                          "The plant grows in damp soil."], embed, opposed=opposed))
    assert found == {("near_duplicate", "The plant grows in damp soil.")}
    # opposites, and numbers, set close sentences apart
    assert not near_duplicates("It needs no water.", ["The plant grows in wet soil.", "The plant grows in dry soil."],
                               embed, opposed=opposed)
    assert not near_duplicates("The magnetic force is stronger in Pair 1.",
                               ["The magnetic force is stronger in Pair 2."], embed, opposed=opposed)
    # without a way to tell opposites, only text duplicates count
    assert not near_duplicates("It needs no water.", ["The plant grows in wet soil.",
                                                      "The plant grows in damp soil."], embed)


def test_an_option_of_another_form_than_the_rest_is_flagged():
    found = flags(item_checks("Which sentence describes the fern life cycle?", "The spores grow into plants.",
                              ["a mature fern", "The fern makes eggs and sperm.", "The plant grows flowers."]))
    assert ("other_form", "a mature fern") in found
    # with one distractor, the key's form is the one to follow
    assert flags(item_checks("Select the true statement.", "Genes affect traits.", ["Solution B"])) == {
        ("other_form", "Solution B")}
    assert flags(item_checks("What is Flopsy's phenotype for the fur length trait?", "long fur",
                             ["Which of the three types of tomato seeds sprouts the fastest?"])) == {
        ("other_form", "Which of the three types of tomato seeds sprouts the fastest?")}
    assert not flags(item_checks("Select the true statement.", "Genes affect traits.",
                                 ["Eye color is an example of a gene."]))
    # long lists without a stop stand beside short phrases (ScienceQA's community questions)
    assert not flags(item_checks("Which of the following best describes an ecosystem in a seagrass bed?",
                                 "the turtle grass, the sand, and the cushion sea stars",
                                 ["the queen conch and the manatee grass", "a school of French grunts"]))


def test_names_in_the_question_that_the_key_does_not_share_are_flagged():
    found = flags(item_checks("What can Finn and Tiana trade to each get what they want?",
                              "Tristan can trade his tomatoes for Lorenzo's broccoli.",
                              ["Tristan can trade his sandwich for Lorenzo's oranges."]))
    assert ("names_mismatch", None) in found
    assert not flags(item_checks("What can Finn and Tiana trade to each get what they want?",
                                 "Finn can trade his tomatoes for Tiana's broccoli.",
                                 ["Tiana can trade her broccoli for Finn's oranges."]))
    # months and units are not names
    assert names("January is colder than May at 5°C in New York.") == {"New", "York"}


def test_a_distractor_the_rationale_states_as_true_is_flagged_unless_it_denies_or_compares():
    rationale = ("A prairie grassland is a type of ecosystem. Prairie grasslands have the following features: hot "
                 "summers and cool winters, soil that is rich in nutrients.\nIt has hot summers and cool winters.")
    found = flags(item_checks("Which better describes the Buffalo Gap National Grassland ecosystem?",
                              "It has soil that is rich in nutrients.", ["It has hot summers and cool winters.",
                                                                         "It has long, cold winters."],
                              rationale=rationale))
    assert found == {("rationale_states", "It has hot summers and cool winters.")}
    denied = ("The following statement does not describe the Gobi Desert: a small amount of rain. "
              "It has warm summers and mild winters.")
    assert not flags(item_checks("Which statement describes the Gobi Desert ecosystem?",
                                 "It has a small amount of rain or snow.", ["It has warm summers and mild winters."],
                                 rationale=denied))
    compared = "So, the magnetic force is stronger in Pair 2 than in Pair 1."
    assert not flags(item_checks("Which of the following statements is true?",
                                 "The magnetic force is stronger in Pair 2.",
                                 ["The magnetic force is stronger in Pair 1."], rationale=compared))


def test_a_vague_question_is_flagged():
    assert ("vague_question", None) in flags(item_checks("What is the key to the water cycle?", "precipitation",
                                                         ["climate", "weather"]))
    assert ("vague_question", None) in flags(item_checks("What process does the water cycle involve?",
                                                         "evaporation", ["climate", "weather"]))
    assert not flags(item_checks("Which process turns liquid water into water vapor?", "evaporation",
                                 ["condensation", "precipitation"]))


def test_the_claim_to_check_is_the_key_written_into_the_question():
    assert check_line("Which of the following organisms is the secondary consumer in this food web?", "copepod",
                      picture=True) == "Check in the picture: the copepod is the secondary consumer in this food web."
    assert claim("What is the capital of New Jersey?", "Trenton") == "Trenton is the capital of New Jersey."
    assert claim("Which of these cities is marked on the map?", "Denver") == "Denver is marked on the map."
    # a labelled key takes no article
    assert check_line("Compare the average kinetic energies of the particles in each sample. Which sample has the "
                      "higher temperature?", "sample B", picture=False) == \
        "Check: sample B has the higher temperature."
    # a question it cannot rewrite still names the claim
    assert claim("Is a cup a solid or a liquid?", "a solid") == \
        'the answer to "Is a cup a solid or a liquid?" is "a solid".'
