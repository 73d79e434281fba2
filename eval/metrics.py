"""Scores. CoE-compatible text scores are per example, then averaged, on raw strings:
BLEU-4 as HF ``evaluate``'s bleu (13a tokens, order 4, no smoothing), ROUGE-L F (rouge-score, no stemming),
METEOR (NLTK with WordNet 3.0, alpha 0.9, beta 3, gamma 0.5, as ``evaluate``'s meteor)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from coe.agents.validation import is_placeholder, normalize


@cache
def _bleu():
    import logging

    from sacrebleu.metrics import BLEU

    # sacrebleu recommends effective_order for sentence BLEU; the CoE-compatible score deliberately does not.
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)
    # effective_order=False: a missing n-gram order zeroes the score, as in evaluate's compute_bleu.
    return BLEU(tokenize="13a", smooth_method="none", effective_order=False, max_ngram_order=4)


def bleu4(prediction: str, reference: str) -> float:
    return _bleu().sentence_score(prediction, [reference]).score / 100.0


@cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, reference: str) -> float:
    return _rouge().score(reference, prediction)["rougeL"].fmeasure


@cache
def _meteor_setup():
    from nltk.tokenize import NLTKWordTokenizer

    from coe.errors import ConfigError
    from coe.modelstore.wordnet import ensure_wordnet, nltk_data_dir, wordnet_reader

    reader = wordnet_reader()  # the run-time reader, so an eval process loads WordNet once
    if reader is None:
        ensure_wordnet()  # missing files: the one-line error that says what to install
        raise ConfigError(f"METEOR needs WordNet, which NLTK could not read in {nltk_data_dir()}")
    # evaluate tokenizes with nltk.word_tokenize, which needs the punkt model (not available offline);
    # its word-level tokenizer is the same one, without the sentence split first.
    return NLTKWordTokenizer(), reader


def meteor(prediction: str, reference: str) -> float:
    from nltk.translate.meteor_score import single_meteor_score

    tok, wordnet = _meteor_setup()
    ref, hyp = tok.tokenize(reference), tok.tokenize(prediction)
    return float(single_meteor_score(ref, hyp, wordnet=wordnet, alpha=0.9, beta=3, gamma=0.5))


def numbered_list(options: list[str]) -> str:
    """The CoE scoring format for a distractor list: ``(1) a\\n(2) b\\n``."""
    return "".join(f"({i}) {o}\n" for i, o in enumerate(options, 1))


def text_scores(prediction: str, reference: str) -> dict[str, float]:
    return {
        "bleu4": bleu4(prediction, reference),
        "rougeL": rouge_l(prediction, reference),
        "meteor": meteor(prediction, reference),
    }


def greedy_matches(pred: list[str], gold: list[str], same: Callable[[str, str], bool]) -> list[bool]:
    """For each prediction, whether it matches a gold option not already matched (one-to-one)."""
    used: set[int] = set()
    hits = []
    for p in pred:
        j = next((j for j, g in enumerate(gold) if j not in used and same(p, g)), None)
        if j is not None:
            used.add(j)
        hits.append(j is not None)
    return hits


def set_scores(pred: list[str], gold: list[str], same: Callable[[str, str], bool], k: int = 3) -> dict[str, float]:
    """P@1, recall of the gold set, and F1 of the top-k predictions against the gold set."""
    hits = greedy_matches(pred, gold, same)
    top = hits[:k]
    p_at_1 = float(bool(hits) and hits[0])
    recall = sum(hits) / len(gold) if gold else 0.0
    precision_k = sum(top) / len(top) if top else 0.0
    recall_k = sum(top) / len(gold) if gold else 0.0
    f1 = 2 * precision_k * recall_k / (precision_k + recall_k) if precision_k + recall_k else 0.0
    return {"p_at_1": p_at_1, "recall": recall, "f1_at_3": f1}


def exact_same(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


def embedding_same(embed: Callable[[list[str]], np.ndarray], threshold: float) -> Callable[[str, str], bool]:
    cache_: dict[str, np.ndarray] = {}

    def vec(t: str) -> np.ndarray:
        if t not in cache_:
            cache_[t] = embed([t])[0]
        return cache_[t]

    return lambda a, b: exact_same(a, b) or float(np.dot(vec(a), vec(b))) >= threshold


def validity(distractors: list[str] | None, answer: str, n: int) -> dict[str, bool]:
    """Per-item validity flags; ``parse_failure`` when no list came back at all."""
    if distractors is None:
        return {
            "valid": False,
            "parse_failure": True,
            "wrong_count": True,
            "duplicates": False,
            "equals_answer": False,
            "placeholders": False,
        }
    norms = [normalize(d) for d in distractors]
    flags = {
        "parse_failure": False,
        "wrong_count": len(distractors) != n,
        "duplicates": len(set(norms)) != len(norms),
        "equals_answer": normalize(answer) in norms,
        "placeholders": any(is_placeholder(d) for d in distractors),
    }
    flags["valid"] = not any(flags.values())
    return flags


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
