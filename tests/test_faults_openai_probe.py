"""An ``openai:`` server that cannot be reached is reported first, in one line naming its URL: before the
image is read or any graph step run, and before anything the exemplar index (loaded beside the model) has
to say."""

import socket

import pytest

from tests.conftest import FIXTURE


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_services_probe_the_server_before_the_index(tmp_path, monkeypatch):
    from coe.errors import ConfigError
    from coe.graphs.services import default_services

    url = f"http://127.0.0.1:{closed_port()}/v1"
    monkeypatch.setenv("COE_HOME", str(tmp_path))  # no index here: a later check would say so instead
    with pytest.raises(ConfigError, match=f"^cannot reach OpenAI-compatible server at {url}: "):
        default_services(f"openai:qwen@{url}")


def test_cli_fails_at_once_naming_the_url(tmp_path, monkeypatch, capsys):
    from coe.cli import main

    url = f"http://127.0.0.1:{closed_port()}/v1"
    for name, value in {"COE_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "COE_SCIENCEQA_DIR": str(FIXTURE)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("COE_CHROMA_DIR", raising=False)
    monkeypatch.delenv("COE_CHROMA_URL", raising=False)
    with pytest.raises(SystemExit) as ended:
        main(["generate", "--model", f"openai:qwen@{url}", "--image", str(FIXTURE / "images/test/7/image.png"),
              "--answer", "fox"])
    printed = capsys.readouterr()
    assert ended.value.code == 1, printed.err
    lines = printed.err.strip().splitlines()
    # the first thing reported: no index, image or graph step came before it (COE_HOME holds no index)
    assert len(lines) == 1 and lines[0].startswith(f"coe: error: cannot reach OpenAI-compatible server at {url}: ")
    assert printed.out == ""
