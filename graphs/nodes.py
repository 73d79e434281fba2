"""The graph's writing nodes (describe the image, retrieve, question, rationale, distractors; the checking ones
are ``check_nodes``): each reads the state, does one CoE step and returns its update plus a trace entry (timed
and completed by ``tracing.traced``, which ``build_graph`` wraps every node in).

Settings come from ``config["configurable"]`` (``GraphSettings``); the models come from the run's context
(``runtime.context``, a ``Services``; see ``tracing`` for why): nothing here loads a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from coe.agents.generation import (
    generate_distractors,
    generate_question,
    generate_rationale,
    sample_questions,
)
from coe.agents.selection import QuestionCandidate, exemplar_questions, rank_distractors, rank_questions
from coe.agents.validation import normalize
from coe.agents.llm_call import prompt_tallied
from coe.agents.verify import check_given_question
from coe.errors import ModelOutputError, QuestionMismatch
from coe.retrieval.exemplars import Exemplar
from coe.retrieval.retriever import RetrievalQuery

from .learned import as_prior, as_question_candidates, ranked_distractors, ranked_questions, shown_selection
from .node_inputs import item_input, pool_candidates, run_settings, shown_exemplars
from .services import Services, image_reader_of, llm_of, retriever_of, services_of
from .settings import settings_from
from .state import CoEState


def describe_image(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    path = state.get("image_path")
    if not path:  # a caller may bring its own image text (e.g. a dataset caption when the file is absent)
        return {"image_text": state.get("image_text", ""), "trace": [{"skipped": "no image"}]}
    from coe.imageio import load_image

    reader = image_reader_of(runtime)
    image = load_image(path)
    described = reader.describe(image, source_path=Path(path))
    text = described.as_prompt_text()
    return {"image_text": text, "trace": [{"reader": reader.name, "output": described.model_dump(mode="json")}]}


def retrieve(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    s = settings_from(config)
    if not s.use_exemplars:
        return {"exemplars": [], "trace": [{"skipped": "ablation: no exemplars"}]}
    retriever = retriever_of(runtime)

    q = RetrievalQuery(
        answer=state["answer"],
        question=state.get("question_given"),
        context=state.get("context", ""),
        image_text=state.get("image_text", ""),
        subject=state.get("subject"),
        grade=state.get("grade"),
        exclude_ids=state.get("exclude_ids", []),
        exclude_splits=s.exclude_splits,
        image_path=state.get("image_path"),
    )
    found, info = retriever.retrieve(q, k=max(s.k, s.pool_k if s.use_pool else 0))
    return {
        "exemplars": [e.model_dump() for e in found],
        "trace": [
            {**info, "exemplars": [{"id": e.id, "bank": e.bank, "score": e.score, "signals": e.signals} for e in found]}
        ],
    }


@prompt_tallied
def question(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    """The question: a given one is checked (does the answer answer it at all?); otherwise several candidates
    (greedy, sampled, exemplar questions) are ranked by the answering agent and the best is kept."""
    (s, selection), llm = run_settings(config, runtime), services_of(runtime).llm
    given = state.get("question_given")
    item = item_input(state)
    if given:
        entry: dict[str, Any] = {"source": "given"}
        if s.verify and s.check_given_question:
            ok, p_yes, why = check_given_question(
                llm,
                item,
                given.strip(),
                s,
                retriever=services_of(runtime).retriever,
                exclude_ids=state.get("exclude_ids", []),
                exclude_splits=s.exclude_splits,
            )
            entry["answers_question_p_yes"] = p_yes
            if not ok:
                raise QuestionMismatch(
                    f'"{state["answer"]}" does not answer the given question "{given.strip()}": '
                    f"{why}; check the question and answer"
                )
        return {"question": given.strip(), "trace": [entry]}
    note = None
    if s.question_selection == "learned":
        ranked, note = ranked_questions(state, s, runtime)
        if ranked:
            return {
                "question": ranked[0]["text"],
                "trace": [
                    {
                        "source": "learned ranking",
                        **shown_selection(selection),
                        "candidates": [
                            {"text": r["text"], "score": r["score"], "source": "ranker:" + "+".join(r["sources"])}
                            for r in ranked[:10]
                        ],
                    }
                ],
            }
    exemplars = shown_exemplars(state, config)
    feedback = state.get("question_feedback", "")
    failure: ModelOutputError | None = None
    try:
        value, trace = generate_question(llm, item, exemplars, mode=s.mode, feedback=feedback)
        candidates = [QuestionCandidate(text=value, source="model")]
    except ModelOutputError as exc:
        # the model's own question is unusable; the sampled and the exemplar questions may still serve
        failure, trace, candidates = exc, {**getattr(exc, "trace", {}), "error": str(exc)}, []
    if s.question_samples and s.verify:
        sampled, sample_traces = sample_questions(
            llm, item, exemplars, s.question_samples, seed=s.seed, mode=s.mode, feedback=feedback
        )
        candidates += [QuestionCandidate(text=q, source="model-sampled") for q in sampled]
        trace["samples"] = sample_traces
    if s.question_exemplars and s.verify:
        # the question ranker's best exemplar and bank questions when there is one, else the exemplars' own
        learned, note = ranked_questions(state, s, runtime) if note is None else ([], note)
        if learned:
            candidates += as_question_candidates(learned[: s.question_exemplars], learned)
        else:
            all_exemplars = [Exemplar(**e) for e in state.get("exemplars", [])]
            candidates += exemplar_questions(
                all_exemplars, state["answer"], state.get("context", ""), limit=s.question_exemplars
            )
    rejected = {normalize(q) for q in state.get("rejected_questions", [])}
    candidates = [c for c in candidates if normalize(c.text) not in rejected] or candidates[:1]
    if not candidates:
        assert failure is not None  # only a failed model question leaves no candidate at all
        raise failure
    value = candidates[0].text
    if len(candidates) > 1:
        ordered = rank_questions(
            llm,
            item,
            candidates,
            seed=s.seed,
            retriever=services_of(runtime).retriever,
            exclude_ids=state.get("exclude_ids", []),
            exclude_splits=s.exclude_splits,
        )
        value = ordered[0].text
        trace["candidates"] = [c.model_dump() for c in ordered]
    if note:
        trace["note"] = note
    return {"question": value, "model": llm_of(runtime).model_id, "trace": [{**trace, **shown_selection(selection)}]}


@prompt_tallied
def rationale(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    s = settings_from(config)
    if not s.use_rationale:
        return {"rationale": None, "trace": [{"skipped": "ablation: no rationale"}]}
    llm = llm_of(runtime)
    value, trace = generate_rationale(
        llm, item_input(state), state["question"], shown_exemplars(state, config), mode=s.mode
    )
    return {"rationale": value, "model": llm.model_id, "trace": [trace]}


@prompt_tallied
def distractors(state: CoEState, config: RunnableConfig, runtime: Runtime[Services]) -> dict[str, Any]:
    (s, selection), llm = run_settings(config, runtime), services_of(runtime).llm
    n = state.get("n_distractors") or s.n_distractors
    attempt = state.get("attempts", 0) + 1
    candidates = pool_candidates(state, config, n)
    note, learned_prior = None, False
    if s.pool_selection == "blend" and s.use_pool and s.verify:
        # the learned ranking is the prior the model's vote and the student's draw start from, when there is one
        ranked, note = ranked_distractors(state, s, runtime)
        if len(ranked) >= n:
            candidates, learned_prior = as_prior(ranked[: max(12, 2 * n)]), True
    pool = [c.text for c in candidates]
    if s.choose_from_pool and s.use_pool and s.pool_selection == "learned" and attempt == 1:
        ranked, note = ranked_distractors(state, s, runtime)
        if len(ranked) >= n:
            chosen = [r["option"] for r in ranked[:n]]
            return {
                "candidate_distractors": chosen,
                "attempts": attempt,
                "trace": [
                    {
                        "attempt": attempt,
                        "source": "learned ranking",
                        "ranking": ranked[:30],
                        "parsed": chosen,
                        **shown_selection(selection),
                    }
                ],
            }
    if s.choose_from_pool and s.pool_selection in ("rank", "learned") and attempt == 1 and len(pool) >= n:
        # The pool's own ranking picks; the model writes distractors only when the pool falls short or
        # validation sends the step back.
        return {
            "candidate_distractors": pool[:n],
            "attempts": attempt,
            "trace": [
                {
                    "attempt": attempt,
                    "source": "pool ranking",
                    "candidates": pool,
                    "parsed": pool[:n],
                    **({"note": note} if note else {}),
                    **shown_selection(selection),
                }
            ],
        }
    try:
        value, trace = generate_distractors(
            llm,
            item_input(state),
            state["question"],
            state.get("rationale"),
            shown_exemplars(state, config),
            n,
            mode=s.mode,
            feedback=state.get("feedback", ""),
            candidates=pool,
            choose=s.choose_from_pool,
        )
    except ModelOutputError as exc:
        # An unparsable reply counts as a failed attempt; validation decides on retry or repair.
        trace = {**getattr(exc, "trace", {}), "error": str(exc)}
        value = []
    if s.pool_selection == "blend" and s.verify and len(candidates) + len(value) >= n:
        votes = [v for v in value if isinstance(v, str)]
        choice = rank_distractors(
            llm,
            item_input(state),
            state["question"],
            candidates,
            votes,
            n,
            difficulty=s.difficulty,
            exclude=state.get("rejected_options", []),
            seed=s.seed,
        )
        if len(choice.chosen) >= n:
            trace.update({"votes": votes, "ranking": choice.ranking, "source": "pool + model vote + student draw"})
            value = choice.chosen
    trace["prior"] = "learned ranking" if learned_prior else "heuristic pool"
    if note:
        trace["note"] = note
    trace.update(shown_selection(selection))
    return {
        "candidate_distractors": value,
        "attempts": attempt,
        "model": llm_of(runtime).model_id,
        "trace": [{"attempt": attempt, **trace}],
    }
