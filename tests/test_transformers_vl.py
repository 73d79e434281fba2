"""The transformers Qwen2-VL / Qwen2.5-VL plugin on tiny random checkpoints (CPU, offline).

The checkpoints are built here: the real Qwen2 tokenizer read from the pulled 0.5B GGUF (plus the VL
special tokens), an image processor configured from scratch and random weights, saved as a checkpoint
directory and loaded through the plugin's own path.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.tiers import require

pytestmark = pytest.mark.vlm
torch = require("torch", "vlm")
transformers = require("transformers", "vlm")

from coe.errors import ConfigError, InputError  # noqa: E402
from coe.plugins.llm.protocol import GenerationRequest, ImageRef, Message  # noqa: E402

SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}


def image(size: int, seed: int = 0) -> ImageRef:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return ImageRef.from_pil(Image.fromarray(pixels))


def request(text: str, images=(), *, max_tokens: int = 6, **kw) -> GenerationRequest:
    return GenerationRequest(messages=[Message(role="system", content="You write quiz questions."),
                                       Message(role="user", content=text, images=list(images))],
                             max_tokens=max_tokens, **kw)


@pytest.fixture(scope="session")
def llm(checkpoints):
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    torch.manual_seed(0)
    return TransformersVLLM(checkpoints["qwen2_vl"], dtype="fp32", device="cpu")


def test_tokenizer_keeps_vl_special_tokens(qwen_tokenizer):
    ids = qwen_tokenizer("<|vision_start|><|image_pad|><|vision_end|><|im_end|>")["input_ids"]
    assert ids == [151652, 151655, 151653, 151645]


def test_image_tokens_and_pixels_follow_image_size(llm):
    small, large = image(56), image(112, seed=1)
    inputs = llm.encode([request("one", [small]), request("two", [large])])
    # 14-px patches, 2x2 merge: 56 px -> 4x4 patches -> 4 tokens; 112 px -> 8x8 patches -> 16 tokens
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 8, 8]]
    assert (inputs["input_ids"] == 151655).sum(dim=1).tolist() == [4, 16]
    assert tuple(inputs["pixel_values"].shape) == (16 + 64, 3 * 2 * 14 * 14)
    assert inputs["attention_mask"][0, 0] == 0 and inputs["attention_mask"][:, -1].all()  # left padding
    # several images in one prompt, across messages: all of them, in order
    multi = GenerationRequest(messages=[Message(role="user", content="a", images=[small]),
                                        Message(role="assistant", content="ok"),
                                        Message(role="user", content="b", images=[large, small])])
    inputs = llm.encode([multi])
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 8, 8], [1, 4, 4]]
    assert (inputs["input_ids"] == 151655).sum().item() == 24
    assert (inputs["input_ids"] == 151652).sum().item() == 3


def test_image_by_path_equals_image_by_bytes(llm, tmp_path):
    ref = image(84, seed=3)
    path = tmp_path / "x.png"
    path.write_bytes(ref.read_bytes())
    a = llm.encode([request("x", [ref])])["pixel_values"]
    b = llm.encode([request("x", [ImageRef(path=path)])])["pixel_values"]
    assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_batch_of_four_equals_four_single_calls(checkpoints, family):
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    vl = TransformersVLLM(checkpoints[family], dtype="fp32", device="cpu")
    reqs = [request("Which animal eats grass?", [image(56)]),
            request("A much longer prompt about a food web in a lake, with many words in it.", [image(112, 1)]),
            request("No image here.", max_tokens=4),
            request("Two images.", [image(56, 2), image(84, 3)], max_tokens=8)]
    calls = []
    generate = vl.model.generate
    vl.model.generate = lambda **kw: calls.append(kw["input_ids"].shape) or generate(**kw)
    batch = vl.generate_batch(reqs)
    assert len(calls) == 1 and calls[0][0] == 4  # one generate call for the whole batch
    singles = [vl.generate(r) for r in reqs]
    assert [g.text for g in batch] == [g.text for g in singles]
    assert [g.usage for g in batch] == [g.usage for g in singles]
    assert [g.usage.completion_tokens for g in batch] == [6, 6, 4, 8]  # random weights never stop early
    assert all(g.finish_reason == "length" for g in batch)


def test_batches_split_by_size_and_decoding_settings(llm, monkeypatch):
    calls = []
    generate = llm.model.generate
    monkeypatch.setattr(llm.model, "generate", lambda **kw: calls.append(kw) or generate(**kw))
    monkeypatch.setattr(llm, "max_batch_size", 2)
    reqs = [request(f"q{i}", max_tokens=2) for i in range(3)] + [request("s", max_tokens=2, temperature=0.8)]
    out = llm.generate_batch(reqs)
    assert len(out) == 4 and [len(c["input_ids"]) for c in calls] == [2, 1, 1]
    assert [c["do_sample"] for c in calls] == [False, False, True]


def test_sampling_is_seeded(llm):
    a = llm.generate(request("tell me", max_tokens=6, temperature=1.0, seed=7))
    b = llm.generate(request("tell me", max_tokens=6, temperature=1.0, seed=7))
    assert a.text == b.text


def test_lora_adapter_changes_logits_and_unloads(llm, checkpoints, tmp_path):
    peft = require("peft", "vlm")
    from coe.plugins.llm.vl_random import model_class

    base_model = model_class("qwen2_vl").from_pretrained(checkpoints["qwen2_vl"], dtype=torch.float32)
    torch.manual_seed(1)
    lora = peft.get_peft_model(base_model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                           init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    req = request("Which animal eats grass?", [image(56)])
    before = llm.logits(req)
    llm.load_adapter(tmp_path / "adapter")
    try:
        with_adapter = llm.logits(req)
        assert llm.adapter and not torch.allclose(before, with_adapter, atol=1e-4)
    finally:
        llm.unload_adapter()
    assert llm.adapter is None
    assert torch.equal(llm.logits(req), before)
    assert not any("lora" in name for name, _ in llm.model.named_modules())
    with pytest.raises(ConfigError, match="adapter_config.json"):
        llm.load_adapter(tmp_path)


def _reply_with(vl, monkeypatch, text: str):
    """Make the model 'say' ``text`` (the decoding path after generate is the real one)."""
    ids = vl.tokenizer(text, add_special_tokens=False)["input_ids"] + [151645]

    def fake_generate(**kw):
        prompt = kw["input_ids"]
        tail = torch.tensor([ids] * prompt.shape[0])
        return torch.cat([prompt, tail], dim=1)
    monkeypatch.setattr(vl.model, "generate", fake_generate)


def test_json_replies_are_parsed_repaired_and_validated(llm, monkeypatch):
    _reply_with(llm, monkeypatch, '```json\n{"question": "Which animal eats grass?"}\n```')
    gen = llm.generate(request("q", json_schema=SCHEMA, max_tokens=40))
    assert gen.data == {"question": "Which animal eats grass?"} and gen.finish_reason == "stop"
    # cut off after a complete value: closed and accepted
    _reply_with(llm, monkeypatch, '{"question": "Which animal eats grass?", "extra": "and th')
    assert llm.generate(request("q", json_schema=SCHEMA, max_tokens=40)).data == {
        "question": "Which animal eats grass?"}
    # cut off inside the only value, or wrong shape: no data; the caller re-asks
    _reply_with(llm, monkeypatch, '{"question": "Which animal')
    assert llm.generate(request("q", json_schema=SCHEMA, max_tokens=40)).data is None
    _reply_with(llm, monkeypatch, '{"question": 3}')
    assert llm.generate(request("q", json_schema=SCHEMA, max_tokens=40)).data is None


def test_repair_json_keeps_only_complete_values():
    from coe.plugins.llm.reply import parse_and_validate, repair_json

    # a value the token limit cut off is dropped with its key; open arrays and objects are closed
    assert repair_json('{"distractors": ["a", "b", "c') == {"distractors": ["a", "b"]}
    assert repair_json('{"a": 1, "b":') == {"a": 1}
    assert repair_json('{"a": "x", "b": "half a sent') == {"a": "x"}
    assert repair_json('{"a": "x", "b": {"c": "y') == {"a": "x"}  # emptied by the cut: gone too
    # a number at the cut may be the start of a longer one ("2" of "25"): not taken
    assert repair_json('{"a": {"b": [1, 2') == {"a": {"b": [1]}}
    assert repair_json('{"a": {"b": [1, 2], "c": null}, "d": "cu') == {"a": {"b": [1, 2], "c": None}}
    assert repair_json('{"a": "\\u00') is None  # cut inside an escape: nothing complete left
    assert repair_json('{"a": [{}, "x"]}') == {"a": [{}, "x"]}
    assert repair_json("no json") is None
    assert repair_json("[" * 5000) is None  # deeper than the parser goes: no answer, no exception
    schema = {"type": "object", "properties": {"d": {"type": "array", "minItems": 2}}, "required": ["d"]}
    assert parse_and_validate('{"d": ["x", "y"]}', schema) == ({"d": ["x", "y"]}, [])
    assert parse_and_validate('{"d": ["x", "y", "z', schema) == ({"d": ["x", "y"]}, [])
    data, problems = parse_and_validate('{"d": ["x"]}', schema)
    assert data is None and problems
    data, problems = parse_and_validate('{"d": ["x", "y', schema)
    assert data is None and problems


def test_langchain_adapter_drives_the_plugin(llm, monkeypatch):
    from langchain_core.messages import HumanMessage, SystemMessage

    from coe.plugins.llm.langchain_adapter import PluginChatModel

    png = base64.b64encode(image(56).read_bytes()).decode()
    msg = HumanMessage(content=[{"type": "text", "text": "Which animal?"},
                                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}])
    chat = PluginChatModel(plugin=llm, max_tokens=5)
    out = chat.invoke([SystemMessage("be brief"), msg])
    assert isinstance(out.content, str) and out.usage_metadata["output_tokens"] == 5
    assert out.usage_metadata["input_tokens"] > 4  # the image's tokens are part of the prompt
    assert out.response_metadata["model"] == llm.model_id
    _reply_with(llm, monkeypatch, '{"question": "Which animal eats grass?"}')
    out = chat.invoke([msg], json_schema=SCHEMA, max_tokens=40)
    assert out.response_metadata["parsed"] == {"question": "Which animal eats grass?"}


def test_dtype_option_and_registry(checkpoints):
    from coe.plugins import registry
    from coe.plugins.llm.protocol import LLMPlugin

    vl = registry.create("llm", "transformers-vl", model=str(checkpoints["qwen2_5_vl"]), dtype="bf16",
                         device="cpu")
    assert isinstance(vl, LLMPlugin) and vl.supports_images
    assert next(vl.model.parameters()).dtype == torch.bfloat16
    assert vl.model_id == "qwen2_5_vl" and type(vl.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    with pytest.raises(ConfigError, match="unknown dtype"):
        registry.create("llm", "transformers-vl", model=str(checkpoints["qwen2_vl"]), dtype="int3")


def test_4bit_needs_bitsandbytes(checkpoints):
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    import importlib.util
    if importlib.util.find_spec("bitsandbytes") is not None:  # a GPU image: nothing to refuse
        pytest.skip("bitsandbytes is installed: there is no missing-package error to check")
    with pytest.raises(ConfigError, match="bitsandbytes"):
        TransformersVLLM(checkpoints["qwen2_vl"], load_in_4bit=True)


def test_qwen_vl_chat_refuses_without_trust_remote_code(tmp_path):
    from coe.plugins import registry
    from coe.plugins.llm.transformers_vl import QwenVLChatLLM, TransformersVLLM

    with pytest.raises(ConfigError, match="trust_remote_code=True"):
        QwenVLChatLLM(tmp_path)
    with pytest.raises(ConfigError, match="trust_remote_code=True"):
        registry.create("llm", "qwen-vl-chat", model="qwen-vl-chat")
    if transformers.__version__ >= "4.45":  # outside 4.32-4.44: refused even when allowed
        with pytest.raises(ConfigError, match="4.32"):
            QwenVLChatLLM(tmp_path, trust_remote_code=True)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen", "auto_map": {}}))
    with pytest.raises(ConfigError, match="qwen-vl-chat"):
        TransformersVLLM(tmp_path)


@pytest.mark.parametrize("spec", ["qwen2.5-vl-7b", "qwen2-vl-2b", "qwen-vl-chat", "Qwen/Qwen2-VL-2B-Instruct"])
def test_hub_presets_fail_fast_offline(spec, monkeypatch, tmp_path, no_network):
    from coe.modelstore.hub import resolve_vlm
    from coe.modelstore.presets import HUB_PRESETS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="offline") as info:
        resolve_vlm(spec)
    assert "--local-dir DIR" in str(info.value) and "directory" in str(info.value)
    preset = HUB_PRESETS.get(spec)
    assert (preset is None) == ("/" in spec), spec  # a hub id is no preset; every short name is one
    hub_id, role = (spec, "vlm") if preset is None else (preset.hub_id, preset.role)
    assert hub_id in str(info.value) and role == "vlm"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("COE_OFFLINE", "1")
    with pytest.raises(ConfigError, match="offline"):
        resolve_vlm(spec)


def test_local_directories_as_model_specs(checkpoints, monkeypatch, tmp_path):
    import shutil

    from coe.modelstore.hub import resolve_vlm

    assert resolve_vlm(str(checkpoints["qwen2_vl"])) == ("qwen2_vl", checkpoints["qwen2_vl"])
    with pytest.raises(InputError, match="config.json"):
        resolve_vlm(str(tmp_path))
    # a preset's local copy under the models dir is used, offline too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COE_MODELS_DIR", str(tmp_path))
    shutil.copytree(checkpoints["qwen2_vl"], tmp_path / "qwen2-vl-2b")
    assert resolve_vlm("qwen2-vl-2b") == ("qwen2-vl-2b", tmp_path / "qwen2-vl-2b")


def test_prompt_images_reach_pixels(llm):
    """A different image gives different logits: the pixels really reach the model."""
    a = llm.logits(request("What is shown?", [image(56, seed=1)]))
    b = llm.logits(request("What is shown?", [image(56, seed=2)]))
    assert not torch.allclose(a, b)
    assert a.shape[0] == len(llm.tokenizer)


def test_graph_batch_api_makes_one_generate_call_per_stage(llm, monkeypatch, fixture_index):
    """generate_items over the real plugin: the decoding is faked (replies chosen from the prompt), the
    prompts, processor, batching and parsing are the real ones."""
    from coe.graphs import Services, generate_items
    from tests.conftest import FIXTURE
    from tests.test_graph import SINGLE_SHOT, StubReader

    calls = []

    def fake_generate(**kw):
        prompts = llm.tokenizer.batch_decode(kw["input_ids"])
        calls.append(len(prompts))
        rows = []
        for p in prompts:
            task = p.rsplit("</image_text>", 1)[-1]
            if "write the question" in task:
                reply = '{"question": "Which organism is eaten by the fox?"}'
            elif "explain step by step" in task:
                reply = '{"rationale": "The fox eats the rabbit."}'
            else:
                reply = '{"distractors": ["grass", "hawk"]}'
            rows.append(llm.tokenizer(reply, add_special_tokens=False)["input_ids"] + [151645])
        width = max(len(r) for r in rows)
        tail = torch.tensor([r + [llm.tokenizer.pad_token_id] * (width - len(r)) for r in rows])
        return torch.cat([kw["input_ids"], tail], dim=1)

    monkeypatch.setattr(llm.model, "generate", fake_generate)
    items = [{"answer": a, "context": "A food chain in a meadow.", "n_distractors": 2,
              "image_path": str(FIXTURE / "images/test/7/image.png")} for a in ("rabbit", "fox", "owl")]
    services = Services(llm=llm, retriever=fixture_index, image_reader=StubReader())
    out = generate_items(items, services, n_distractors=2, **SINGLE_SHOT)
    assert calls == [3, 3, 3]  # question, rationale, distractors: one generate call each for all items
    assert all(o["valid"] and o["distractors"] == ["grass", "hawk"] for o in out)
    assert out[0]["trace"][2]["messages"][1]["images"] == 1  # the image went to the model


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_graph_decoder_step_equals_generate(checkpoints, family):
    """The static-cache decode step (captured as a CUDA graph on a GPU, run eagerly here) gives generate()'s
    greedy tokens, with and without the repetition penalty, and stops at end-of-sequence the same way."""
    from coe.plugins.llm.graph_decode import GraphDecoder
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    fast = TransformersVLLM(checkpoints[family], dtype="fp32", device="cpu", graph_decode=True)
    slow = TransformersVLLM(checkpoints[family], dtype="fp32", device="cpu", graph_decode=False)
    assert fast.graph_decode and not slow.graph_decode
    for penalty in (1.0, 1.3):
        req = request("Describe the picture in detail.", [image(56, seed=3)], max_tokens=24, repeat_penalty=penalty)
        a, b = fast.generate(req), slow.generate(req)
        assert (a.text, a.usage.completion_tokens, a.finish_reason) == (b.text, b.usage.completion_tokens,
                                                                        b.finish_reason)
    assert fast.graph_decoders, "the fast path was not taken"

    inputs = slow.encode([request("Name a planet.", max_tokens=12)])
    dec = GraphDecoder(slow.model, 128)
    first = dec.generate(inputs, 12, ignore_eos=True)
    stop_at = first[4]  # pretend the fifth token ends the sequence
    assert dec.generate(inputs, 12, eos_token_ids=[stop_at]) == first[:first.index(stop_at) + 1]
    with pytest.raises(ValueError, match="exceed"):
        dec.generate(inputs, 500)


def test_cancel_stops_a_running_generation_and_refuses_calls_until_resumed(checkpoints):
    """What a batch run's Ctrl-C does to the items in flight: the running generate stops after the token it
    is on (not after max_tokens), and later calls raise before touching the model."""
    from coe.plugins.llm.protocol import OptionScoreRequest
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    llm = TransformersVLLM(checkpoints["qwen2_vl"], dtype="fp32", device="cpu", ignore_eos=True)
    forwards = []

    def count(module, args, output):
        forwards.append(1)
        if len(forwards) == 3:
            llm.cancel()

    hook = llm.model.register_forward_hook(count)
    with pytest.raises(KeyboardInterrupt):
        llm.generate_batch([request("tell me", max_tokens=40), request("and me", max_tokens=40)])
    assert 3 <= len(forwards) <= 4
    forwards.clear()
    with pytest.raises(KeyboardInterrupt):
        llm.generate(request("again", max_tokens=40))
    with pytest.raises(KeyboardInterrupt):
        llm.score_options(OptionScoreRequest(messages=request("A or B?").messages, labels=["A", "B"]))
    assert forwards == []
    llm.resume()
    hook.remove()
    assert llm.generate(request("tell me", max_tokens=5)).usage.completion_tokens == 5
