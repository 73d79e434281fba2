"""The default services load the retrieval side while the language model loads, and still report a bad model
first."""

from __future__ import annotations

import threading

import pytest

from coe.errors import ConfigError
from coe.graphs import services


@pytest.fixture
def fresh(monkeypatch):
    services._default_services.cache_clear()
    yield monkeypatch
    services._default_services.cache_clear()


def test_the_retrieval_side_loads_while_the_model_loads(fresh):
    warming = threading.Event()
    base = services.Retrieval(retriever=None, image_reader=None)

    def warm(banks):
        warming.set()
        return base

    def load_model(model):
        # a model that finished loading before anything else started would time out here
        assert warming.wait(timeout=30), "the retrieval side did not load beside the model"
        return "model"

    fresh.setattr(services, "warm", warm)
    fresh.setattr(services, "default_llm", load_model)
    built = services.default_services("m")
    assert built.llm == "model" and built.retriever is None


def test_a_bad_model_is_reported_before_a_missing_index(fresh):
    def warm(banks):
        raise ConfigError("the exemplar index is not built")

    def load_model(model):
        raise ConfigError(f"no model named {model!r}")

    fresh.setattr(services, "warm", warm)
    fresh.setattr(services, "default_llm", load_model)
    with pytest.raises(ConfigError, match="no model named 'nope'"):
        services.default_services("nope")
    fresh.setattr(services, "default_llm", lambda model: "model")
    with pytest.raises(ConfigError, match="the exemplar index is not built"):
        services.default_services("fine")
