"""An ``openai:`` server that cannot be reached is reported first, in one line naming its URL: before the
image is read, the exemplar index opened or any graph step run."""

import os
import socket
import subprocess
import sys
import time

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


def test_cli_fails_at_once_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    env = {**os.environ, "COE_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "COE_SCIENCEQA_DIR": str(FIXTURE)}
    env.pop("COE_CHROMA_DIR", None)
    env.pop("COE_CHROMA_URL", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "coe.cli", "generate", "--model", f"openai:qwen@{url}",
                           "--image", str(FIXTURE / "images/test/7/image.png"), "--answer", "fox"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"coe: error: cannot reach OpenAI-compatible server at {url}: ")
    assert proc.stdout == ""
    assert time.monotonic() - start < 30
