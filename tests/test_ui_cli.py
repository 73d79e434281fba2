"""``coe ui``: starts Streamlit on loopback, or says in one line that it is not installed."""

import os
import sys
from pathlib import Path

import pytest

from coe import cli


def test_ui_runs_streamlit_on_loopback(monkeypatch):
    import subprocess

    from tests.tiers import require
    require("streamlit", "real_parts")

    seen = {}
    monkeypatch.setattr(os, "execv", lambda exe, cmd: seen.setdefault("cmd", cmd))
    monkeypatch.setattr(subprocess, "call", lambda cmd: seen.setdefault("cmd", cmd) and 0)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ui", "--port", "8765", "--headless"])
    assert exit_info.value.code == 0
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]).name == "app.py" and Path(cmd[4]).is_file()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[cmd.index("--server.headless") + 1] == "true"


def test_ui_without_streamlit_is_one_clear_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ui"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "coe: error: the console needs streamlit: pip install 'coe[ui]'"
