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


THIRD_PARTY_KINDS = '''
from collections import defaultdict

import numpy as np

from coe.plugins.store.protocol import Hit
from coe.plugins.vision.protocol import ImageText
from tests.conftest import HashEmbedder


class Words(HashEmbedder):
    """A third party's text embedder (``COE_TEXT_EMBEDDER=words``)."""
    name = "words"

    def __init__(self, max_length=None):
        self.max_length = max_length


class MemoryStore:
    """A third party's vector store (``COE_VECTOR_STORE=memory``): numpy rows in a dict shared by every
    instance, as a server would be; nothing but the ``VectorStore`` Protocol."""
    name = "memory"
    records = defaultdict(dict)  # (prefix, collection) -> id -> (vector, metadata, document)
    markers = {}

    def __init__(self, path=None, *, prefix="coe"):
        self.prefix, self.location = prefix, f"memory:{prefix}"

    def _col(self, collection):
        return self.records[(self.prefix, collection)]

    def upsert(self, collection, ids, embeddings, metadatas, documents):
        for i, v, m, d in zip(ids, np.asarray(embeddings, dtype=np.float32), metadatas, documents):
            self._col(collection)[i] = (v, dict(m), d)

    def query(self, collection, embedding, n, where=None, *, documents=True):
        def kept(meta):
            return all(meta.get(k) not in c.get("$nin", ()) and ("$in" not in c or meta.get(k) in c["$in"])
                       if isinstance(c, dict) else meta.get(k) == c for k, c in (where or {}).items())
        hits = [Hit(id=i, similarity=float(v @ embedding), metadata=m, document=d if documents else None)
                for i, (v, m, d) in self._col(collection).items() if kept(m)]
        return sorted(hits, key=lambda h: (-h.similarity, h.id))[:n]

    def get_embeddings(self, collection, ids):
        return {i: self._col(collection)[i][0] for i in ids if i in self._col(collection)}

    def get_records(self, collection, ids):
        col = self._col(collection)
        return {i: {"metadata": col[i][1], "document": col[i][2]} for i in ids if i in col}

    def get_all(self, collection):
        col = self._col(collection)
        ids = sorted(col)
        vectors = np.stack([col[i][0] for i in ids]) if ids else np.zeros((0, 0), np.float32)
        return ids, vectors, [col[i][1] for i in ids], [col[i][2] for i in ids]

    def existing_ids(self, collection):
        return set(self._col(collection))

    def count(self, collection):
        return len(self._col(collection))

    def get_marker(self, key):
        return self.markers.get((self.prefix, key))

    def set_marker(self, key, value):
        self.markers[(self.prefix, key)] = dict(value)

    def reset(self, collection):
        self.records.pop((self.prefix, collection), None)


class Captions:
    """A third party's image reader (``COE_IMAGE_READER=captions``)."""
    name = "captions"

    def __init__(self, dataset=None):
        self.dataset = dataset

    def describe(self, image, *, source_path=None):
        return ImageText(caption=f"a {image.width}x{image.height} drawing", source="captions")
'''


@pytest.fixture
def third_party_kinds(tmp_path, monkeypatch):
    """A distribution registering a plugin in each of the other groups, and the variables that choose them."""
    (tmp_path / "coe_kinds_plugin.py").write_text(THIRD_PARTY_KINDS)
    info = tmp_path / "coe_kinds_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: coe-kinds-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[coe.text_embedders]\nwords = coe_kinds_plugin:Words\n"
                                           "[coe.vector_stores]\nmemory = coe_kinds_plugin:MemoryStore\n"
                                           "[coe.image_readers]\ncaptions = coe_kinds_plugin:Captions\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COE_TEXT_EMBEDDER", "words")
    monkeypatch.setenv("COE_VECTOR_STORE", "memory")
    monkeypatch.setenv("COE_IMAGE_READER", "captions")
    from tests.conftest import FIXTURE
    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(FIXTURE))
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))  # no imported banks but the test's
    return tmp_path


def test_the_services_take_each_plugin_from_its_entry_point_group(third_party_kinds, fixture_dataset):
    from PIL import Image

    from coe.graphs import services
    from coe.ingest.embedding import MAX_TOKENS, passage_embedder
    from coe.question_banks import list_banks
    from coe.retrieval.index import build_index, default_bank
    from coe.retrieval.retriever import RetrievalQuery

    store = registry.resolve("vector_store")
    build_index(default_bank(fixture_dataset), embedder=registry.resolve("text_embedder"), store=store)
    services._retrieval_services.cache_clear()  # one per process otherwise: built here with the variables set
    try:
        built = services.retrieval_services()
    finally:
        services._retrieval_services.cache_clear()
    assert type(built.retriever.embedder).__name__ == "Words"
    assert type(built.retriever.raw_store).__name__ == "MemoryStore"
    exemplars, _ = built.retriever.retrieve(RetrievalQuery(answer="a fox", context="A pond food web with frogs."))
    assert exemplars and {e.id for e in exemplars} <= store.existing_ids("default-answer")
    assert built.image_reader.dataset is not None  # built with the caption source, as the Protocol says
    assert built.image_reader.describe(Image.new("RGB", (4, 3))).caption == "a 4x3 drawing"
    assert [b.name for b in list_banks()] == ["default"]  # the bank registry reads the same store
    passage_embedder.cache_clear()
    try:
        assert type(passage_embedder()).__name__ == "Words" and passage_embedder().max_length == MAX_TOKENS
    finally:
        passage_embedder.cache_clear()


def test_an_unknown_plugin_name_in_the_environment_is_one_line(third_party_kinds, monkeypatch):
    monkeypatch.setenv("COE_VECTOR_STORE", "nope")
    with pytest.raises(ConfigError, match=r"^COE_VECTOR_STORE='nope' names no vector_store plugin; "
                                          r"installed: chroma, memory$"):
        registry.resolve("vector_store")
    with pytest.raises(ConfigError, match=r"^no vector_store plugin named 'nope'; installed: chroma, memory$"):
        registry.resolve("vector_store", "nope")  # named by the caller (a command-line option)
    monkeypatch.delenv("COE_TEXT_EMBEDDER")
    assert registry.configured_name("text_embedder") == "minilm-static"  # unset: the built-in one
