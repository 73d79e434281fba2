"""Learned rankers over the exemplar bank: the wide candidate pool, its features, training and scoring."""
