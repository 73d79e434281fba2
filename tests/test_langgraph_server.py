"""`langgraph dev` serves the graph from langgraph.json: schemas load, and an item runs through the SDK."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.tiers import require

pytestmark = pytest.mark.real_parts
require("langgraph_cli", "real_parts")
sdk = require("langgraph_sdk", "real_parts")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "COE_SERVICES": "tests.ui_support:services", "PYTHONPATH": str(ROOT),
           "COE_HOME": str(tmp_path_factory.mktemp("home")), "LANGSMITH_TRACING": "false",
           "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path_factory.mktemp("log") / "langgraph-dev.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "langgraph"), "dev", "--no-browser", "--no-reload",
                             "--allow-blocking", "--host", "127.0.0.1", "--port", str(port),
                             "--config", str(ROOT / "langgraph.json")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/ok", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"langgraph dev did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(1)
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_the_server_publishes_the_graph_schemas(server):
    client = sdk.get_sync_client(url=server)
    [assistant] = client.assistants.search(graph_id="coe")
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    assert {"answer", "context", "image_path", "question_given"} <= set(schemas["input_schema"]["properties"])
    assert {"question", "distractors", "status", "verification"} <= set(schemas["output_schema"]["properties"])
    # the settings are the run context: LangGraph Studio renders them as a form
    assert {"difficulty", "seed", "verify", "n_distractors"} <= set(schemas["context_schema"]["properties"])


def test_an_item_runs_through_the_sdk_with_its_settings(server):
    client = sdk.get_sync_client(url=server)
    item = {"answer": "rabbit", "context": "A meadow food chain: grass, rabbit, fox.", "n_distractors": 2}
    out = client.runs.wait(None, "coe", input=item, context={"n_distractors": 2, "difficulty": "hard"})
    assert len(out["distractors"]) == 2 and out["status"] in ("verified", "unconfirmed", "flagged")
    assert [t["node"] for t in out["trace"]][-2:] == ["verify", "notes"]
    assert out["trace"][0]["settings"]["difficulty"] == "hard"  # what the graph ran with
    # a setting in the context reaches the nodes
    off = client.runs.wait(None, "coe", input=item, context={"n_distractors": 2, "verify": False, "write_notes": False})
    assert off["status"] == "unverified" and off["distractor_notes"] == []
