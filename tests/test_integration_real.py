"""End to end with real parts: ScienceQA test images, rapidocr, the default static encoder, Chroma, llama.cpp 0.5B.

Needs the pulled presets (`make test` pulls them) and the ScienceQA folder; nothing is downloaded."""

import json
import os
import subprocess
import sys

import pytest

from coe.agents.validation import normalize, validate_distractors
from coe.paths import scienceqa_dir

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-0.5b-instruct-q4"
CASES = [  # (pid, context, answer): a food web with context, a map without
    ("85", "Below is a food web from Little Rock Lake, a freshwater lake ecosystem in Wisconsin.", "copepod"),
    ("1940", "", "Indiana"),
]
NODES = ["describe_image", "retrieve", "question", "rationale", "distractors", "validate", "verify", "notes"]


@pytest.fixture(scope="session")
def dataset():
    from coe.dataset_loaders import ScienceQA
    if not (scienceqa_dir() / "problems.json").is_file():
        pytest.fail(f"ScienceQA data not found at {scienceqa_dir()} (set COE_SCIENCEQA_DIR)")
    return ScienceQA()


@pytest.fixture(scope="session")
def real_index(tmp_path_factory, dataset):
    """A real Chroma index of a real bank subset: every train/val item sharing a question with the
    cases, plus a fixed slice of others, embedded with the default text embedder."""
    from coe.plugins.registry import resolve
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank

    wanted = {dataset.get(pid).question for pid, _, _ in CASES} | {
        "Which of these organisms contains matter that was once part of the lichen?"}
    bank = default_bank(dataset)
    subset = [e for e in bank if e.question in wanted] + bank[:600:3] + bank[-600::3]
    subset = list({e.id: e for e in subset}.values())
    path = tmp_path_factory.mktemp("chroma")
    store = ChromaStore(path)
    build_index(subset, embedder=resolve("text_embedder"), store=store)
    return path, store, {e.id for e in subset}


def test_template_sibling_is_retrieved(real_index, dataset):
    from coe.plugins.registry import resolve
    from coe.retrieval.retriever import ExemplarRetriever, RetrievalQuery

    _, store, ids = real_index
    item = dataset.get("841")  # test split: "Which of these organisms contains matter ... lichen?"
    retriever = ExemplarRetriever(resolve("text_embedder"), store)
    found, _ = retriever.retrieve(RetrievalQuery(answer=item.answer, question=item.question,
                                                 context=item.hint, image_text=item.caption,
                                                 exclude_splits=["test"]))
    template = "Which of these organisms contains matter that was once part of the"
    assert found and found[0].question.startswith(template)  # a template sibling, not just a food web
    assert all(e.split != "test" and e.id in ids for e in found)
    # question to be generated: siblings still come from context + answer alone
    found, _ = retriever.retrieve(RetrievalQuery(answer=item.answer, context=item.hint,
                                                 image_text=item.caption))
    assert any("contains matter that was once part of" in e.question for e in found)


def _run_cli(args, chroma_dir, timeout=600):
    """The pulled models, but this index and a home of its own: the run's traces and the user's rankers
    (trained on the full index) stay out of it."""
    from coe.modelstore.wordnet import nltk_data_dir
    from coe.paths import models_dir

    env = {**os.environ, "COE_CHROMA_DIR": str(chroma_dir), "HF_HUB_OFFLINE": "1",
           "COE_HOME": str(chroma_dir.parent / "home"), "COE_MODELS_DIR": str(models_dir()),
           "COE_NLTK_DATA": str(nltk_data_dir())}
    return subprocess.run([sys.executable, "-m", "coe.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.mark.parametrize("pid,context,answer", CASES)
def test_cli_json_contract_on_real_test_image(real_index, dataset, pid, context, answer):
    chroma_dir, _, ids = real_index
    image = dataset.get(pid).image_path
    args = ["generate", "--image", str(image), "--answer", answer, "--n-distractors", "3",
            "--model", MODEL, "--json"]
    if context:
        args += ["--context", context]
    proc = _run_cli(args, chroma_dir)
    assert proc.returncode == 0, proc.stderr
    item = json.loads(proc.stdout)
    assert {"question", "answer", "distractors", "rationale", "exemplars", "model", "trace", "status", "reasons",
            "verification", "distractor_notes", "difficulty"} <= set(item)
    assert item["status"] in ("verified", "unconfirmed", "flagged")
    assert set(item["verification"]["option_probs"]) == {answer, *item["distractors"]}
    assert item["verification"]["method"] == "logprobs"  # llama.cpp scores the options from its logits
    assert item["answer"] == answer and item["model"] == MODEL
    assert isinstance(item["question"], str) and len(item["question"]) > 10
    assert isinstance(item["rationale"], str) and item["rationale"]
    assert validate_distractors(item["distractors"], answer, 3).valid
    assert normalize(answer) not in {normalize(d) for d in item["distractors"]}
    assert 1 <= sum(e["in_prompt"] for e in item["exemplars"]) <= 4 and len(item["exemplars"]) <= 10
    for ex in item["exemplars"]:
        assert {"id", "score", "question", "answer"} <= set(ex) and ex["id"] in ids
        assert dataset.get(ex["id"]).split in ("train", "val")
    nodes = [t["node"] for t in item["trace"]]
    assert nodes[:5] == NODES[:5] and nodes[-2:] == ["verify", "notes"] and "validate" in nodes
    assert all(isinstance(t["seconds"], (int, float)) and t["seconds"] >= 0 for t in item["trace"])
    described = item["trace"][0]["output"]
    assert described["scienceqa_pid"] == pid and described["caption"]


def test_cli_human_output(real_index, dataset):
    chroma_dir, _, _ = real_index
    pid, context, answer = CASES[0]
    proc = _run_cli(["generate", "--image", str(dataset.get(pid).image_path), "--context", context,
                     "--answer", answer, "--question", "Which organism is a primary consumer in this food web?",
                     "--n-distractors", "2", "--model", MODEL], chroma_dir)
    assert proc.returncode == 0, proc.stderr
    assert "Which organism is a primary consumer in this food web?" in proc.stdout
    assert "(correct)" in proc.stdout and "Trace" in proc.stdout and "Exemplars" in proc.stdout
    assert any(word in proc.stdout for word in ("Verified", "Unconfirmed", "Flagged"))
