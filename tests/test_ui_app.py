"""The review console driven with Streamlit's AppTest, on the scripted backend (tests/ui_support.py)."""

from __future__ import annotations

import gc
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from tests.tiers import require  # noqa: E402

require("streamlit", "real_parts")

import coe.ui
from streamlit.testing.v1 import AppTest

from coe.graphs.build import STEPS
from coe import history
from coe.ui.steps import STEP_WORDS
from tests import ui_support
from tests.conftest import FIXTURE

APP = str(Path(coe.ui.__file__).resolve().parent / "app.py")
IMAGE = FIXTURE / "images/test/7/image.png"
NODES = list(STEPS)
SINGLE_SHOT = "Single shot (unverified)"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:services")
    monkeypatch.setenv("COE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COE_SCIENCEQA_DIR", str(FIXTURE))
    yield tmp_path
    ui_support.GATE.open()


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app(env) -> AppTest:
    return new_app()


def run_of(at):
    return at.session_state.get("run")


def settle(at: AppTest) -> AppTest:
    """Let the run's worker finish its step, then render the page again."""
    run = run_of(at)
    if run is not None and run.job is not None:
        assert run.job.wait(30), "the run did not finish"
    at.run()
    assert not at.exception, at.exception
    return at


def generate(at: AppTest, answer="rabbit", *, image: bytes | None = None, name="chain.png", wait=True,
             variant=SINGLE_SHOT, **fields):
    """Generate with the scripted model; the single-shot variant by default, so the scripted distractors are
    the item's (the verified variant re-ranks them with the candidate pool: see the verification test)."""
    fields["variant"] = variant
    at.file_uploader(key="upload").upload(name, image if image is not None else IMAGE.read_bytes(), "image/png")
    at.text_input(key="answer").input(answer)
    for key, value in fields.items():
        widget = {"context": at.text_area, "question": at.text_input}.get(key)
        if widget is not None:
            widget(key=key).input(value)
        elif key == "n":
            at.number_input(key="n").set_value(value)
        else:
            at.selectbox(key=key).set_value(value)
    at.run()
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    return settle(at) if wait else at


def step_nodes(at) -> list[str]:
    """The graph steps the page lists, read back from their plain-words labels."""
    nodes = {STEP_WORDS[n].capitalize(): n for n in STEP_WORDS}
    return [nodes[s.label.split(" · ")[0].rstrip(" …")] for s in at.status]


