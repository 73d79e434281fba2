"""Fine-tuning: records rendered as the graph prompts, and LoRA training of a tiny random Qwen2-VL (CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coe.finetune.records import _item_input, build_records, read_dataset, write_dataset

from tests.test_graph import SINGLE_SHOT
from tests.tiers import require

pytestmark = pytest.mark.vlm
torch = require("torch", "vlm")
require("peft", "vlm")


class _Described:
    def __init__(self, text):
        self.text = text

    def as_prompt_text(self):
        return self.text

    def model_dump(self, **_):
        return {"text": self.text}


class _DatasetReader:
    """Describes an image with the dataset's caption text, as the records do."""

    name = "dataset-caption"

    def __init__(self, text):
        self.text = text

    def describe(self, image, source_path=None):
        return _Described(self.text)


def test_records_are_the_prompts_the_graph_sends(fixture_dataset, fixture_index):
    from coe.graphs import graph
    from coe.graphs.services import Services
    from tests.scripted_llm import ScriptedLLM

    records = build_records(fixture_dataset, fixture_index, split="train")
    by_id = {r.id: r for r in records}
    for pid in ("1", "2"):  # without and with an image file
        p = fixture_dataset.get(pid)
        rec = {s: by_id[f"{pid}:{s}"] for s in ("qg", "rg", "dg")}
        gold = {"question": p.question, "rationale": " ".join(p.rationale.split()),
                "distractors": list(p.distractors)}
        replies = [{"question": gold["question"]}, {"rationale": gold["rationale"]},
                   {"distractors": gold["distractors"]}]
        llm = ScriptedLLM(replies)
        item = _item_input(p)
        state = {"answer": p.answer, "context": item.context, "image_text": item.image_text,
                 "image_path": str(p.image_path) if item.images else None, "exclude_ids": [pid],
                 "n_distractors": len(p.distractors), "trace": []}
        services = Services(llm=llm, retriever=fixture_index, image_reader=_DatasetReader(item.image_text))
        # the records mirror the generation prompts: the single-shot path (no verification, model's choice)
        graph.invoke(state, config={"configurable": {"exclude_splits": ["val", "test"], **SINGLE_SHOT,
                                                     "n_distractors": len(p.distractors)}}, context=services)
        assert len(llm.requests) == 3
        for request, stage in zip(llm.requests, ("qg", "rg", "dg")):
            sent = [(m.role, m.content, [str(i.path) for i in m.images]) for m in request.messages]
            recorded = [(m["role"], "".join(c.get("text", "") for c in m["content"]),
                         [c["image"] for c in m["content"] if c["type"] == "image"])
                        for m in rec[stage].messages[:-1]]
            assert recorded == sent, stage
        assert json.loads(rec["dg"].messages[-1]["content"][0]["text"]) == {"distractors": gold["distractors"]}
    assert by_id["2:qg"].images and by_id["2:qg"].images[0].endswith("images/train/2/image.png")
    assert by_id["1:qg"].images == []


def test_records_draw_on_train_exemplars_only_never_the_item(fixture_dataset, fixture_index):
    records = build_records(fixture_dataset, fixture_index, split="train")
    train = {p.pid for p in fixture_dataset.split("train")}
    assert records and {r.pid for r in records} <= train
    assert sum(bool(r.exemplar_ids) for r in records) >= len(records) // 2
    for r in records:
        assert r.pid not in r.exemplar_ids
        assert set(r.exemplar_ids) <= train
    stages = {r.id.split(":")[1] for r in records if r.pid == "4"}
    assert stages == {"qg", "dg"}  # pid 4 has no lecture or solution: no rationale record


def test_dataset_round_trip_and_bad_files(tmp_path, fixture_dataset, fixture_index):
    from coe.errors import InputError

    records = build_records(fixture_dataset, fixture_index, split="train", stages=["qg"])
    write_dataset(records, tmp_path / "d", {"split": "train"})
    assert [r.id for r in read_dataset(tmp_path / "d")] == [r.id for r in records]
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["format"] == "coe-sft"
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(InputError, match="bad.jsonl:1"):
        read_dataset(tmp_path / "bad.jsonl")
    with pytest.raises(InputError, match="finetune prepare"):
        read_dataset(tmp_path / "missing")
    with pytest.raises(InputError, match="unknown stage"):
        build_records(fixture_dataset, fixture_index, stages=["xx"])


def test_prepare_cli_rejects_bad_stage_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "coe.cli", "finetune", "prepare", "--out", str(tmp_path / "o"),
                           "--stages", "qg,nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--stages" in proc.stderr
    assert not (tmp_path / "o").exists()


# --- training on a tiny random Qwen2-VL -----------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path, fixture_dataset, fixture_index, qwen_tokenizer):
    records = build_records(fixture_dataset, fixture_index, split="train", k=1)
    return write_dataset(records, tmp_path / "data", {"split": "train"}).parent


def _config(base, data, out, **kw):
    from coe.finetune.train import TrainConfig

    defaults = dict(base=str(base), data=str(data), out=str(out), grad_accum=1, lr=5e-3, logging_steps=1,
                    save_steps=2, max_steps=2, max_length=1024, device="cpu", warmup_ratio=0.0,
                    scheduler="constant", lora_r=8, lora_alpha=16, lora_dropout=0.0)
    return TrainConfig(**{**defaults, **kw})


