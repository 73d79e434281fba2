"""The console's Batch page (Streamlit AppTest) on a run written with the scripted student: filter, edit,
accept, reject, regenerate one distractor in its slot, accept all verified, export; decisions live in the
run's ledger, so a new console session sees them."""

from __future__ import annotations

from functools import partial

import pytest

from tests.tiers import require  # noqa: E402

require("streamlit", "real_parts")

from streamlit.testing.v1 import AppTest  # noqa: E402

from coe.batch.ledger import Ledger  # noqa: E402
from coe.batch.run import run_batch  # noqa: E402
from tests.batch_support import SETTINGS, build_bank, scripted_services, write_manifest  # noqa: E402
from tests.conftest import FIXTURE  # noqa: E402


def page() -> None:
    from coe.ui.batch_page import batch_page

    batch_page()


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:services")
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(FIXTURE))
    build_bank(tmp_path / "chroma")
    manifest = write_manifest(tmp_path / "m" / "manifest.csv", 4)
    manifest.write_text(manifest.read_text() + "bad,missing.png,,fox,2,\n")
    run_batch(manifest, tmp_path / "run", services_factory=partial(scripted_services, str(tmp_path / "chroma")),
              settings=SETTINGS)
    return tmp_path / "run"


def opened(run_dir) -> AppTest:
    at = AppTest.from_function(page, default_timeout=60)
    at.run()
    at.text_input(key="batch_dir").input(str(run_dir)).run()
    assert not at.exception, at.exception
    return at


def key_of(at: AppTest, row_id: str, suffix: str) -> str:
    widgets = [*at.text_area, *at.text_input, *at.button, *at.checkbox, *at.toggle]
    keys = [w.key for w in widgets if (w.key or "").startswith(f"b_{row_id}_") and w.key.endswith(suffix)]
    assert len(keys) == 1, keys
    return keys[0]


def entry(run_dir, row_id):
    with Ledger(run_dir, create=False) as ledger:
        return ledger.entry(row_id)


def test_review_a_batch_run_in_the_console(run_dir):
    at = opened(run_dir)
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["rows"], metrics["written"], metrics["failed"]) == ("5", "4", "0")
    assert [e.value for e in at.error] == [f"Bad row: The picture file is missing: {run_dir.parent / 'm' / 'missing.png'}"]

    # edit the question and a note, then accept: both reach the ledger
    at.text_area(key=key_of(at, "q001", "_q")).input("Which animal hunts rabbits in the meadow?")
    at.text_input(key=key_of(at, "q001", "_n0")).input("It also lives in the meadow.")
    at.button(key=key_of(at, "q001", "_accept")).click().run()
    assert not at.exception, at.exception
    got = entry(run_dir, "q001")
    assert got["decision"] == "accepted" and got["item"]["question"] == "Which animal hunts rabbits in the meadow?"
    assert got["item"]["distractor_notes"][0] == "It also lives in the meadow."

    # an edit that makes an option equal the answer is refused, and nothing is stored
    answer = entry(run_dir, "q000")["item"]["answer"]
    at.text_input(key=key_of(at, "q000", "_d0")).input(answer)
    at.button(key=key_of(at, "q000", "_save")).click().run()
    assert any("Not saved (q000)" in w.value for w in at.warning)
    assert entry(run_dir, "q000")["edited"] == []

    at.button(key=key_of(at, "q002", "_reject")).click().run()
    assert entry(run_dir, "q002")["decision"] == "rejected"

    # regenerate the second option of q003, keeping the first in its slot
    before = entry(run_dir, "q003")["item"]["distractors"]
    at.checkbox(key=key_of(at, "q003", "_k0")).check()
    at.button(key=key_of(at, "q003", "_regen")).click().run()
    assert not at.exception, at.exception
    after = entry(run_dir, "q003")["item"]["distractors"]
    assert after[0] == before[0] and after[1] != before[1] and len(after) == 2
    assert [t["node"] for t in entry(run_dir, "q003")["item"]["trace"]].count("review") == 1

    with Ledger(run_dir, create=False) as ledger:
        undecided = [e["id"] for e in ledger.entries(states=("done",))
                     if e["status"] == "verified" and e["decision"] is None]
    assert "q000" in undecided
    at.button(key="batch_accept_verified").click().run()
    with Ledger(run_dir, create=False) as ledger:
        counts = ledger.counts()
    accepted = 1 + len(undecided)
    assert counts["rejected"] == 1 and counts["accepted"] == accepted

    # a new console session shows the decisions, filters by them and exports the accepted items
    again = opened(run_dir)
    again.selectbox(key="batch_filter").select("rejected").run()
    assert any("1 of 5 rows shown" in c.value for c in again.caption)
    assert [e.value for e in again.markdown if "**rejected**" in e.value] == [
        "**q002** · manifest line 4 · verified · **rejected**"]
    assert [b.proto.label for b in again.get("download_button")] == [f"Export {accepted} items (moodle-xml)"]


def test_the_console_has_a_batch_tab(run_dir):
    from pathlib import Path

    import coe.ui

    at = AppTest.from_file(str(Path(coe.ui.__file__).resolve().parent / "app.py"), default_timeout=60)
    at.run()
    assert [t.label for t in at.tabs] == ["Generate", "Batch", "Material", "History"]
    at.text_input(key="batch_dir").input(str(run_dir)).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.tabs[1].metric}["written"] == "4"
