"""The console in a real browser: upload → generate → open a trace step → regenerate distractors.

Streamlit serves the app on loopback with the scripted backend; Debian's Chromium (installed by
``make test``) is driven by Playwright. The final page is saved as ``out/ui-screenshot.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import coe.ui
import pytest

from tests.conftest import FIXTURE
from tests.tiers import require, require_file

ROOT = Path(__file__).resolve().parent.parent
APP = Path(coe.ui.__file__).resolve().parent / "app.py"
CHROMIUM = Path(os.environ.get("COE_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = ROOT / "out" / "ui-screenshot.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser
playwright_api = require("playwright.sync_api", "browser")
require("streamlit", "browser")
require_file(CHROMIUM, "browser", "`make test` installs Debian's chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "COE_SERVICES": "tests.ui_support:services", "COE_HOME": str(tmp_path / "home"),
           "COE_SCIENCEQA_DIR": str(FIXTURE), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_upload_generate_trace_regenerate_in_a_browser(server, tmp_path, record_property):
    expect = playwright_api.expect
    expect.set_options(timeout=60_000)  # generous: the machine may be busy with other work
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 3400})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            page.goto(server)
            expect(page.get_by_role("heading", name="coe review console")).to_be_visible()

            # upload a diagram and ask for an item
            page.locator('input[type="file"]').set_input_files(str(FIXTURE / "images/test/7/image.png"))
            expect(page.get_by_text("image.png").first).to_be_visible()
            context_box = page.get_by_label("Context")
            context_box.fill("This is a food chain from a meadow.")
            answer = page.get_by_label("Answer", exact=True)
            answer.fill("rabbit")
            answer.press("Enter")
            # A click that lands while the rerun from Enter is in flight can be dropped by Streamlit: click
            # again until the first graph step reports.
            for attempt in range(3):
                page.get_by_role("button", name="Generate", exact=True).click()
                try:
                    expect(page.get_by_text("describe_image · ", exact=False).first).to_be_visible(timeout=15_000)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise

            # every node reports a status, then the item waits for review
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()
            for node in ("describe_image", "retrieve", "question", "rationale", "distractors", "validate", "verify",
                         "notes"):
                expect(page.get_by_text(f"{node} · ", exact=False).first).to_be_visible()
            expect(page.get_by_text("Verified by a student model", exact=False).first).to_be_visible()
            first = [page.get_by_label(f"Distractor {i}", exact=True).input_value() for i in (1, 2, 3)]
            assert all(first) and len(set(first)) == 3
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()

            # open the question step of the trace: the exact prompt and the raw output
            page.get_by_text("3. question", exact=False).first.click()
            expect(page.get_by_text("Prompt sent").first).to_be_visible()
            expect(page.get_by_text("Raw model output").first).to_be_visible()

            # regenerate the distractors through the graph
            page.get_by_role("button", name="Regenerate all distractors").click()
            expect(page.get_by_label("Distractor 1", exact=True).first).not_to_have_value(first[0])
            expect(page.get_by_label("Distractor 1", exact=True)).to_have_count(1)  # the old form is gone
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()
            again = [page.get_by_label(f"Distractor {i}", exact=True).input_value() for i in (1, 2, 3)]
            assert not set(again) & set(first)  # every replaced option stays out
            for node in ("review", "distractors", "validate", "verify", "notes"):
                expect(page.get_by_text(f"{node} · ", exact=False).first).to_be_visible()

            # the new distractor step in the trace shows what the reviewer rejected
            page.get_by_text("10. distractors", exact=False).first.click()
            expect(page.get_by_text(f"the reviewer rejected '{first[0]}'", exact=False).first).to_be_visible()
            page.mouse.move(0, 0)

            artifact = tmp_path / "ui-screenshot.png"
            page.screenshot(path=str(artifact), full_page=True)
        except Exception as exc:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            log = (tmp_path / "streamlit.log").read_text()[-3000:]
            raise AssertionError(f"{exc}\n(page: {tmp_path / 'failure.png'})\nserver log:\n{log}") from exc
        finally:
            context.close()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(artifact, SCREENSHOT)
    record_property("screenshot", str(artifact))
    assert artifact.stat().st_size > 10_000