def test_labels_mask_the_prompt_and_loss_counts_only_the_answer(checkpoints, data_dir):
    from coe.finetune.encode import IGNORE, collate, encode_record
    from coe.finetune.train import load_for_training

    model, processor, _ = load_for_training(_config(checkpoints["qwen2_vl"], data_dir, data_dir / "o"))
    rec = next(r for r in read_dataset(data_dir) if r.images)  # with an image
    enc = encode_record(processor, rec)
    labels, ids = enc["labels"][0], enc["input_ids"][0]
    target = processor.tokenizer(rec.messages[-1]["content"][0]["text"] + "<|im_end|>",
                                 add_special_tokens=False)["input_ids"]
    n = len(target)
    assert labels[-n:].tolist() == target == ids[-n:].tolist()
    assert (labels[:-n] == IGNORE).all()
    assert (ids == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum() > 0
    batch = collate([enc], processor.tokenizer.pad_token_id)
    model.eval()
    with torch.no_grad():
        out = model(**batch)
        logits = out.logits[0, :-1].float()
        # Position t predicts token t+1: the answer's n tokens are predicted by the n positions before them.
        manual = torch.nn.functional.cross_entropy(logits[-n:], ids[-n:])
        assert torch.allclose(out.loss.float(), manual, atol=1e-4)


def test_training_lowers_loss_changes_only_lora_and_round_trips(checkpoints, data_dir, tmp_path):
    from coe.finetune.encode import SFTDataset
    from coe.finetune.records import Record, write_dataset
    from coe.finetune.train import load_for_training, make_trainer
    from coe.plugins.llm.protocol import GenerationRequest, Message
    from coe.plugins.llm.transformers_vl import TransformersVLLM

    one = [r for r in read_dataset(data_dir) if r.stage == "qg"][:1]
    repeated = write_dataset([Record(**{**one[0].model_dump(), "id": f"r{i}"}) for i in range(8)],
                             tmp_path / "rep", {}).parent
    cfg = _config(checkpoints["qwen2_vl"], repeated, tmp_path / "run", max_steps=8, save_steps=100)
    model, processor, _ = load_for_training(cfg)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer = make_trainer(model, processor, SFTDataset(read_dataset(repeated), processor), cfg, echo=lambda m: None)
    trainer.train()
    losses = trainer.coe_progress.losses
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.3 and max(losses[4:]) < min(losses[:4]), losses
    changed = {k for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)
    assert not any("visual" in k for k, p in model.named_parameters() if p.requires_grad)

    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    request = GenerationRequest(messages=[Message(role="system", content="You write quiz questions."),
                                          Message(role="user", content="Write one question about magnets.")],
                                max_tokens=5)
    loaded = TransformersVLLM(adapter, dtype="fp32", device="cpu")  # the adapter directory alone
    assert loaded.adapter == str(adapter) and "+adapter-" in loaded.model_id
    model.eval()
    with torch.no_grad():
        expected = model(**loaded.encode([request])).logits[0, -1].float()
    assert torch.allclose(loaded.logits(request), expected, atol=1e-4)
    base = TransformersVLLM(checkpoints["qwen2_vl"], dtype="fp32", device="cpu")
    assert not torch.allclose(base.logits(request), expected, atol=1e-3)
    assert loaded.generate(request).usage.completion_tokens > 0

    merged = loaded.save_merged(tmp_path / "merged")
    standalone = TransformersVLLM(merged, dtype="fp32", device="cpu")
    assert standalone.adapter is None
    assert torch.allclose(standalone.logits(request), expected, atol=1e-4)


def test_train_resumes_and_continues_the_step_count(checkpoints, data_dir, tmp_path):
    from coe.finetune.train import train

    out = tmp_path / "run"
    first = train(_config(checkpoints["qwen2_vl"], data_dir, out, max_steps=2))
    assert first["global_step"] == 2 and first["resumed_from"] is None
    assert (out / "checkpoint-2").is_dir() and (out / "adapter" / "adapter_config.json").is_file()
    second = train(_config(checkpoints["qwen2_vl"], data_dir, out, max_steps=4))
    assert second["resumed_from"].endswith("checkpoint-2")
    assert second["global_step"] == 4
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4]
    conf = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == str(checkpoints["qwen2_vl"])
    assert conf["r"] == 8 and conf["lora_alpha"] == 16


def test_transformers_model_spec_loads_an_adapter(checkpoints, data_dir, tmp_path):
    from coe.finetune.train import train
    from coe.graphs.services import default_llm

    summary = train(_config(checkpoints["qwen2_vl"], data_dir, tmp_path / "run", max_steps=1))
    llm = default_llm(f"transformers:{summary['adapter']}")
    assert llm.adapter == summary["adapter"] and llm.model_id.startswith("qwen2_vl+adapter-")


def test_qlora_needs_a_gpu(checkpoints, data_dir, tmp_path):
    from coe.errors import ConfigError
    from coe.finetune.train import load_for_training

    with pytest.raises(ConfigError, match="CUDA"):
        load_for_training(_config(checkpoints["qwen2_vl"], data_dir, tmp_path / "o", method="qlora"))


def test_compile_option_compiles_language_layers_only(checkpoints, data_dir, tmp_path):
    from coe.finetune.train import load_for_training

    model, _, _ = load_for_training(_config(checkpoints["qwen2_vl"], data_dir, tmp_path / "o", compile=True))
    compiled = [name for name, m in model.named_modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert compiled and all("language_model.layers." in n for n in compiled)
    assert len(compiled) == model.config.text_config.num_hidden_layers
