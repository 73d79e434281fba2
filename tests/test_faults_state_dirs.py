"""A state folder coe cannot write (run history, exemplar index, eval cache, model store, uploads) is one
line naming the folder and what to do, with a non-zero exit, never an internal error from deep inside.

Two real ways a folder cannot be written, both refused by the kernel: a read-only folder (chmod 0555 for
a normal user; root ignores permission bits, so for root a folder under sysfs, which refuses new entries to
everyone), and a regular file standing where the folder should be."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import FIXTURE, GGUF_PRESET

IMAGE = str(FIXTURE / "images/test/7/image.png")


@pytest.fixture(params=["read-only", "file-in-the-way"])
def blocked(request, tmp_path):
    """A folder path under which nothing can be created."""
    if request.param == "file-in-the-way":
        blocker = tmp_path / "state"
        blocker.write_text("a file, not a folder")
        parent = blocker
    elif os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o555)
        request.addfinalizer(lambda: parent.chmod(0o755))
    else:
        parent = Path("/sys/kernel")
    with pytest.raises(OSError):  # the premise: the kernel really refuses
        (parent / "probe").mkdir()
    return parent


@pytest.fixture
def coe(capsys, monkeypatch):
    """Run ``coe ARGS`` in this process (``coe.cli.main``) with the given environment: exit code and stderr.
    The process keeps one set of services per model and banks; an earlier test's (built under another
    environment, or by the loading thread of a model that then failed) must not answer for this one."""
    from coe.cli import main
    from coe.graphs import services

    services._default_services.cache_clear()
    services._retrieval_services.cache_clear()

    def run(args, **env):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            main(args)
        return SimpleNamespace(returncode=ended.value.code, stderr=capsys.readouterr().err)
    return run


def one_clear_line(proc, what: str, folder: Path, variable: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("coe: error: ") and "internal error" not in line, line
    assert f"cannot write to the {what} directory {folder} " in line, line
    assert variable in line and "writable" in line, line


def test_history_of_generate(coe, blocked, tmp_path):
    home = blocked / "home"
    proc = coe(["generate", "--answer", "fox", "--image", IMAGE], COE_HOME=home)
    one_clear_line(proc, "run history", home / "traces", "COE_HOME")


@pytest.mark.real_parts
def test_index_of_generate(coe, blocked, tmp_path):
    from coe.modelstore import is_pulled
    from coe.paths import models_dir
    if not is_pulled(GGUF_PRESET):
        pytest.fail(f"needs the {GGUF_PRESET} model (coe models pull {GGUF_PRESET})")
    chroma = blocked / "chroma"
    proc = coe(["generate", "--answer", "fox", "--image", IMAGE, "--model", GGUF_PRESET],
               COE_HOME=tmp_path / "home", COE_MODELS_DIR=models_dir(), COE_CHROMA_DIR=chroma)
    one_clear_line(proc, "exemplar index", chroma, "COE_CHROMA_DIR")


def test_index_build(coe, blocked, tmp_path):
    home = blocked / "home"
    proc = coe(["index", "build", "--data", str(FIXTURE)], COE_HOME=home)
    one_clear_line(proc, "exemplar index", home / "chroma", "COE_CHROMA_DIR")


def test_eval_cache(coe, blocked, tmp_path):
    cache = blocked / "eval-cache"
    proc = coe(["eval", "--task", "dg", "--variant", "copy", "--limit", "1", "--data", str(FIXTURE)],
               COE_HOME=tmp_path / "home", COE_EVAL_CACHE=cache)
    one_clear_line(proc, "eval cache", cache, "COE_EVAL_CACHE")


def test_model_store(coe, blocked):
    models = blocked / "models"
    proc = coe(["models", "pull", "minilm-l6-v2-int8"], COE_MODELS_DIR=models)
    one_clear_line(proc, "model store", models, "COE_MODELS_DIR")


def test_console_upload_names_the_folder(blocked, monkeypatch):
    from coe.errors import ConfigError
    from coe.ui.uploads import save_upload

    monkeypatch.setenv("COE_HOME", str(blocked / "home"))
    with pytest.raises(ConfigError, match=r"cannot write to the uploads directory .*home/uploads .*COE_HOME"):
        save_upload("diagram.png", Path(IMAGE).read_bytes())
