"""Datasets coe reads exemplars from."""

from coe.dataset_loaders.scienceqa import SPLIT_NAMES, ScienceQA, ScienceQAProblem

__all__ = ["SPLIT_NAMES", "ScienceQA", "ScienceQAProblem"]