def progress_lines(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def distractor_inputs(at):
    return [t for t in at.text_input if re.fullmatch(r"Distractor \d+", t.label)]


def review_keys(at):
    run = run_of(at)
    return run, run.run_id, run.round


def downloaded(button) -> bytes:
    """The bytes behind a download button (AppTest keeps them in an in-memory media store)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    for store in (o for o in gc.get_objects() if isinstance(o, MemoryMediaFileStorage)):
        if file_id in store._files_by_id:
            return store._files_by_id[file_id].content
    raise AssertionError(f"no media file {file_id}")


def png_header(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


# -- generate --------------------------------------------------------------------------------

def test_generate_again_gives_another_alternative_and_difficulty_reaches_the_graph(app):
    generate(app, variant="Full CoE", context="A meadow food chain: grass, rabbit, fox.", difficulty="hard")
    first = run_of(app)
    before = (first.item()["question"], tuple(first.item()["distractors"]))
    ui_support.GATE.close("rationale")
    app.button(key="generate_again").click().run()
    assert ui_support.GATE.reached.wait(30)
    app.run()
    # while the new run is in flight the page shows it alone: nothing of the previous item is left
    assert run_of(app).run_id != first.run_id
    assert not distractor_inputs(app) and not app.subheader and not app.expander
    assert not [m for m in app.markdown if first.run_id in m.value or first.item()["question"] in m.value]
    assert progress_lines(app)[0].startswith("Step 4 of 8: ")
    ui_support.GATE.open()
    settle(app)
    again = run_of(app)
    assert again.run_id != first.run_id and again.settings["seed"] == 1 and again.settings["difficulty"] == "hard"
    assert (again.item()["question"], tuple(again.item()["distractors"])) != before
    app.button(key="generate").click().run()  # a fresh Generate starts from the first alternative again
    settle(app)
    assert run_of(app).settings["seed"] == 0


def test_full_coe_shows_the_verification_beside_each_option(app):
    generate(app, variant="Full CoE", context="A meadow food chain: grass, rabbit, fox.")
    run = run_of(app)
    request = run.review_request()
    assert request["status"] == "verified" and run.item()["status"] == "verified"
    assert any(s.value.startswith("Verified by a student model") for s in app.success)
    captions = [c.value for c in app.caption]
    assert any("probability on the key: 0." in c for c in captions)
    for d in request["distractors"]:
        assert any("draws 0." in c and "judged also correct" in c for c in captions), d
    notes = [t for t in app.text_input if t.label.startswith("Why a student would pick")]
    assert request["distractor_notes"] and [t.value for t in notes] == request["distractor_notes"]
    # every field is editable, the rationale and the misconception notes included
    rid, r = run.run_id, run.round
    app.text_area(key=f"rr_{rid}_{r}").input("Arrows point from food to eater.")
    notes[0].input("Thinks the eater is the food.")
    app.button(key=f"accept_{rid}_{r}").click().run()
    settle(app)
    item = run.item()
    assert run.status == "accepted" and item["rationale"] == "Arrows point from food to eater."
    assert item["distractor_notes"][0] == "Thinks the eater is the food."
    assert item["distractor_notes"][1:] == request["distractor_notes"][1:]


def test_regenerating_one_option_leaves_the_others_and_their_notes_in_place(app):
    generate(app, variant="Full CoE", context="A meadow food chain: grass, rabbit, fox.")
    run, rid, r = review_keys(app)
    before = run.review_request()
    app.button(key=f"regen_{rid}_{r}_0").click().run()
    settle(app)
    after = run.review_request()
    assert after["distractors"][1:] == before["distractors"][1:] and after["distractors"][0] != before["distractors"][0]
    assert [t.value for t in distractor_inputs(app)] == after["distractors"]
    # the notes are written again for the set as the graph orders it (kept ones first, the scripted notes are
    # numbered in that order), then follow their options into the slots
    notes = [t.value for t in app.text_input if t.label.startswith("Why a student would pick")]
    assert notes == after["distractor_notes"]
    assert [n[-3:] for n in notes] == ["(3)", "(1)", "(2)"]


def test_upload_generate_streams_each_node_and_waits_for_review(app):
    generate(app, context="A meadow food chain.")
    run = run_of(app)
    assert run.status == "review" and run.error is None
    labels = [s.label for s in app.status]
    assert step_nodes(app) == NODES
    assert labels[0].startswith("Reading the picture · ") and labels[2].startswith("Writing the question · ")
    assert all(s.state == "complete" for s in app.status)
    assert not progress_lines(app)  # the progress line is for a run in flight only
    assert "tokens" in labels[2]
    assert [t.label for t in distractor_inputs(app)] == ["Distractor 1", "Distractor 2", "Distractor 3"]
    assert [t.value for t in distractor_inputs(app)] == ["grass", "hawk", "owl"]
    assert app.success[0].value.startswith("Validator: 3 distinct distractors")
    # the upload was kept, named by content, under COE_HOME
    kept = Path(run.state["image_path"])
    assert kept.parent == history.traces_dir().parent / "uploads" and kept.read_bytes() == IMAGE.read_bytes()
    # recorded in the history, waiting for review
    assert history.load_run(run.run_id)["status"] == "review"


def test_trace_view_shows_each_step_in_full_and_filters(app):
    generate(app)
    run = run_of(app)
    labels = [e.label for e in app.expander]
    assert [label.split(" · ")[0] for label in labels] == [
        "1. describe_image", "2. retrieve", "3. question", "4. rationale", "5. distractors (attempt 1)",
        "6. validate (attempt 1)", "7. verify", "8. notes"]
    assert "285+8 tokens" in labels[2] or "tokens" in labels[2]
    question_step = app.expander[2]
    codes = [c.value for c in question_step.code]
    assert any("<example 1>" in c and "rabbit" in c for c in codes), "the exact prompt is shown"
    assert any(json.loads(c) == {"question": ui_support.QUESTION} for c in codes if c.startswith("{")), \
        "the raw output is shown"
    assert question_step.json[-1].value and ui_support.QUESTION in question_step.json[-1].value
    assert "answer" in question_step.json[0].value  # the step's inputs
    retrieve_step = app.expander[1]
    shown = " ".join(m.value for m in retrieve_step.markdown)
    exemplars = run.item()["exemplars"]
    assert exemplars and all(f"#{e['id']}" in shown for e in exemplars)
    assert "score" in shown
    # thumbnails where the dataset has the image file, a placeholder text otherwise
    with_file = [e for e in exemplars if (FIXTURE / f"images/train/{e['id']}/image.png").is_file()]
    assert len(retrieve_step.image) == len(with_file)
    placeholders = [c.value for c in retrieve_step.caption if "no image" in c.value or "not available" in c.value]
    assert len(placeholders) == len(exemplars) - len(with_file)
    validate_step = app.expander[5]
    assert "Validator verdict:** :material/check_circle: valid" in " ".join(m.value for m in validate_step.markdown)
    # the filter keeps the steps that mention the text
    app.text_input(key=f"trace_{run.run_id}_filter").input("VALIDATE").run()
    assert [e.label.split(" · ")[0] for e in app.expander] == ["6. validate (attempt 1)"]
    assert any("1 of 8 steps shown" in c.value for c in app.caption)
    app.text_input(key=f"trace_{run.run_id}_filter").input(ui_support.RATIONALE[:30]).run()
    assert [e.label.split(" · ")[0] for e in app.expander] == ["4. rationale", "5. distractors (attempt 1)"]
    app.text_input(key=f"trace_{run.run_id}_filter").input("no such text anywhere").run()
    assert len(app.expander) == 0
    # the whole trace downloads as JSON
    record = json.loads(downloaded(app.download_button(key=f"trace_dl_{run.run_id}")))
    assert [t["node"] for t in record["trace"]] == NODES and record["item"]["answer"] == "rabbit"


@pytest.mark.parametrize("variant, check", [
    ("No exemplars (zero-shot)", lambda t: t[1].get("skipped") == "ablation: no exemplars"),
    ("No rationale", lambda t: t[3].get("skipped") == "ablation: no rationale"),
    ("Paper prompt shapes (free text)", lambda t: t[2]["prompt_id"].endswith("coe-v1")),
    ("Full CoE", lambda t: t[2]["prompt_id"].endswith(".v1") and t[1].get("exemplars")),
])
def test_variants_are_ablations(app, variant, check):
    generate(app, variant=variant, n=2)
    run = run_of(app)
    assert run.status == "review" and run.variant == variant
    assert check(run.trace()), run.trace()
    assert len(run.review_request()["distractors"]) == 2
    assert any(variant in m.value for m in app.markdown)


def test_model_choice_reaches_the_services(app):
    assert app.selectbox(key="model").options == ["default"]  # nothing pulled in this COE_HOME
    generate(app)
    assert run_of(app).item()["model"] == "scripted-default"


def test_scienceqa_test_item_prefills_and_is_excluded(app):
    app.radio(key="source").set_value("ScienceQA test item").run()
    picker = app.selectbox(key="sqa_pid")
    assert picker.options and any(o.startswith("7 · ") for o in picker.options)
    picker.set_value("7").run()
    assert app.text_input(key="answer").value == "grass"
    assert app.text_area(key="context").value == "The diagram shows a food chain from a meadow."
    assert any("Original question: In this food chain" in c.value for c in app.caption)
    assert app.session_state["question"] == ""
    app.button(key="generate").click().run()
    settle(app)
    run = run_of(app)
    assert run.status == "review"
    assert run.state["exclude_ids"] == ["7"] and run.state["image_path"].endswith("images/test/7/image.png")
    assert "7" not in [e["id"] for e in run.item()["exemplars"]]


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"this is not an image", "This file is not an image: notes.png. Choose a picture file"),
    ("huge.png", png_header(8000, 6000),
     "This picture is too large: huge.png is 8000 × 6000 pixels; pictures up to 40 million pixels work."),
    ("big.jpg", b"\0" * (50 * 1024 * 1024 + 1), "This file is too large: big.jpg is over the 50 MB limit."),
])
def test_bad_uploads_get_a_clear_message(app, name, data, message):
    app.file_uploader(key="upload").upload(name, data, "application/octet-stream")
    app.text_input(key="answer").input("rabbit").run()
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("Cannot use this upload. ") and message in errors[0], errors
    assert "Error" not in errors[0] and "BytesIO" not in errors[0]  # no library words
    app.button(key="generate").click().run()
    assert "run" not in app.session_state
    assert any("not an image this console can use" in e.value for e in app.error)
    uploads = history.traces_dir().parent / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir())  # nothing kept


def test_empty_answer_and_missing_setup_are_reported(app, monkeypatch):
    app.button(key="generate").click().run()
    assert [e.value for e in app.error] == ["The answer is empty"]
    monkeypatch.setenv("COE_SERVICES", "tests.ui_support:no_such_factory")
    app.text_input(key="answer").input("rabbit").run()
    app.button(key="generate").click().run()
    assert "does not name a function" in app.error[0].value
    monkeypatch.delenv("COE_SERVICES")  # the real default: nothing is set up in this COE_HOME
    app.button(key="generate").click().run()
    message = app.error[0].value
    assert "run `coe index build`" in message or "run `coe models pull" in message, message
    assert "run" not in app.session_state


# -- review ----------------------------------------------------------------------------------------

def test_edit_regenerate_one_then_all_then_accept_and_export(app):
    generate(app)
    run, rid, r = review_keys(app)
    app.text_area(key=f"rq_{rid}_{r}").input("What does the fox eat?")
    app.text_input(key=f"rd_{rid}_{r}_0").input("tall grass")
    app.run()
    app.button(key=f"regen_{rid}_{r}_1").click().run()  # only "hawk"
    settle(app)
    run, rid, r2 = review_keys(app)
    assert r2 == r + 1
    request = run.review_request()
    # the edit kept, hawk replaced in its own slot: the kept options do not move
    assert request["distractors"] == ["tall grass", "worm", "owl"]
    assert request["question"] == "What does the fox eat?"
    assert history.load_run(rid)["item"]["distractors"] == ["tall grass", "worm", "owl"]
    assert [t.value for t in distractor_inputs(app)] == ["tall grass", "worm", "owl"]
    assert step_nodes(app) == ["review", "distractors", "validate", "verify", "notes"]
    prompt = run.trace()[-4]["messages"][-1]["content"]
    assert "write exactly 1 distractors" in prompt, prompt
    # "grass" was edited away and "hawk" is replaced; the edited and the untouched options are kept
    assert "the reviewer rejected 'grass', 'hawk'" in prompt and "already has 'tall grass', 'owl'" in prompt
    # only the distractors: no new question or rationale call
    assert [t["node"] for t in run.trace()][-5:] == ["review", "distractors", "validate", "verify", "notes"]
    app.button(key=f"regen_all_{rid}_{r2}").click().run()
    settle(app)
    run, rid, r3 = review_keys(app)
    assert run.review_request()["distractors"] == ["mouse", "snake", "frog"]
    assert run.review_request()["question"] == "What does the fox eat?"
    app.button(key=f"accept_{rid}_{r3}").click().run()
    settle(app)
    assert run.status == "accepted"
    assert app.subheader[0].value == "Accepted item"
    # the key is marked in words and with an icon from Streamlit's own font, not an emoji
    options = next(m.value for m in app.markdown if m.value.startswith("- "))
    assert options.splitlines() == ["- :material/check_circle: rabbit **(correct)**", "- mouse", "- snake", "- frog"]
    assert not [m for m in app.markdown if "✅" in m.value]
    # Export item: Moodle XML (the default) carries the uploaded image itself, not a server path
    import base64
    from lxml import etree
    moodle = etree.fromstring(downloaded(app.download_button(key=f"export_{rid}")))
    [question] = moodle.findall("question")
    assert "What does the fox eat?" in question.findtext("questiontext/text")
    answers = {a.findtext("text"): a.get("fraction") for a in question.findall("answer")}
    assert answers == {"rabbit": "100", "mouse": "0", "snake": "0", "frog": "0"}
    image = question.find("questiontext/file")
    assert base64.b64decode(image.text) == Path(run.state["image_path"]).read_bytes()
    app.selectbox(key=f"export_fmt_{rid}").set_value("jsonl").run()
    exported = json.loads(downloaded(app.download_button(key=f"export_{rid}")))
    assert exported["question"] == "What does the fox eat?" and exported["answer"] == "rabbit"
    assert exported["distractors"] == ["mouse", "snake", "frog"] and exported["id"] == rid
    assert exported["provenance"]["exemplar_ids"] and "trace" not in exported
    record = history.load_run(rid)
    assert record["status"] == "accepted" and record["item"]["distractors"] == ["mouse", "snake", "frog"]
    assert [t["node"] for t in record["trace"]].count("review") == 3


def test_validator_runs_on_edits(app):
    generate(app)
    run, rid, r = review_keys(app)
    app.text_input(key=f"rd_{rid}_{r}_1").input("Rabbit").run()
    assert "is the correct answer" in app.error[0].value
    assert app.button(key=f"accept_{rid}_{r}").disabled
    app.text_input(key=f"rd_{rid}_{r}_1").input("grass").run()
    assert "repeats another option" in app.error[0].value
    app.text_input(key=f"rd_{rid}_{r}_1").input("none of the above").run()
    assert "placeholder" in app.error[0].value
    app.text_input(key=f"rd_{rid}_{r}_1").input("heron").run()
    assert not app.error and not app.button(key=f"accept_{rid}_{r}").disabled
    # a refused decision comes back as a warning from the graph itself
    app.text_input(key=f"rd_{rid}_{r}_1").input("owl").run()   # duplicate of distractor 3
    app.button(key=f"regen_{rid}_{r}_0").click().run()         # keep "owl", "owl"
    settle(app)
    assert run.status == "review"
    assert any("kept options" in w.value for w in app.warning)


# -- cancel ----------------------------------------------------------------------------------------

def test_cancel_a_run_in_flight(app):
    ui_support.GATE.close("rationale")
    generate(app, wait=False)
    assert ui_support.GATE.reached.wait(30)
    app.run()
    run = run_of(app)
    assert run.job.running
    statuses = app.status
    assert step_nodes(app)[:3] == NODES[:3]
    assert statuses[-1].state == "running" and statuses[-1].label.startswith("Writing the explanation")
    [line] = progress_lines(app)
    # the step count is the graph's; the time left comes from the steps so far
    assert line.startswith(f"Step 4 of {len(NODES)}: writing the explanation. "), line
    assert re.search(r"\. About (a second|\d+ seconds|\d+ minutes) left\.", line), line
    assert app.button(key="generate").disabled
    app.button(key=f"cancel_{run.run_id}").click().run()
    assert run.cancelling and app.button(key=f"cancel_{run.run_id}").disabled
    assert any("status **cancelling**" in m.value for m in app.markdown)
    ui_support.GATE.open()
    settle(app)
    assert run.status == "cancelled" and app.info[0].value == "Cancelled."
    assert [t["node"] for t in run.trace()] == NODES[:4]  # stopped after the step in progress
    record = history.load_run(run.run_id)
    assert record["status"] == "cancelled" and len(record["trace"]) == 4
    assert not app.button(key="generate").disabled


def test_cancel_a_regeneration_keeps_the_item(app):
    generate(app)
    run, rid, r = review_keys(app)
    before = run.review_request()["distractors"]
    ui_support.GATE.close("distractors")
    app.button(key=f"regen_all_{rid}_{r}").click().run()
    assert ui_support.GATE.reached.wait(30)
    app.run()
    app.button(key=f"cancel_{rid}").click().run()
    ui_support.GATE.open()
    settle(app)
    assert run.status == "review"
    assert "Cancelled: the item is as it was before it." in app.info[0].value
    assert run.review_request()["distractors"] == before
    assert [t.value for t in distractor_inputs(app)] == before
    # the next decision continues from there
    app.button(key=f"regen_{rid}_{run.round}_2").click().run()
    settle(app)
    assert run.review_request()["distractors"][:2] == before[:2] and run.review_request()["distractors"][2] != before[2]


# -- history ---------------------------------------------------------------------------------------

def test_history_lists_and_reopens_runs_of_the_console_and_the_cli(app):
    cli_id = history.record_item({"question": "Which is a bird?", "answer": "owl", "distractors": ["fox", "ant"],
                                  "model": "cli-model", "exemplars": [{"id": "2", "score": 0.5}],
                                  "trace": [{"node": "retrieve", "seconds": 0.1,
                                             "exemplars": [{"id": "2", "score": 0.5, "signals": {"answer": 0.5}}]}]},
                                 source="cli", inputs={"answer": "owl"})
    generate(app)
    ui_id = run_of(app).run_id
    app.run()
    table = app.dataframe[0].value
    assert set(table["run_id"]) == {cli_id, ui_id}
    assert set(table["source"]) == {"cli", "ui"}
    picker = app.selectbox(key="history_pick")
    picker.set_value(cli_id).run()
    assert any("Which is a bird?" in m.value for m in app.markdown)
    assert [e.label.split(" · ")[0] for e in app.expander][-1] == "1. retrieve"
    assert app.expander[-1].image  # exemplar 2 has an image file in the fixture
    assert any("not recorded" in c.value for c in app.expander[-1].caption)  # CLI traces have no inputs
    record = json.loads(downloaded(app.download_button(key=f"history_dl_{cli_id}")))
    assert record["run_id"] == cli_id and record["trace"][0]["node"] == "retrieve"
    app.selectbox(key="history_pick").set_value(ui_id).run()
    assert [e.label.split(" · ")[0] for e in app.expander][-len(NODES):][0] == "1. describe_image"
    app.text_input(key=f"history_{ui_id}_filter").input("validate").run()
    assert any("steps shown" in c.value for c in app.caption)


# -- sessions --------------------------------------------------------------------------------------

def test_concurrent_sessions_share_the_model_but_not_their_traces(env):
    one, two = new_app(), new_app()
    generate(one, "rabbit", wait=False)
    generate(two, "fox", wait=False, question="Which animal eats the rabbit?")
    settle(one)
    settle(two)
    a, b = run_of(one), run_of(two)
    assert a.run_id != b.run_id and a.status == b.status == "review"
    assert a.services is b.services  # one model instance (st.cache_resource)
    for run, answer in ((a, "rabbit"), (b, "fox")):
        trace = run.trace()
        assert [t["node"] for t in trace] == NODES
        assert all(t["inputs"].get("answer", answer) == answer for t in trace)
        prompt = trace[4]["messages"][-1]["content"]
        assert f'of the same kind and length as "{answer}"' in prompt
        assert history.load_run(run.run_id)["inputs"]["answer"] == answer
    assert b.trace()[2]["source"] == "given"
    # both keep working independently
    rid, r = a.run_id, a.round
    one.button(key=f"accept_{rid}_{r}").click().run()
    settle(one)
    assert a.status == "accepted" and b.status == "review"


def test_a_run_left_for_review_resumes_from_history_after_a_restart(app):
    import streamlit as st

    generate(app)
    left = run_of(app)
    assert left.status == "review"
    waiting = left.review_request()["distractors"]
    st.cache_resource.clear()  # a restarted console: new graph, new services, the same COE_HOME
    fresh = new_app()
    fresh.selectbox(key="history_pick").set_value(left.run_id).run()
    fresh.button(key=f"resume_{left.run_id}").click().run()
    assert not fresh.exception, fresh.exception
    run = run_of(fresh)
    assert run is not left and run.run_id == left.run_id and run.status == "review"
    assert run.review_request()["distractors"] == waiting  # from the SQLite thread, not from memory
    assert [t.value for t in fresh.text_input if t.label.startswith("Distractor")] == waiting
    fresh.button(key=f"accept_{run.run_id}_{run.round}").click().run()
    settle(fresh)
    assert run.status == "accepted" and history.load_run(run.run_id)["status"] == "accepted"


def test_a_failed_validation_shows_as_failed_and_the_step_runs_again(app):
    generate(app, "hawk")  # the scripted model's first options include "hawk": the validator sends them back
    statuses = app.status
    assert step_nodes(app) == [*NODES[:6], "distractors", "validate", *NODES[6:]]
    failed = statuses[5]
    assert failed.state == "error" and failed.label.endswith(" · failed"), failed.label
    assert "is the correct answer" in failed.markdown[0].value
    assert [s.state for s in statuses].count("error") == 1 and statuses[7].state == "complete"
    assert "hawk" not in [t.value for t in distractor_inputs(app)]
