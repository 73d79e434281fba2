"""LangChain's own standard test suites (``langchain-tests``) over ``PluginChatModel``.

The unit suite builds the chat model from its spec without loading it; the integration suite runs the
real 0.5B llama.cpp model on the CPU with short replies. Capabilities switched off below are the ones the
backend lacks: the GGUF has no vision projector (no images), and no backend takes audio, video or PDF."""

from __future__ import annotations

import inspect

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from coe.plugins.llm.langchain_adapter import PluginChatModel

PRESET = "qwen2.5-coder-0.5b-instruct-q4"
SPEC = f"llamacpp:{PRESET}"


class TestPluginChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[PluginChatModel]:
        return PluginChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": SPEC}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return {"COE_MODEL": "openai:served@http://127.0.0.1:9/v1"}, {}, {"model_name": "openai:served@http://127.0.0.1:9/v1"}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @pytest.mark.xfail(strict=True, reason="the suite loads with allowed_objects='all', which admits only the "
                       "classes in langchain's own mapping; test_serdes_round_trip names the class instead")
    def test_serdes(self, model: PluginChatModel, snapshot) -> None:
        super().test_serdes(model, snapshot)

    def test_serdes_round_trip(self, model: PluginChatModel) -> None:
        from langchain_core.load import dumpd, load

        ser = dumpd(model)
        assert ser["id"] == ["coe", "plugins", "llm", "langchain_adapter", "PluginChatModel"]
        assert ser["kwargs"]["model_name"] == SPEC and "plugin" not in ser["kwargs"]
        loaded = load(ser, valid_namespaces=["coe"], allowed_objects=[PluginChatModel])
        assert isinstance(loaded, PluginChatModel) and loaded.plugin is None  # nothing loaded yet
        assert loaded.asdict() == model.asdict()


# The suite's async tests carry no asyncio mark and pytest-asyncio runs in strict mode here: mark them (the
# suite's own functions, so its no-override check still holds).
for _name, _test in vars(ChatModelIntegrationTests).items():
    if _name.startswith("test_") and inspect.iscoroutinefunction(_test):
        pytest.mark.asyncio(_test)


@pytest.mark.slow
class TestPluginChatModelIntegration(ChatModelIntegrationTests):
    @pytest.fixture(scope="class", autouse=True)
    def _pulled(self):
        from coe.modelstore import is_pulled
        if not is_pulled(PRESET):
            pytest.fail(f"needs the {PRESET} model (coe models pull {PRESET})", pytrace=False)

    @property
    def chat_model_class(self) -> type[PluginChatModel]:
        return PluginChatModel

    @property
    def chat_model_params(self) -> dict:
        # short replies keep the suite's many calls cheap on a CPU; enough for a JSON joke or a tool call
        # repeat_penalty: greedy decoding of the 0.5B model can loop inside a free-text JSON string
        return {"model": SPEC, "max_tokens": 64, "repeat_penalty": 1.1}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return False  # text-only GGUF: the llama.cpp plugin refuses images
