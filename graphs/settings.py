"""The graph's settings: one validated model (``GraphSettings``) for every way of running the graph, read by the
nodes from ``config["configurable"]``, and what ``"auto"`` and ``--choose`` stand for."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel


class GraphSettings(BaseModel):
    """Per-run switches, read from ``config["configurable"]``; every field can be overridden there."""

    n_distractors: int = 3
    mode: str = "json"          # "json" (schema-constrained) or "coe" (paper's free-text shapes)
    use_exemplars: bool = True  # ablation: zero-shot when False
    use_rationale: bool = True  # ablation: distractors without the chain of thought
    k: int = 4                  # exemplars shown in each prompt
    pool_k: int = 10            # exemplars whose options form the distractor candidate pool
    use_pool: bool = True       # offer pooled candidate options to the distractor step
    choose_from_pool: bool = True  # constrain distractors to the pool when it is large enough
    # Who chooses among the pool: "model" lets the LLM choose under the schema's enum; "rank" takes the
    # pool's top n and calls the model only when the pool falls short (see the evaluation report).
    # "blend": the pool's ranking is the prior, the model's choice a vote, and the student's draw
    # (verify's answering agent) re-ranks them, steered by ``difficulty``. "learned": the wide pool (exemplar
    # options, the bank's co-occurring options, material terms) ranked by the trained ranker, no model call.
    # "auto" (default): see ``resolve_selection``.
    pool_selection: Literal["auto", "blend", "learned", "rank", "model"] = "auto"
    max_retries: int = 2        # re-asks of the distractor step before repairing from exemplars
    exclude_splits: list[str] = []
    # Generate several, keep the best (question step): exemplar questions and sampled model questions
    # beside the greedy one, ranked by the answering agent. 0 and 0: the greedy question alone.
    question_exemplars: int = 4
    question_samples: int = 1
    # "learned": the trained question ranker picks among the exemplars' and the bank's questions, no model
    # call (the model writes the question when no ranker is there); "model": generate several, keep the best.
    # "auto" (default): see ``resolve_selection``.
    question_selection: Literal["auto", "model", "learned"] = "auto"
    # Verification and its decision policy.
    verify: bool = True
    check_given_question: bool = True   # refuse a given question that the answer does not answer
    max_question_rounds: int = 1        # flagged question → back to the question step, at most this often
    max_distractor_rounds: int = 1      # distractors judged correct (or cued) → replaced, at most this often
    difficulty: str = "medium"          # easy | medium | hard: steers distractor selection
    seed: int = 0                       # another seed gives another alternative for the same input
    # Per-distractor misconception notes: one more model call with the longest prompt of the item, and
    # small models mostly restate the option, so they are written only when asked (--notes, the console).
    write_notes: bool = False


# What "auto" resolves to, by whether the backend sees the picture. A text-only model (llama.cpp GGUF, a
# text-only server) lowered the learned rankers' choices when it chose (1.5B, 23 ScienceQA test items: DG
# recall 0.283 against pool-rank's 0.312; its questions no better than copying the nearest exemplar's), so
# the rankers choose there and the model writes the rationale, verifies, and writes distractors only when
# the pool falls short or validation sends the step back. A model that sees the picture keeps the blend.
AUTO_SELECTION = {False: {"pool_selection": "learned", "question_selection": "learned"},
                  True: {"pool_selection": "blend", "question_selection": "model"}}


# ``--choose`` of coe generate and coe batch run: force either side whatever the backend.
CHOOSE = {"auto": {}, "rankers": AUTO_SELECTION[False], "model": AUTO_SELECTION[True]}


def choose_settings(choose: str) -> dict[str, str]:
    """The graph settings ``--choose`` stands for; an unknown value is a one-line input error."""
    if choose not in CHOOSE:
        from coe.errors import InputError
        raise InputError(f"--choose must be {', '.join(CHOOSE)}, not {choose!r}")
    return dict(CHOOSE[choose])


def resolve_selection(s: GraphSettings, llm: Any) -> tuple[GraphSettings, dict[str, Any] | None]:
    """``s`` with each "auto" selection replaced by its value for this backend (``supports_images``), and
    what was resolved and why for the trace (None when nothing was on "auto")."""
    sees = bool(getattr(llm, "supports_images", False))
    update = {k: v for k, v in AUTO_SELECTION[sees].items() if getattr(s, k) == "auto"}
    if not update:
        return s, None
    why = ("the model sees the picture: the model's choices blended with the rankers'" if sees else
           "the model cannot see the picture: the learned rankers choose")
    return s.model_copy(update=update), {"auto": update, "why": why}



def settings_from(config: RunnableConfig | None) -> GraphSettings:
    conf = (config or {}).get("configurable", {}) or {}
    return GraphSettings(**{k: v for k, v in conf.items() if k in GraphSettings.model_fields})
