"""The console's words for a run: progress with the time left, options kept in their slots, plain errors."""

from __future__ import annotations

import pytest

from tests.tiers import require

require("streamlit", "real_parts")

from coe.graphs.build import STEPS
from coe.ui import steps
from coe.ui.resources import plain_error
from coe.ui.runs import in_slots


@pytest.fixture
def fresh_times(monkeypatch):
    monkeypatch.setattr(steps, "_STEP_TIMES", {})


def done(*nodes_and_walls):
    return [{"node": node, "wall": wall} for node, wall in nodes_and_walls]


def test_the_step_count_is_the_graphs(fresh_times):
    assert steps.progress("generate", [], STEPS[0], 0.0) == (
        1, len(STEPS), "Step 1 of 8: reading the picture. Estimating the time left…")
    k, n, line = steps.progress("accept", [], "review", 0.0)
    assert (k, n) == (1, 1 + len(STEPS) - STEPS.index("distractors")) and "applying your decision" in line
    k, n, line = steps.progress("generate", done(*((s, 1.0) for s in STEPS)), "review", 0.0)
    assert (k, n) == (8, 8) and "for your review" in line


def test_time_left_from_this_runs_steps_then_from_typical_times(fresh_times):
    updates = done(("describe_image", 2.0), ("retrieve", 4.0))
    # six steps left at the mean of 3 s, one second of this step already gone
    assert steps.progress("generate", updates, "question", 1.0)[2] == \
        "Step 3 of 8: writing the question. About 17 seconds left."
    for node in STEPS:
        steps.record_step_time(node, 60.0 if node == "verify" else 1.0)
    assert steps.progress("generate", updates, "question", 0.0)[2].endswith("About 65 seconds left.")
    assert steps.progress("generate", updates, "verify", 0.5)[2].endswith("About 60 seconds left.")
    steps.record_step_time("verify", 340.0)  # typical: the mean, 200 s
    assert steps.progress("generate", updates, "verify", 0.5)[2].endswith("About 3 minutes left.")
    again = steps.progress("generate", done(*((s, 1.0) for s in STEPS[:6])), "distractors", 9.0)[2]
    assert again.startswith("Step 5 of 8: writing the wrong options again. About 3 minutes left.")
    assert again.endswith("This step is taking longer than usual.")


def test_a_failed_check_is_marked_failed():
    assert steps.summarize("validate", {"valid": False, "trace": [{"valid": False, "problems": ["x"]}]})["failed"]
    assert not steps.summarize("validate", {"valid": True, "trace": [{"valid": True}]})["failed"]
    # repaired after the retries: valid in the end
    assert not steps.summarize("validate", {"valid": True, "trace": [{"valid": False, "repair": "filled"}]})["failed"]
    assert steps.summarize("verify", {"status": "flagged", "trace": [{}]})["failed"]
    assert steps.summarize("review", {"trace": [{"action": "accept", "valid": False}]})["failed"]
    assert not steps.summarize("question", {"question": "Q?", "trace": [{}]})["failed"]


def test_kept_options_stay_in_their_slots():
    # the graph puts the kept options first; the new one goes back to the slot it replaces
    assert in_slots(["owl", None, "frog"], ["owl", "frog", "worm"]) == [0, 2, 1]
    assert in_slots([None, "Owl.", None], ["owl", "worm", "deer"]) == [1, 0, 2]
    assert in_slots([None, None], ["a", "b"]) == [0, 1]
    assert in_slots(["gone", None], ["a", "b"]) == [0, 1]  # a kept option missing: nothing moves
    assert in_slots(["a"], ["a", "b"]) == [0, 1]


@pytest.mark.parametrize("error, said", [
    ("not a readable image: notes.png (UnidentifiedImageError: cannot identify image file <_io.BytesIO>)",
     "This file is not an image: notes.png. Choose a picture file such as PNG or JPEG."),
    ("image too large: big.jpg (52428801 bytes, limit 52428800)", "This file is too large: big.jpg is over the 50 MB limit."),
    ("could not produce 3 valid distractors: 'owl' repeats another option",
     "The model could not write 3 usable wrong options ('owl' repeats another option). Try again, or another model."),
    ("KeyError: 'question'", "Something unexpected went wrong: 'question' (the console's log has the details)."),
    ("the answer is empty", "The answer is empty"),
])
def test_errors_in_plain_words(error, said):
    assert plain_error(error) == said
