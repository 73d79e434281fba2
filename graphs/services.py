"""The graph's runtime context (``Services``: model, retriever, image reader) and the CPU default services;
the settings are ``coe.graphs.settings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

# imported at run time, not only for type checkers: LangGraph resolves the context schema's field types when
# it compiles a graph
from coe.plugins.llm.protocol import CheckedLLM, LLMPlugin
from coe.plugins.vision.protocol import ImageReader
from coe.retrieval.retriever import ExemplarRetriever


@dataclass
class Services:
    """The LangGraph runtime context of a run (``context_schema``): the resolved plugins."""

    llm: LLMPlugin | None  # None only for model-free work (the evaluation's model-free variants)
    retriever: ExemplarRetriever | None = None
    image_reader: ImageReader | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retrieval:
    """Everything but the LLM (``retrieval_services``): what model-free work needs."""

    retriever: ExemplarRetriever
    image_reader: ImageReader


def services_of(runtime) -> Services:
    """The run's models, passed as LangGraph runtime context (``graph.invoke(state, config, context=...)``)."""
    services = getattr(runtime, "context", None)
    if services is None:
        from coe.errors import ConfigError

        raise ConfigError(
            "the graph needs its models as context: graph.invoke(state, config, "
            "context=Services(llm=..., retriever=..., image_reader=...)); "
            "coe.graphs.services.default_services() gives the CPU default"
        )
    return services


T = TypeVar("T")


def _present(value: T | None, missing: str) -> T:
    if value is None:
        from coe.errors import ConfigError

        raise ConfigError(missing)
    return value


def llm_of(runtime) -> LLMPlugin:
    """The run's LLM, for a step that calls it; a context without one (model-free work) is a one-line error."""
    return _present(
        services_of(runtime).llm, "this step needs a model, and the graph's context has none (Services.llm is None)"
    )


def retriever_of(runtime) -> ExemplarRetriever:
    """The run's exemplar retriever; a context without one is a one-line error."""
    return _present(
        services_of(runtime).retriever,
        "retrieval needs a retriever, and the graph's context has none (Services.retriever; "
        "coe.graphs.services.retrieval_services() gives the default)",
    )


def image_reader_of(runtime) -> ImageReader:
    """The run's image reader; a context without one is a one-line error."""
    return _present(
        services_of(runtime).image_reader,
        "an image needs an image reader, and the graph's context has none (Services.image_reader)",
    )


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


def default_llm(model: str | None = None) -> LLMPlugin:
    """The LLM plugin for a ``--model`` spec (``coe.plugins.registry.resolve_llm``)."""
    from coe.plugins.registry import resolve_llm

    return resolve_llm(model)


def probe_llm(llm: LLMPlugin) -> LLMPlugin:
    """Run a plugin's own reachability check when it has one (``CheckedLLM``: the OpenAI-compatible plugin's
    GET /models), so a server that cannot be reached fails at once, naming its URL, not after OCR and
    retrieval at the first generation step."""
    if isinstance(llm, CheckedLLM):
        llm.check()
    return llm


def default_services(model: str | None = None, banks: tuple[str, ...] | None = None) -> Services:
    """The offline CPU default: llama.cpp GGUF (or a server, see ``default_llm``), the static query encoder
    over Chroma searching ``banks`` (default: ScienceQA's, ``("default",)``), OCR + dataset caption (each plugin as
    ``retrieval_services`` resolves it). One per model and set of banks in a process (``None`` and
    ``("default",)`` are the same set)."""
    from coe.question_banks import parse_banks

    return _default_services(model, parse_banks(banks))


@cache
def _default_services(model: str | None, banks: tuple[str, ...]) -> Services:
    # Everything but the model (the index, the embedders, OCR, WordNet, the rankers and the bank's counts:
    # about 4 s of a first item on 2 cores) loads on a thread while the model loads; llama.cpp reads its
    # weights with the GIL released. A bad model spec (e.g. a hub id offline) or an unreachable server is
    # still the first thing reported.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coe-warm")
    loading = pool.submit(warm, banks)
    try:
        llm = probe_llm(default_llm(model))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    base = loading.result()
    return Services(llm=llm, retriever=base.retriever, image_reader=base.image_reader)


def warm(banks: tuple[str, ...]) -> Retrieval:
    """``retrieval_services(banks)`` with what an item's first steps would load already loaded: the OCR
    engine, WordNet, the bank's matrices, the rankers and the bank's counts (each a lock-guarded cache)."""
    from coe.modelstore.wordnet import wordnet_reader
    from coe.ranking.select import warm as warm_rankers

    base = retrieval_services(banks)
    reader_warm = getattr(base.image_reader, "warm", None)
    if callable(reader_warm):
        reader_warm()
    wordnet_reader()
    warm_rankers(base.retriever)
    return base


def retrieval_services(banks: tuple[str, ...] | None = None) -> Retrieval:
    """Everything but the LLM: what model-free baselines and retrieval benchmarks need. ``banks``: the
    exemplar banks retrieval searches (``coe.question_banks``; default ``("default",)``, ScienceQA). Each plugin
    comes from its entry-point group, named by ``COE_TEXT_EMBEDDER``, ``COE_VECTOR_STORE`` and
    ``COE_IMAGE_READER`` (default: the built-in MiniLM ONNX, Chroma, OCR + caption; see
    ``coe.plugins.registry.resolve``). The image signal of retrieval is on only when ``COE_IMAGE_EMBEDDER``
    names an image embedder (see ``configured_image_embedder``). One per set of banks in a process: the bank
    matrices and the embedder are loaded once."""
    from coe.question_banks import parse_banks

    return _retrieval_services(parse_banks(banks))


@cache
def _retrieval_services(banks: tuple[str, ...]) -> Retrieval:
    from coe.dataset_loaders import ScienceQA
    from coe.errors import ConfigError
    from coe.plugins.embed.configured import configured_image_embedder, similarity_embedder
    from coe.plugins.registry import resolve
    from coe.question_banks import require_banks

    store = resolve("vector_store")
    embedder = resolve("text_embedder")
    require_banks(store, banks, embedder.model_id)
    retriever = ExemplarRetriever(
        embedder,
        store,
        banks=list(banks),
        image_embedder=configured_image_embedder(),
        similarity_embedder=similarity_embedder(embedder),
    )
    try:
        dataset = ScienceQA()
    except ConfigError:  # no dataset: OCR alone describes images
        dataset = None
    return Retrieval(retriever=retriever, image_reader=resolve("image_reader", dataset=dataset))
