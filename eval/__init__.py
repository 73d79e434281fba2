"""Evaluation on ScienceQA: CoE-compatible scores, per-distractor scores, baselines and reports."""
