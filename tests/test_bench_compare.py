"""``coe bench --compare REF``: a reference arm and the current one, each a process importing its own tree."""

import json
import subprocess
import sys

import pytest

from coe.errors import InputError
from coe.eval import compare
from coe.eval.compare_worker import step_tokens
from tests.conftest import FIXTURE


def test_settings_ref_parses_graph_settings_and_environment():
    assert compare.parse_settings("write_notes=true, k=2,COE_IMAGE_EMBEDDER=open-clip,difficulty=hard") == (
        {"write_notes": True, "k": 2, "difficulty": "hard"}, {"COE_IMAGE_EMBEDDER": "open-clip"})
    with pytest.raises(InputError, match="unknown setting 'notes'"):
        compare.parse_settings("notes=true")
    with pytest.raises(InputError, match="--compare: setting k=.many.: Input should be a valid integer"):
        compare.parse_settings("k=many")


def test_a_ref_that_is_neither_a_commit_nor_settings_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "coe.cli", "bench", "--models", "", "--compare", "no-such-commit-x",
                           "--data", str(FIXTURE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "neither a git commit here nor KEY=VALUE" in proc.stderr


def test_step_tokens_reads_usage_and_the_steps_own_tally():
    entry = {"node": "question", "seconds": 3.0,
             "calls": [{"usage": {"prompt_tokens": 800, "prompt_tokens_reused": 0, "completion_tokens": 20}},
                       {"usage": {"prompt_tokens": 810, "prompt_tokens_reused": 790, "completion_tokens": 30}}],
             "prompt_tokens_evaluated": 40, "prompt_tokens_reused": 1570}
    assert step_tokens(entry) == {"prompt_tokens": 1610, "prompt_tokens_reused": 1570, "completion_tokens": 50,
                                  "prompt_tokens_evaluated": 40}
    # a verification entry: its scoring prompt tokens beside its calls
    assert step_tokens({"node": "verify", "calls": 4, "prompt_tokens": 900}) == {"prompt_tokens": 900}


def test_summaries_and_ratio_are_reference_over_current():
    answers = [{"seconds": 2.0, "steps": {"question": 1.5, "verify": 0.5}, "failed": "",
                "tokens": {"question": {"prompt_tokens": 800}}, "llama_perf": {"prompt_ms": 1000.0, "prompt_n": 500,
                                                                            "decode_ms": 500.0, "decode_n": 10}},
               {"seconds": 4.0, "steps": {"question": 3.5}, "failed": "boom", "tokens": {}, "llama_perf": None}]
    cur = compare.summarise("items", answers)
    assert cur["seconds_per_item"] == 3.0 and cur["failed"] == 1
    assert cur["step_seconds"] == {"question": 2.5, "verify": 0.25}
    assert cur["llama"]["decode_tokens_per_s"] == 20.0 and cur["llama"]["prompt_tokens_per_s"] == 500.0
    ref = compare.summarise("items", [dict(a, seconds=a["seconds"] * 3) for a in answers])
    assert compare.ratios("items", ref, cur)["seconds_per_item"] == 3.0
    lat = compare.summarise("retrieval", [{"seconds": s / 1000} for s in (1, 2, 3, 4, 100)])
    assert lat["p50_ms"] == pytest.approx(3.0) and lat["p95_ms"] > 50


@pytest.mark.slow
def test_retrieval_compare_runs_the_commit_and_the_working_tree(tmp_path, fixture_dataset, monkeypatch):
    """HEAD exported into a folder and this working tree, each in its own process, on a MiniLM-embedded
    fixture index: every query timed in both, and each arm imported coe from its own tree."""
    from coe.modelstore import is_pulled
    from coe.plugins.embed.minilm_onnx import MiniLMOnnxEmbedder
    from coe.plugins.store.chroma import ChromaStore
    from coe.retrieval.index import build_index, default_bank

    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    build_index(default_bank(fixture_dataset), embedder=MiniLMOnnxEmbedder(), store=ChromaStore(tmp_path / "chroma"))
    # both arms read the index with the encoder it was built with, whatever their own default
    env = {"COE_CHROMA_DIR": str(tmp_path / "chroma"), "COE_SCIENCEQA_DIR": str(FIXTURE),
           "COE_TEXT_EMBEDDER": "minilm-onnx"}
    queries = [{"answer": "rabbit", "question": "Which animal eats the plant?", "context": "food chain"},
               {"answer": "milk", "question": "Which of these is a liquid?", "exclude_ids": ["5"]},
               {"answer": "yes", "context": "a picture of two objects"}]
    out = compare.compare("HEAD", mode="retrieval", requests=queries, env=env)
    ref, cur = out["arms"]
    assert out["n"] == 3 and ref["label"].startswith("HEAD (") and cur["label"].startswith("current (HEAD ")
    assert not ref["coe"].startswith(str(compare.ROOT)) and cur["coe"].startswith(str(compare.ROOT))
    for arm in (ref, cur):
        assert 0 < arm["p50_ms"] <= arm["p95_ms"]
    assert out["ratio"]["p50_ms"] == pytest.approx(ref["p50_ms"] / cur["p50_ms"])
    json.dumps(out)  # what --json prints
