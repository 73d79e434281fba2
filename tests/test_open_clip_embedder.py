"""The open_clip image embedder on a tiny random-init model built through the plugin's own loading code,
and the image collection it fills for retrieval, in a real Chroma store. No CLIP weights exist here."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from coe.errors import ConfigError, InputError
from tests.conftest import FIXTURE, HashEmbedder

from tests.tiers import require

pytestmark = pytest.mark.vlm
torch = require("torch", "vlm")
open_clip = require("open_clip", "vlm")

from coe.plugins.embed.open_clip_image import OpenClipImageEmbedder  # noqa: E402

# A CLIP small enough to build in well under a second; the standard vocabulary keeps open_clip's bundled
# tokenizer usable.
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
REAL_IMAGE = FIXTURE / "images/train/2/image.png"  # pid 2's image, the one train image in the fixture


def picture(i: int) -> Image.Image:
    """Distinct synthetic pictures: a different shape, colour and place for each ``i``."""
    img = Image.new("RGB", (96, 80), [(255, 255, 255), (20, 20, 60), (200, 230, 200), (250, 200, 40)][i % 4])
    draw = ImageDraw.Draw(img)
    box = [8 + 9 * i, 6 + 5 * i, 50 + 7 * i, 60 + 2 * i]
    colour = [(200, 0, 0), (0, 160, 255), (0, 0, 0), (120, 0, 160)][i % 4]
    (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colour)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "coe-tiny-clip.json"
    path.write_text(json.dumps(TINY))
    return path


@pytest.fixture(scope="module")
def embedder(tiny_config):
    return OpenClipImageEmbedder(tiny_config, pretrained=None)


@pytest.fixture(scope="module")
def checkpoint(embedder, tmp_path_factory):
    from safetensors.torch import save_file
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in embedder._model.state_dict().items()}, str(path))
    return path


def test_shapes_norms_and_dtype(embedder, tmp_path):
    path = tmp_path / "p.png"
    picture(1).save(path)
    vecs = embedder.embed_images([picture(0), path, str(path), png_bytes(picture(2))])
    assert vecs.shape == (4, embedder.dim) and embedder.dim == 32 and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    texts = embedder.embed_texts(["a food web", "", "a map of the United States"])
    assert texts.shape == (3, 32) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_images([]).shape == (0, 32) and embedder.embed_texts([]).shape == (0, 32)
    assert embedder.device == "cpu" and next(embedder._model.parameters()).dtype == torch.float32


def test_same_image_same_vector_in_every_form(embedder, tmp_path):
    path = tmp_path / "p.png"
    picture(3).save(path)
    a, b, c = embedder.embed_images([picture(3), path, path.read_bytes()])
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-6)
    # a transparent PNG is flattened onto white, as for OCR
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    np.testing.assert_allclose(embedder.embed_images([rgba])[0],
                               embedder.embed_images([Image.new("RGB", (40, 40), "white")])[0], atol=1e-6)
    distinct = embedder.embed_images([picture(i) for i in range(4)])
    sims = distinct @ distinct.T
    assert (sims[~np.eye(4, dtype=bool)] < 0.999).all()


def test_batches_and_processes_agree(embedder, tiny_config):
    images = [picture(i) for i in range(5)]
    whole = embedder.embed_images(images)
    again = OpenClipImageEmbedder(tiny_config, pretrained=None, batch_size=2)  # seeded: same random weights
    assert again.model_id == embedder.model_id
    np.testing.assert_allclose(again.embed_images(images), whole, atol=1e-5)
    texts = ["grass", "rabbit", "fox"]
    np.testing.assert_allclose(again.embed_texts(texts), embedder.embed_texts(texts), atol=1e-5)
    other = OpenClipImageEmbedder(tiny_config, pretrained=None, seed=1)
    assert other.model_id != embedder.model_id
    assert not np.allclose(other.embed_images(images), whole, atol=1e-3)


def test_local_checkpoint_file_and_directory(embedder, tiny_config, checkpoint, tmp_path):
    images = [picture(0), picture(1)]
    want = embedder.embed_images(images)
    # seed=1 would give other random weights: equal vectors prove the checkpoint was loaded
    from_file = OpenClipImageEmbedder(tiny_config, pretrained=checkpoint, seed=1)
    np.testing.assert_allclose(from_file.embed_images(images), want, atol=1e-5)
    assert from_file.model_id.startswith("open_clip/coe-tiny-clip/tiny.safetensors@")
    pt = tmp_path / "tiny.pt"
    torch.save(embedder._model.state_dict(), pt)
    np.testing.assert_allclose(OpenClipImageEmbedder(tiny_config, pretrained=str(pt)).embed_images(images),
                               want, atol=1e-5)
    # an open_clip directory (what the hub's open_clip repos hold) brings its own architecture
    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    (folder / "open_clip_model.safetensors").write_bytes(checkpoint.read_bytes())
    from_dir = OpenClipImageEmbedder("ignored-when-a-directory-is-given", pretrained=folder)
    np.testing.assert_allclose(from_dir.embed_images(images), want, atol=1e-5)
    np.testing.assert_allclose(from_dir.embed_texts(["fox"]), embedder.embed_texts(["fox"]), atol=1e-5)


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "COE_OFFLINE"])
def test_pretrained_tag_offline_fails_at_once(monkeypatch, no_network, var):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(var, "1")
    with pytest.raises(ConfigError, match="pass a local checkpoint path") as info:
        OpenClipImageEmbedder("ViT-B-32", pretrained="openai")
    assert "\n" not in str(info.value)
    assert "HF_HUB_OFFLINE" in str(info.value) and "ViT-B-32/openai" in str(info.value)


def test_bad_specs_are_one_line_config_errors(tiny_config, tmp_path):
    cases = [
        (dict(model="ViT-B-32", pretrained="no-such-tag"), "unknown open_clip pretrained tag"),
        (dict(model="ViT-B-32", pretrained=str(tmp_path / "missing.pt")), "checkpoint not found"),
        (dict(model="no-such-arch", pretrained=None), "unknown open_clip model"),
        (dict(model=str(tmp_path / "none.json"), pretrained=None), "model config not found"),
        (dict(model=tiny_config, pretrained=tiny_config), "not an open_clip checkpoint"),
        (dict(model=tiny_config, pretrained=tmp_path), "not an open_clip checkpoint directory"),
        (dict(model=tiny_config, pretrained=None, precision="fp16", device="cpu"), "needs a GPU"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(ConfigError, match=needle) as info:
            OpenClipImageEmbedder(**kwargs)
        assert "\n" not in str(info.value)
    # a checkpoint of another architecture: open_clip's long strict-load error, cut to one line
    wrong = tmp_path / "wrong.pt"
    torch.save({"nothing": torch.zeros(1)}, wrong)
    with pytest.raises(ConfigError, match="could not load open_clip model") as info:
        OpenClipImageEmbedder(tiny_config, pretrained=wrong)
    assert "\n" not in str(info.value)


def test_bad_images_are_input_errors(tiny_config, tmp_path):
    small = OpenClipImageEmbedder(tiny_config, pretrained=None, max_pixels=10_000)
    with pytest.raises(InputError, match="not a readable image: image bytes"):
        small.embed_images([b"not an image"])
    with pytest.raises(InputError, match="image too large"):
        small.embed_images([Image.new("RGB", (200, 200))])
    with pytest.raises(InputError, match="image too large"):
        small.embed_images([png_bytes(Image.new("RGB", (200, 200)))])
    with pytest.raises(InputError, match="image not found"):
        small.embed_images([tmp_path / "nope.png"])
    with pytest.raises(InputError, match="not an image: int"):
        small.embed_images([3])


def test_registered_and_configured_by_entry_point(embedder, tiny_config, checkpoint, monkeypatch):
    from coe.plugins import registry
    from coe.plugins.embed.configured import configured_image_embedder
    from coe.plugins.embed.protocol import ImageEmbedder

    assert "open-clip" in registry.available("image_embedder")
    assert registry.load("image_embedder", "open-clip") is OpenClipImageEmbedder
    assert isinstance(embedder, ImageEmbedder)
    monkeypatch.delenv("COE_IMAGE_EMBEDDER", raising=False)
    assert configured_image_embedder() is None
    monkeypatch.setenv("COE_IMAGE_EMBEDDER", "open-clip")
    monkeypatch.setenv("COE_IMAGE_MODEL", str(tiny_config))
    monkeypatch.setenv("COE_IMAGE_WEIGHTS", str(checkpoint))
    assert configured_image_embedder().model_id.startswith("open_clip/coe-tiny-clip/tiny.safetensors@")
    assert configured_image_embedder("none") is None


# -- retrieval -------------------------------------------------------------------------------------------

PICTURED = {"1": 0, "3": 1, "5": 2}  # bank exemplars given a synthetic picture; "2" has the fixture's image


@pytest.fixture
def image_bank(tmp_path, fixture_dataset, embedder):
    """The fixture bank in a real Chroma store: text fields (hash embedder) plus the image collection."""
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_image_index, build_index, default_bank, exemplar_images

    store = ChromaStore(tmp_path / "chroma")
    bank = default_bank(fixture_dataset)
    build_index(bank, embedder=HashEmbedder(), store=store)
    images = exemplar_images(fixture_dataset, bank)
    assert set(images) == {"2"}  # pid 6 has an image, but its file is not in the fixture
    for pid, i in PICTURED.items():
        images[pid] = tmp_path / f"{pid}.png"
        picture(i).save(images[pid])
    result = build_image_index(bank, images, image_embedder=embedder, store=store)
    assert result == {"status": "built", "exemplars": 6, "added": 6, "unreadable": 0}
    return store, bank, images


def test_image_index_holds_images_and_text_fallbacks(image_bank, embedder):
    from coe.retrieval.index import build_image_index
    store, bank, images = image_bank
    records = store.get_records("default-image", [e.id for e in bank])
    modality = {i: r["metadata"]["modality"] for i, r in records.items()}
    assert modality == {"1": "image", "2": "image", "3": "image", "5": "image", "4": "text", "6": "text"}
    assert records["4"]["document"] == "What is the opposite of cold?"  # no context: the question
    assert records["2"]["metadata"]["split"] == "train"  # split filters work on this collection too
    stored = store.get_embeddings("default-image", ["2"])["2"]
    np.testing.assert_allclose(stored, embedder.embed_images([REAL_IMAGE])[0], atol=1e-5)
    again = build_image_index(bank, images, image_embedder=embedder, store=store)
    assert again["status"] == "up to date" and again["added"] == 0


def test_repeated_fallback_texts_are_embedded_once(embedder, tmp_path, fixture_dataset):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_image_index, default_bank

    bank = default_bank(fixture_dataset)
    bank += [e.model_copy(update={"id": f"{e.id}-copy"}) for e in bank]
    sent = []

    class Counting:
        name, model_id, dim = embedder.name, embedder.model_id, embedder.dim

        def embed_images(self, images):
            return embedder.embed_images(images)

        def embed_texts(self, texts):
            sent.extend(texts)
            return embedder.embed_texts(texts)

    store = ChromaStore(tmp_path / "chroma")
    result = build_image_index(bank, {}, image_embedder=Counting(), store=store)
    assert result["added"] == 12 and len(sent) == len(set(sent)) == 6
    got = store.get_embeddings("default-image", ["4", "4-copy"])
    np.testing.assert_array_equal(got["4"], got["4-copy"])


@pytest.mark.parametrize("pid, answer", [("3", "zebra"), ("2", "the Moon")])
def test_same_image_retrieves_its_exemplar_first(image_bank, embedder, pid, answer, monkeypatch):
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery
    store, _, images = image_bank
    queried, query = [], store.query

    def spy(collection, *args, **kwargs):
        queried.append(collection)
        return query(collection, *args, **kwargs)

    monkeypatch.setattr(store, "query", spy)
    retriever = ExemplarRetriever(HashEmbedder(), store, image_embedder=embedder)
    # the answer shares no word with any exemplar: only the image can decide
    found, info = retriever.retrieve(RetrievalQuery(answer=answer, image_path=str(images[pid])))
    assert "default-image" in queried
    assert found[0].id == pid and found[0].signals["image"] == pytest.approx(1.0, abs=1e-4)
    assert found[0].score > found[1].score
    assert info["query_image"] == {"path": str(images[pid]), "embedder": embedder.model_id}
    assert info["weights"]["image"] == 0.30
    # the item itself stays excluded, as for the text signals
    found, _ = retriever.retrieve(RetrievalQuery(answer=answer, image_path=str(images[pid]), exclude_ids=[pid]))
    assert pid not in {e.id for e in found}


def test_without_a_query_image_retrieval_is_unchanged(image_bank, embedder):
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery
    store, _, _ = image_bank
    q = RetrievalQuery(answer="rabbit", context="food chain grass rabbit fox", question="Which animal eats the plant?")
    plain, plain_info = ExemplarRetriever(HashEmbedder(), store).retrieve(q)
    with_clip, clip_info = ExemplarRetriever(HashEmbedder(), store, image_embedder=embedder).retrieve(q)
    assert [e.model_dump() for e in plain] == [e.model_dump() for e in with_clip]
    assert "query_image" not in clip_info
    # an image path means nothing to a retriever without an image embedder
    again, _ = ExemplarRetriever(HashEmbedder(), store).retrieve(q.model_copy(update={"image_path": REAL_IMAGE}))
    assert [e.id for e in again] == [e.id for e in plain]


def test_retriever_refuses_a_missing_or_foreign_image_index(image_bank, tiny_config, tmp_path):
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.retriever import ExemplarRetriever
    store, _, _ = image_bank
    other = OpenClipImageEmbedder(tiny_config, pretrained=None, seed=7)
    with pytest.raises(ConfigError, match="built with open_clip/coe-tiny-clip/random-init-seed0, not"):
        ExemplarRetriever(HashEmbedder(), store, image_embedder=other)
    with pytest.raises(ConfigError, match="image index is not built"):
        ExemplarRetriever(HashEmbedder(), ChromaStore(tmp_path / "text-only"), image_embedder=other)


def test_graph_retrieve_node_sends_the_item_image(image_bank, embedder):
    from coe.graphs import Services
    from coe.graphs.nodes import retrieve
    from langgraph.runtime import Runtime
    from coe.retrieval.retriever import ExemplarRetriever
    store, _, images = image_bank
    services = Services(llm=None, retriever=ExemplarRetriever(HashEmbedder(), store, image_embedder=embedder))
    out = retrieve({"answer": "zebra", "image_path": str(images["5"])}, {}, Runtime(context=services))
    assert out["exemplars"][0]["id"] == "5"
    assert out["trace"][0]["query_image"]["path"] == str(images["5"])


@pytest.mark.slow
def test_cli_index_build_with_image_embedder(tmp_path, tiny_config, checkpoint):
    from coe.modelstore import is_pulled
    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COE_IMAGE_MODEL": str(tiny_config)}
    env.pop("COE_IMAGE_EMBEDDER", None)
    base = [sys.executable, "-m", "coe.cli", "index", "build", "--data", str(FIXTURE),
            "--chroma-dir", str(tmp_path / "chroma")]
    proc = subprocess.run(base + ["--image-embedder", "open-clip", "--image-weights", str(checkpoint)],
                          capture_output=True, timeout=300, env=env)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "image index built with open_clip/coe-tiny-clip/tiny.safetensors@" in err and "6 records added" in err
    from coe.plugins.store.chroma import ChromaStore
    assert ChromaStore(tmp_path / "chroma").count("default-image") == 6
    # a hub tag offline: one line, exit 1, before any text is embedded
    proc = subprocess.run(base[:-1] + [str(tmp_path / "other"), "--image-embedder", "open-clip",
                                       "--image-model", "ViT-B-32", "--image-weights", "openai"],
                          capture_output=True, timeout=300, env=env)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1 and "local checkpoint path" in err, err
