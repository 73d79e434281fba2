"""Bad input: one clear line on stderr and exit 2, before any model is loaded.

The command line runs in this process (``coe.cli.main``, what the ``coe`` script calls), with the model
loading replaced by a tripwire; only what needs a process of its own (argv bytes) starts one."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from tests.conftest import FIXTURE

GOOD_IMAGE = str(FIXTURE / "images/test/7/image.png")


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``coe ARGS`` in this process: its exit code, stdout and stderr."""
    import coe.graphs.services as services
    from coe.cli import main

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for bad input")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))

    def run(args, *, models=False):
        capsys.readouterr()
        with monkeypatch.context() as patch, pytest.raises(SystemExit) as ended:
            if not models:
                patch.setattr(services, "default_services", no_model)
            main(args)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=ended.value.code, stdout=out, stderr=err)
    return run


def one_line_exit2(proc, needle):
    err = proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr
    assert proc.returncode == 2, (proc.returncode, err)
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    assert not proc.stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad files, made once: the huge picture alone takes a while to write."""
    tmp_path = tmp_path_factory.mktemp("bad-input")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    corrupt = tmp_path / "corrupt.png"
    Image.new("RGB", (64, 64), "white").save(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:60])
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)
    latin1 = tmp_path / "ctx.txt"
    latin1.write_bytes("caf\xe9 au lait".encode("latin-1"))
    return {"text": text, "corrupt": corrupt, "huge": huge, "latin1": latin1, "dir": tmp_path}


@pytest.mark.parametrize("case,needle", [
    ("missing", "image not found"),
    ("dir", "directory"),
    ("text", "not a readable image"),
    ("corrupt", "not a readable image"),
    ("huge", "too large"),
    ("empty_answer", "answer is empty"),
    ("long_context", "context"),
    ("latin1", "not UTF-8"),
    ("n_zero", "--n-distractors"),
    ("no_answer", "--answer"),
    ("bad_choose", "--choose must be auto, rankers, model"),
])
def test_bad_input(cli, files, case, needle):
    base = ["generate", "--answer", "fox", "--image", GOOD_IMAGE]
    args = {
        "missing": ["generate", "--answer", "fox", "--image", str(files["dir"] / "nope.png")],
        "dir": ["generate", "--answer", "fox", "--image", str(files["dir"])],
        "text": ["generate", "--answer", "fox", "--image", str(files["text"])],
        "corrupt": ["generate", "--answer", "fox", "--image", str(files["corrupt"])],
        "huge": ["generate", "--answer", "fox", "--image", str(files["huge"])],
        "empty_answer": ["generate", "--answer", "   ", "--image", GOOD_IMAGE],
        "long_context": base + ["--context", "x" * 5000],
        "latin1": base + ["--context-file", str(files["latin1"])],
        "n_zero": base + ["--n-distractors", "0"],
        "no_answer": ["generate", "--image", GOOD_IMAGE],
        "bad_choose": base + ["--choose", "learnt"],
    }[case]
    one_line_exit2(cli(args), needle)


def test_non_utf8_argument_is_rejected():
    """Bytes that are not UTF-8 on the command line: only a process of its own receives them as argv."""
    proc = subprocess.run([sys.executable, "-m", "coe.cli", b"generate", b"--answer", b"caf\xe9", b"--image",
                           GOOD_IMAGE.encode()], capture_output=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    one_line_exit2(proc, "UTF-8")


@pytest.mark.real_parts
def test_missing_index_is_a_clear_error(tmp_path):
    from coe.modelstore import is_pulled
    if not is_pulled("qwen2.5-coder-0.5b-instruct-q4"):
        pytest.fail("run `coe models pull qwen2.5-coder-0.5b-instruct-q4` first (make test does)")
    env_home = tmp_path / "home"
    from coe.paths import models_dir
    models = str(models_dir())
    proc = subprocess.run([sys.executable, "-m", "coe.cli", "generate", "--answer", "fox", "--image", GOOD_IMAGE,
                           "--model", "qwen2.5-coder-0.5b-instruct-q4"], capture_output=True, timeout=120,
                          env={**os.environ, "COE_HOME": str(env_home), "COE_MODELS_DIR": models})
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "coe index build" in err and len(err.strip().splitlines()) == 1


def test_hub_id_offline_fails_fast(cli):
    # the model loading runs: it refuses the hub id while resolving it, before any download
    proc = cli(["generate", "--answer", "fox", "--image", GOOD_IMAGE, "--model", "Qwen/Qwen2-VL-2B-Instruct"],
               models=True)
    assert proc.returncode == 1 and "offline" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
