"""Every COE_* variable is read through one pydantic-settings model."""

from pathlib import Path

import pytest

from coe.settings import settings


def test_variables_are_read_afresh_typed_and_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("COE_HOME", str(tmp_path))
    monkeypatch.setenv("COE_OPENAI_IMAGES", "0")
    monkeypatch.setenv("COE_CHROMA_URL", "")  # empty counts as unset
    monkeypatch.setenv("COE_MODELS_DIR", "~/elsewhere")
    s = settings()
    assert s.home == tmp_path and s.openai_images is False and s.chroma_url is None
    assert s.models_dir == Path.home() / "elsewhere"
    from coe.paths import chroma_dir, models_dir
    assert chroma_dir() == tmp_path / "chroma" and models_dir() == Path.home() / "elsewhere"
    monkeypatch.setenv("COE_OPENAI_JSON_MODE", "json_object")
    from coe.plugins.llm.openai_compat import OpenAICompatLLM
    assert OpenAICompatLLM.from_spec("qwen@http://127.0.0.1:9/v1").json_mode == "json_object"


def test_a_malformed_value_is_one_clear_line(monkeypatch):
    from coe.errors import ConfigError
    monkeypatch.setenv("COE_OFFLINE", "perhaps")
    with pytest.raises(ConfigError, match="COE_OFFLINE='perhaps': Input should be a valid boolean"):
        settings()
