"""Plugins are found through their entry-point groups; a third party adds a backend by registering one."""

import textwrap

import pytest

from coe.errors import CoeError, ConfigError
from coe.plugins import registry


def test_entry_points_register_every_default_plugin():
    assert {"llamacpp", "openai", "transformers", "transformers-vl", "qwen-vl-chat"} <= set(registry.available("llm"))
    assert "scripted" not in registry.available("llm")  # test doubles are not product plugins
    assert "minilm-onnx" in registry.available("text_embedder")
    assert "ocr-caption" in registry.available("image_reader")
    assert "chroma" in registry.available("vector_store")
    from coe.plugins.llm.openai_compat import OpenAICompatLLM
    assert registry.load("llm", "openai") is OpenAICompatLLM


def test_unknown_plugin_is_a_clear_error():
    with pytest.raises(ConfigError, match="no llm plugin named 'nope'"):
        registry.load("llm", "nope")


THIRD_PARTY = '''
import json
from coe.plugins.llm.protocol import Generation, GenerationRequest

class RuleLLM:
    """A third party's backend: fixed replies by task, built from ``--model rules:NAME``."""
    name = "rules"
    supports_images = False
    supports_json_schema = True

    def __init__(self, model_id):
        self.model_id = model_id

    @classmethod
    def from_spec(cls, spec):
        return cls(f"rules-{spec}")

    def generate(self, request: GenerationRequest) -> Generation:
        task = request.messages[-1].content
        props = (request.json_schema or {}).get("properties", {})
        if "choice" in props:
            reply = {"choice": props["choice"]["enum"][0]}
        elif "question" in props:
            reply = {"question": "Which organism does the fox eat?"}
        elif "rationale" in props:
            reply = {"rationale": "The arrow points from the rabbit to the fox."}
        elif "notes" in props:
            reply = {"notes": [f"looks like food {i}" for i in range(props["notes"]["minItems"])]}
        else:
            reply = {"distractors": ["grass", "hawk", "owl"][: props["distractors"]["minItems"]]}
        return Generation(text=json.dumps(reply), data=reply, model=self.model_id)

    def generate_batch(self, requests):
        return [self.generate(r) for r in requests]
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """An installed distribution (module + dist-info with an entry point), found the way pip's would be."""
    (tmp_path / "coe_rules_plugin.py").write_text(textwrap.dedent(THIRD_PARTY))
    info = tmp_path / "coe_rules_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: coe-rules-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[coe.llm]\nrules = coe_rules_plugin:RuleLLM\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_model_spec_selects_a_third_party_plugin_by_its_entry_point(third_party, fixture_index):
    from coe.generate import generate_item
    from coe.graphs.services import Services, default_llm
    from tests.test_graph import StubReader

    assert "rules" in registry.available("llm")
    llm = default_llm("rules:v2")
    assert type(llm).__name__ == "RuleLLM" and llm.model_id == "rules-v2"
    item = generate_item(image=None, answer="rabbit", context="A meadow food chain: grass, rabbit, fox.",
                         n_distractors=2, services=Services(llm=llm, retriever=fixture_index,
                                                            image_reader=StubReader()),
                         question_samples=0, question_exemplars=0, pool_selection="model",
                         question_selection="model")
    assert item.model == "rules-v2" and item.question == "Which organism does the fox eat?"
    # no log-probabilities: the student's choices come from schema-constrained replies; this plugin answers
    # "Yes" to every judgement, so its options all look correct and the item ends flagged, never verified
    assert item.verification["method"] == "choice" and item.status == "flagged" and len(item.distractors) == 2


def test_model_specs_of_the_bundled_plugins():
    from coe.graphs.services import default_llm

    with pytest.raises(CoeError, match="not a preset"):
        default_llm("llamacpp:/nonexistent/model.gguf")
    server = default_llm("openai:qwen@http://127.0.0.1:9/v1")
    assert type(server).__name__ == "OpenAICompatLLM" and server.model_id == "qwen"
    assert server.base_url == "http://127.0.0.1:9/v1"
