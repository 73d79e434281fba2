"""WordNet sister terms of a common-noun key: the other hyponyms of its hypernyms ("wolf" and "fox" beside
"dog" under *canine*).

WordNet names thousands of sisters a teacher would never offer, so the pool keeps only those the bank also
knows as an option (see ``build_pool``). On ScienceQA val that keeps about 3 per key that WordNet knows, and
52 of the 755 gold distractors of those items are among them, 6 of which no other source offers."""

from __future__ import annotations

from functools import lru_cache

from coe.agents.validation import normalize
from coe.modelstore.wordnet import WORDNET_LOCK, wordnet_reader

SENSES = 2  # the key's most frequent noun senses
HYPERNYMS = 2  # per sense


@lru_cache(maxsize=20_000)
def sister_terms(answer: str) -> tuple[str, ...]:
    """Sister terms of ``answer`` as a common noun (proper nouns, whose synsets are instances, have none),
    in WordNet's order; nothing when WordNet is not set up."""
    wn, key = wordnet_reader(), normalize(answer)
    word = "_".join(key.split())
    if wn is None or not word:
        return ()
    out: list[str] = []
    with WORDNET_LOCK:
        for sense in wn.synsets(word, pos="n")[:SENSES]:
            if sense.instance_hypernyms():
                continue
            for parent in sense.hypernyms()[:HYPERNYMS]:
                for sister in parent.hyponyms():
                    if sister != sense:
                        out.append(sister.lemma_names()[0].replace("_", " "))
    return tuple(t for t in dict.fromkeys(out) if normalize(t) != key)
