import pytest

from coe.errors import ConfigError
from coe.plugins import registry


def test_entry_points_register_every_default_plugin():
    assert {"llamacpp", "scripted"} <= set(registry.available("llm"))
    assert "minilm-onnx" in registry.available("text_embedder")
    assert "ocr-caption" in registry.available("image_reader")
    assert "chroma" in registry.available("vector_store")
    from coe.plugins.llm.scripted import ScriptedLLM
    assert registry.load("llm", "scripted") is ScriptedLLM


def test_unknown_plugin_is_a_clear_error():
    with pytest.raises(ConfigError, match="no llm plugin named 'nope'"):
        registry.load("llm", "nope")
