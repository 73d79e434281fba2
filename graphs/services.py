"""The graph's runtime context (``Services``: model, retriever, image reader), its settings (``GraphSettings``,
read from ``config["configurable"]``) and the CPU default services."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
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


@dataclass
class Services:
    """The LangGraph runtime context of a run (``context_schema``): the resolved plugins."""

    llm: Any
    retriever: Any = None
    image_reader: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def settings_from(config: RunnableConfig | None) -> GraphSettings:
    conf = (config or {}).get("configurable", {}) or {}
    return GraphSettings(**{k: v for k, v in conf.items() if k in GraphSettings.model_fields})


def run_settings(config: RunnableConfig | None, runtime) -> tuple[GraphSettings, dict[str, Any] | None]:
    """The run's settings with "auto" resolved for its model (``resolve_selection``)."""
    return resolve_selection(settings_from(config), services_of(runtime).llm)


def services_of(runtime) -> Services:
    """The run's models, passed as LangGraph runtime context (``graph.invoke(state, config, context=...)``)."""
    services = getattr(runtime, "context", None)
    if services is None:
        from coe.errors import ConfigError
        raise ConfigError("the graph needs its models as context: graph.invoke(state, config, "
                          "context=Services(llm=..., retriever=..., image_reader=...)); "
                          "coe.graphs.services.default_services() gives the CPU default")
    return services


def load_services(model: str | None = None) -> Services:
    """The models of the console and the LangGraph server: ``COE_SERVICES`` (``module:function`` returning
    ``Services`` for a model name; the tests' scripted models) when set, else ``default_services(model)``."""
    import importlib

    from coe.errors import ConfigError
    from coe.settings import settings

    spec = (settings().services or "").strip()
    if not spec:
        return default_services(model)
    module, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name or "services")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"COE_SERVICES={spec!r} does not name a function ({exc})") from exc
    return factory(model)


def default_llm(model: str | None = None) -> Any:
    """The LLM plugin for a ``--model`` spec (``coe.plugins.registry.resolve_llm``)."""
    from coe.plugins.registry import resolve_llm

    return resolve_llm(model)


def probe_llm(llm: Any) -> Any:
    """Run a plugin's own reachability check when it has one (``check()``: the OpenAI-compatible plugin's
    GET /models), so a server that cannot be reached fails at once, naming its URL, not after OCR and
    retrieval at the first generation step."""
    check = getattr(llm, "check", None)
    if callable(check):
        check()
    return llm


def default_services(model: str | None = None, banks: tuple[str, ...] | None = None) -> Services:
    """The offline CPU default: llama.cpp GGUF (or a server, see ``default_llm``), MiniLM ONNX over Chroma
    searching ``banks`` (default: ScienceQA's, ``("default",)``), OCR + dataset caption. One per model and
    set of banks in a process (``None`` and ``("default",)`` are the same set)."""
    from coe.question_banks import parse_banks

    return _default_services(model, parse_banks(banks))


@cache
def _default_services(model: str | None, banks: tuple[str, ...]) -> Services:
    # a bad model spec (e.g. a hub id offline) or an unreachable server is the first thing reported
    llm = probe_llm(default_llm(model))
    base = retrieval_services(banks)
    return Services(llm=llm, retriever=base.retriever, image_reader=base.image_reader)


def retrieval_services(banks: tuple[str, ...] | None = None) -> Services:
    """Everything but the LLM: what model-free baselines and retrieval benchmarks need. ``banks``: the
    exemplar banks retrieval searches (``coe.question_banks``; default ``("default",)``, ScienceQA). The image signal of
    retrieval is on only when ``COE_IMAGE_EMBEDDER`` names an image embedder (see ``configured_image_embedder``).
    One per set of banks in a process: the bank matrices and the embedder are loaded once."""
    from coe.question_banks import parse_banks

    return _retrieval_services(parse_banks(banks))


@cache
def _retrieval_services(banks: tuple[str, ...]) -> Services:
    from coe.dataset_loaders import ScienceQA
    from coe.errors import ConfigError
    from coe.plugins.embed.configured import configured_image_embedder
    from coe.plugins.embed.minilm_onnx import MiniLMOnnxEmbedder
    from coe.plugins.store.chroma import ChromaStore
    from coe.plugins.vision.ocr_caption import OcrCaptionReader
    from coe.retrieval.retriever import ExemplarRetriever

    from coe.question_banks import require_banks

    store = ChromaStore()
    embedder = MiniLMOnnxEmbedder()
    require_banks(store, banks, embedder.model_id)
    retriever = ExemplarRetriever(embedder, store, banks=list(banks), image_embedder=configured_image_embedder())
    try:
        dataset = ScienceQA()
    except ConfigError:  # no dataset: OCR alone describes images
        dataset = None
    return Services(llm=None, retriever=retriever, image_reader=OcrCaptionReader(dataset=dataset))
