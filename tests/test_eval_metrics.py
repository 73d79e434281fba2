"""Every metric against values computed by hand."""

import math

import numpy as np
import pytest

from coe.eval import metrics as m


def test_bleu4_hand_computed():
    # 1-gram 5/6, 2-gram 3/5, 3-gram 2/4, 4-gram 1/3, equal lengths (BP 1)
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert m.bleu4("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(expected, abs=1e-4)
    assert m.bleu4("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # no 4-gram in common: no smoothing, so zero
    assert m.bleu4("the cat sat down", "the cat lay on the mat") == 0.0


def test_bleu4_brevity_penalty():
    # prediction "the cat sat on" (4 tokens) vs reference of 6: all precisions 1, BP = exp(1 - 6/4)
    assert m.bleu4("the cat sat on", "the cat sat on the mat") == pytest.approx(math.exp(1 - 6 / 4), abs=1e-4)


def test_bleu4_13a_tokenizes_punctuation():
    # "(1) wolf" → "( 1 ) wolf": 4 tokens, identical strings score 1
    assert m.bleu4("(1) wolf\n(2) moose\n", "(1) wolf\n(2) moose\n") == pytest.approx(1.0)


def test_rouge_l_hand_computed():
    # LCS("the cat sat on a mat", "the cat sat on the mat") = 5 tokens; P = R = 5/6
    assert m.rouge_l("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # LCS = 2 ("a b"), P = 2/3, R = 2/4 → F = 2PR/(P+R) = 4/7
    assert m.rouge_l("a x b", "a b c d") == pytest.approx(4 / 7)
    assert m.rouge_l("zzz", "a b") == 0.0


def test_meteor_hand_computed():
    # 6 aligned unigrams of 6/6: P = R = 1, Fmean = 1; chunks = 1, penalty = 0.5 * (1/6)^3
    assert m.meteor("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(
        1 - 0.5 * (1 / 6) ** 3, abs=1e-6)
    # "a b" vs "b a": 2 matches, 2 chunks: penalty 0.5*(2/2)^3 = 0.5; Fmean 1
    assert m.meteor("b a", "a b") == pytest.approx(0.5, abs=1e-6)
    assert m.meteor("zzz", "a b") == 0.0


def test_meteor_uses_wordnet_synonyms():
    # "car" and "auto" share a synset (and survive Porter stemming, which NLTK applies first):
    # 4 of 4 unigrams aligned in one chunk → 1 - 0.5 * (1/4)^3
    assert m.meteor("the car is red", "the auto is red") == pytest.approx(1 - 0.5 / 64, abs=1e-6)
    # without the synonym: 3 of 4 aligned in 2 chunks → Fmean 0.75, penalty 0.5 * (2/3)^3
    assert m.meteor("the cat is red", "the auto is red") == pytest.approx(0.75 * (1 - 0.5 * (2 / 3) ** 3), abs=1e-6)


def test_numbered_list_format():
    assert m.numbered_list(["a", "b"]) == "(1) a\n(2) b\n"


def test_set_scores_exact():
    gold = ["wolf", "moose", "lynx"]
    s = m.set_scores(["Wolf", "fox", "the lynx", "moose"], gold, m.exact_same)
    assert s["p_at_1"] == 1.0
    assert s["recall"] == 1.0
    # top-3 hits: wolf, lynx → precision 2/3, recall 2/3, F1 2/3
    assert s["f1_at_3"] == pytest.approx(2 / 3)
    s = m.set_scores(["fox", "wolf"], gold, m.exact_same)
    assert s["p_at_1"] == 0.0 and s["recall"] == pytest.approx(1 / 3)


def test_matching_is_one_to_one():
    assert m.greedy_matches(["wolf", "wolf"], ["wolf", "moose"], m.exact_same) == [True, False]


def test_embedding_match_threshold():
    vecs = {"car": np.array([1.0, 0.0]), "automobile": np.array([0.8, 0.6]), "tree": np.array([0.0, 1.0])}
    same = m.embedding_same(lambda ts: np.stack([vecs[t] for t in ts]), 0.75)
    assert same("car", "automobile") and not same("car", "tree")
    assert m.set_scores(["automobile"], ["car"], same)["recall"] == 1.0


def test_validity_flags():
    assert m.validity(["wolf", "moose"], "bear", 2)["valid"]
    f = m.validity(["wolf", "Wolf."], "bear", 3)
    assert f["duplicates"] and f["wrong_count"] and not f["valid"]
    assert m.validity(["bear", "option A"], "Bear", 2)["equals_answer"]
    assert m.validity(["bear", "option A"], "Bear", 2)["placeholders"]
    assert m.validity(None, "bear", 2)["parse_failure"]


def test_the_wordnet_reader_loads_what_nltks_own_reader_loads():
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from coe.modelstore.wordnet import ensure_wordnet, english_reader

    root = ensure_wordnet()
    fast = english_reader(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stock = WordNetCorpusReader(str(root), None)
    assert fast._lemma_pos_offset_map == stock._lemma_pos_offset_map and len(fast._lemma_pos_offset_map) > 140_000
    assert fast._exception_map == stock._exception_map and fast._lexnames == stock._lexnames
    for word in ("dog", "bank", "run", "copepod"):
        assert [(s.name(), s.hypernyms()) for s in fast.synsets(word)] == [
            (s.name(), s.hypernyms()) for s in stock.synsets(word)
        ]
