"""The console in a real browser at laptop size (1280x800): a bad upload, then upload → generate (a failed
check shown as failed) → generate again (the progress line, the new run in view, the old item gone) →
regenerate one option, then all → open a trace step → swap in another question → accept.

Streamlit serves the app on loopback with the scripted backend; Debian's Chromium (installed by
``make test``) is driven by Playwright. The final page is saved as ``out/ui-screenshot.png``.
"""

from __future__ import annotations

import os
import re
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
           "COE_TEST_MODEL_SECONDS": "0.3",
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


# Collects what the page showed between two checks, so a short-lived state (a run's progress line) is
# seen however fast the scripted run goes.
WATCH = """(oldRun) => {
  window.coeSeen = {progress: [], oldItemWithProgress: false};
  new MutationObserver(() => {
    const lines = [...document.querySelectorAll('[data-testid="stProgress"]')].map(e => e.innerText.trim());
    for (const line of lines) if (!window.coeSeen.progress.includes(line)) window.coeSeen.progress.push(line);
    if (lines.some(line => line.startsWith("Step ")) && document.querySelector(".st-key-run_" + oldRun))
      window.coeSeen.oldItemWithProgress = true;
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def click_until(page, button: str, then, tries: int = 3) -> None:
    """A click that lands while a rerun is in flight can be dropped by Streamlit: click again until ``then``."""
    for attempt in range(tries):
        page.get_by_role("button", name=button, exact=True).click()
        try:
            playwright_api.expect(then).to_be_visible(timeout=15_000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def choose(page, label: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label)
    for attempt in range(3):  # the list can close under a rerun: open it again
        # while a rerun redraws the page, the old widget can stand beside the new one for a moment
        playwright_api.expect(box).to_have_count(1)
        try:
            box.click()
            page.get_by_role("option", name=option).click(timeout=5_000)
            break
        except playwright_api.Error:
            if attempt == 2:
                raise
    playwright_api.expect(box).to_have_value(option)


def settled(page) -> None:
    """Wait until the run is over and every element of its rerun is drawn. On a busy machine a value read
    before that can come from a half-drawn form, and an expander opened before it can be replaced by its
    redrawn copy, which comes closed. Once per action that reruns the page is enough: after it nothing
    reruns until the next action."""
    playwright_api.expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0)
    playwright_api.expect(page.locator('[data-stale="true"]')).to_have_count(0)


def status(page, label: str):
    """The step status whose label starts with ``label``."""
    return page.locator("details").filter(has=page.get_by_text(re.compile("^" + re.escape(label)))).first


def test_a_teachers_session_in_a_laptop_sized_browser(server, tmp_path, record_property):
    expect = playwright_api.expect
    expect.set_options(timeout=60_000)  # generous: the machine may be busy with other work
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 800})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            page.goto(server)
            expect(page.get_by_role("heading", name="coe review console")).to_be_visible()

            # the form's hints read as hints: "e.g. …", light italics, the fields themselves empty
            for label in ("Context", "Answer", "Question (optional: written by the model when empty)"):
                field = page.get_by_label(label, exact=True)
                expect(field).to_have_value("")
                expect(field).to_have_attribute("placeholder", re.compile(r"^e\.g\. "))
                style, opacity = field.evaluate(
                    "e => [getComputedStyle(e, '::placeholder').fontStyle, getComputedStyle(e, '::placeholder').opacity]")
                assert style == "italic" and float(opacity) < 0.6, (label, style, opacity)

            # a file that is not an image: one sentence in plain words
            uploader = page.locator('.st-key-upload input[type="file"]')  # the Generate tab's (Material has one too)
            uploader.set_input_files({"name": "notes.png", "mimeType": "image/png", "buffer": b"shopping list"})
            error = page.get_by_text("Cannot use this upload.", exact=False)
            expect(error).to_contain_text("This file is not an image: notes.png")
            assert not re.search(r"\w+Error|BytesIO", error.inner_text()), error.inner_text()

            # a first run, unverified, whose first options repeat the answer: that check shows as failed
            uploader.set_input_files(str(FIXTURE / "images/test/7/image.png"))
            expect(page.get_by_text("image.png").first).to_be_visible()
            expect(error).to_have_count(0)
            page.get_by_label("Context", exact=True).fill("This is a food chain from a meadow.")
            answer = page.get_by_label("Answer", exact=True)
            answer.fill("hawk")
            answer.press("Enter")
            choose(page, "Variant", "Single shot (unverified)")
            click_until(page, "Generate", page.get_by_text("Reading the picture · ").first)
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()
            first_run = page.get_by_text(re.compile(r"^Run \S+ · Single shot")).first
            expect(first_run).to_be_in_viewport()  # scrolled into view: at 1280x800 it starts below the form
            failed, retried = status(page, "Checking the wrong options · "), page.locator("details").filter(
                has=page.get_by_text("Checking the wrong options · ")).nth(1)
            expect(failed).to_contain_text("· failed")
            expect(failed.get_by_test_id("stExpanderIconError")).to_have_count(1)
            expect(retried.get_by_test_id("stExpanderIconError")).to_have_count(0)
            expect(status(page, "Writing the wrong options · ")).to_be_visible()

            # generate again, verified: a progress line in plain words while it runs, nothing of the old item
            old_run = first_run.inner_text().split()[1]
            expect(page.locator(f".st-key-run_{old_run}")).to_contain_text("Validator: 3 distinct distractors")
            page.evaluate(WATCH, old_run)
            answer.fill("rabbit")
            answer.press("Enter")
            choose(page, "Variant", "Full CoE")
            click_until(page, "Generate", page.get_by_text(re.compile(r"^Run \S+ · Full CoE")).first)
            expect(page.get_by_text(re.compile(r"^Run \S+ · Full CoE")).first).to_be_in_viewport()
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()
            seen = page.evaluate("window.coeSeen")
            steps = [line for line in seen["progress"] if line.startswith("Step ")]
            assert steps, seen
            # the last line, past the last step, is shown for the moment before the review panel replaces it
            assert all(re.fullmatch(r"Step [1-8] of 8: [a-z ]+\. (Estimating the time left…|About .+ left\.( .+)?)",
                                    line) or line == "Step 8 of 8: handing the item over for your review."
                       for line in steps), steps
            assert not seen["oldItemWithProgress"], "the previous item was still shown during the new run"
            expect(page.get_by_text(re.compile(r"^Run \S+ · Single shot"))).to_have_count(0)
            expect(page.locator(f".st-key-run_{old_run}")).to_have_count(0)
            for words in ("Reading the picture", "Finding similar example questions", "Writing the question",
                          "Writing the explanation", "Writing the wrong options", "Checking the wrong options",
                          "Answering the item as a student would", "Noting why a student might pick"):
                expect(status(page, f"{words}")).to_be_visible()
            expect(page.get_by_text("Verified by a student model", exact=False).first).to_be_visible()
            settled(page)
            first = [page.get_by_label(f"Distractor {i}", exact=True).input_value() for i in (1, 2, 3)]
            assert all(first) and len(set(first)) == 3

            # regenerate the second option only: the first and the third stay in their slots
            page.get_by_role("button", name="↻ Regenerate").nth(1).click()
            expect(page.get_by_label("Distractor 2", exact=True).last).not_to_have_value(first[1])
            for i in (1, 2, 3):
                expect(page.get_by_label(f"Distractor {i}", exact=True)).to_have_count(1)  # the old form is gone
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()
            settled(page)
            one = [page.get_by_label(f"Distractor {i}", exact=True).input_value() for i in (1, 2, 3)]
            assert (one[0], one[2]) == (first[0], first[2]) and one[1] not in first, (first, one)

            # open the question step of the trace: the exact prompt and the raw output
            page.get_by_text("3. question", exact=False).first.click()
            expect(page.get_by_text("Prompt sent").first).to_be_visible()
            expect(page.get_by_text("Raw model output").first).to_be_visible()

            # regenerate all the distractors through the graph
            page.get_by_role("button", name="Regenerate all distractors").click()
            expect(page.get_by_label("Distractor 1", exact=True).first).not_to_have_value(one[0])
            expect(page.get_by_label("Distractor 1", exact=True)).to_have_count(1)  # the old form is gone
            expect(page.get_by_text("Validator: 3 distinct distractors")).to_be_visible()
            settled(page)
            again = [page.get_by_label(f"Distractor {i}", exact=True).input_value() for i in (1, 2, 3)]
            assert not set(again) & set(first + one)  # every replaced option stays out
            for words in ("Applying your decision", "Writing the wrong options", "Checking the wrong options"):
                expect(status(page, words)).to_be_visible()
            # the new distractor step in the trace shows what the reviewer rejected
            step = page.locator("details").filter(has=page.get_by_text(re.compile(r"^\d+\. distractors"))).last
            step.locator("summary").click()
            expect(step.get_by_text(f"the reviewer rejected '{first[1]}'", exact=False).first).to_be_visible()

            # swap in another question the question step kept: the rest is written and checked again for it
            question = page.get_by_label("Question", exact=True)
            expect(question).to_have_count(1)  # the form of the run before is gone (it lingers on a busy machine)
            before = question.input_value()
            swap = page.get_by_role("button", name=re.compile("^⇄ ")).first
            other = swap.inner_text().removeprefix("⇄").strip()
            assert other and other != before
            swap.click()
            expect(page.get_by_label("Question", exact=True).last).to_have_value(other)
            expect(page.get_by_label("Question", exact=True)).to_have_count(1)  # the old form is gone
            expect(page.get_by_label("Question", exact=True)).to_have_value(other)
            expect(page.get_by_role("button", name=f"⇄ {before}")).to_be_visible()  # the old one is a swap now
            for words in ("Applying your decision", "Writing the explanation", "Answering the item as a student"):
                expect(status(page, words).last).to_be_visible()
            expect(page.get_by_text("Verified by a student model", exact=False).first).to_be_visible()

            # accept: the key is marked in words and with an icon from Streamlit's own font, never an emoji
            page.get_by_role("button", name="Accept").click()
            expect(page.get_by_role("heading", name="Accepted item")).to_be_visible()
            key = page.get_by_role("listitem").filter(has_text="(correct)")
            expect(key).to_have_count(1)
            expect(key).to_contain_text("rabbit")
            icon = key.get_by_role("img", name="check_circle icon")
            expect(icon).to_have_count(1)
            assert "Material Symbols" in icon.evaluate("e => getComputedStyle(e).fontFamily")
            # drawn as one glyph of the bundled icon font, not as the word "check_circle"
            width, size = icon.evaluate("e => [e.getBoundingClientRect().width, parseFloat(getComputedStyle(e).fontSize)]")
            assert width < 2 * size, (width, size)
            html = page.content()
            assert "✅" not in html and "❌" not in html
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
