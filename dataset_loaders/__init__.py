"""Datasets coe reads exemplars from."""

from coe.datasets.scienceqa import SPLIT_NAMES, ScienceQA, ScienceQAProblem

__all__ = ["SPLIT_NAMES", "ScienceQA", "ScienceQAProblem"]
