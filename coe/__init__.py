"""coe: Chain-of-Exemplar multiple-choice question generation."""

__version__ = "0.1.0"
