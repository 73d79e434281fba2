"""``coe eval --compare REF``: a commit's own evaluation, in its own process, home and cache, scored here and
paired item by item with the current code's."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURE


def _coe(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "coe.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_compare_takes_a_commit_not_settings(tmp_path):
    env = {**os.environ, "COE_HOME": str(tmp_path)}
    proc = _coe(["eval", "--task", "dg", "--variant", "copy", "--compare", "k=2", "--data", str(FIXTURE)], env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--compare takes a git commit" in proc.stderr


@pytest.mark.slow
def test_head_compared_with_the_working_tree_pairs_the_same_items(tmp_path):
    """HEAD's copy variant and the current one on the same index content and encoder make the same
    predictions: every paired difference is exactly zero, on every item of both tasks; the reference kept
    its own index and predictions under COE_HOME/eval-compare."""
    from coe.modelstore import is_pulled
    from coe.paths import models_dir

    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    env = {**os.environ, "COE_HOME": str(tmp_path / "home"), "COE_MODELS_DIR": str(models_dir()),
           "COE_TEXT_EMBEDDER": "minilm-onnx", "COE_SCIENCEQA_DIR": str(FIXTURE), "HF_HUB_OFFLINE": "1"}
    for name in ("COE_CHROMA_DIR", "COE_CHROMA_URL", "COE_EVAL_CACHE"):
        env.pop(name, None)
    built = _coe(["index", "build", "--no-rankers"], env)
    assert built.returncode == 0, built.stderr[-2000:]
    args = ["eval", "--task", "qg,dg", "--variant", "copy", "--compare", "HEAD", "--seed", "5", "--json",
            "--resamples", "200"]
    proc = _coe(args, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    cmp = out["meta"]["compare"]
    assert cmp["ref"] == "HEAD" and cmp["labels"][0].startswith("HEAD (")
    runs = {(r["task"], r["variant"]): r for r in out["runs"]}
    assert set(runs) == {("qg", "copy"), ("dg", "copy"), ("qg", "HEAD/copy"), ("dg", "HEAD/copy")}
    assert [line.split("`")[1:4] for line in cmp["paired"]] == [["copy", " − ", "HEAD/copy"]] * 2
    for line in cmp["paired"]:
        assert "on the same 2 items" in line
        for part in line.split(": ", 1)[1].rstrip(".").split("; "):
            assert part.split(" ", 1)[1] == "+0.000 [+0.000, +0.000]", line
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                         cwd=FIXTURE.parent.parent.parent).stdout.strip()
    ref_home = tmp_path / "home" / "eval-compare" / sha[:12]
    assert (ref_home / "tree" / "pyproject.toml").is_file()
    assert len(list((ref_home / "home" / "eval-cache" / "dg").glob("copy*/*.json"))) == 2
    # a second run reads the reference's cached predictions and scores them alike, into the report too
    again = _coe([*args, "--report", str(tmp_path / "report")], env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["meta"]["compare"]["paired"] == cmp["paired"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert all(line in report for line in cmp["paired"])
