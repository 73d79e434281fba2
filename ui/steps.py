"""A job's graph steps as the page tells them: plain words per step, one summary per node update, and how
far the job is ("step k of n") with an estimate of the time left.

The steps and their order come from the graph (``coe.graphs.build.STEPS``)."""

from __future__ import annotations

from typing import Any

from coe.graphs.build import STEPS

# What each graph node does, in the words the page uses for it.
STEP_WORDS = {
    "describe_image": "reading the picture",
    "retrieve": "finding similar example questions",
    "question": "writing the question",
    "rationale": "writing the explanation",
    "distractors": "writing the wrong options",
    "validate": "checking the wrong options",
    "verify": "answering the item as a student would",
    "notes": "noting why a student might pick each wrong option",
    "review": "applying your decision",
}

# Seconds each node took in this process (sum, count): the time-left estimate of later runs.
_STEP_TIMES: dict[str, tuple[float, int]] = {}


def summarize(node: str, update: dict[str, Any]) -> dict[str, Any]:
    """What the progress list shows for one node update."""
    trace = (update or {}).get("trace") or []
    seconds = sum(float(t.get("seconds") or 0) for t in trace)
    tokens = sum(sum((t.get("usage") or {}).values()) for t in trace)
    text = ""
    if node == "retrieve":
        text = f"{len(update.get('exemplars') or [])} exemplars"
    elif node == "question":
        text = update.get("question") or ""
    elif node == "rationale":
        text = update.get("rationale") or ""
    elif node == "distractors":
        text = ", ".join(map(str, update.get("candidate_distractors") or []))
    elif node == "verify":
        reasons = update.get("reasons") or []
        text = (update.get("status") or "") + (": " + "; ".join(reasons) if reasons else "")
    elif node in ("validate", "review"):
        entry = trace[-1] if trace else {}
        text = "valid" if entry.get("valid") else "; ".join(entry.get("problems") or [])
        if entry.get("repair"):
            text += f" (repaired: {', '.join(entry.get('filled') or [])})"
        if node == "review":
            text = f"{entry.get('action')}: {text}"
    skipped = next((t.get("skipped") for t in trace if t.get("skipped")), None)
    # a refused decision, options that failed the check (the step loops back), or a flagged item
    failed = (
        (node == "validate" and not (update or {}).get("valid"))
        or (node == "review" and bool(trace) and not trace[-1].get("valid"))
        or (node == "verify" and (update or {}).get("status") == "flagged")
    )
    return {
        "node": node,
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "text": text,
        "skipped": skipped,
        "failed": failed,
    }


def expected_next(node: str | None, update: dict[str, Any] | None) -> str:
    """The node that most likely runs after ``node`` (for the 'running' label only)."""
    if node is None:
        return STEPS[0]
    if node == "validate":
        return "verify" if (update or {}).get("valid") else "distractors"
    if node == "verify":
        route = (update or {}).get("route", "done")
        return "notes" if route == "done" else route
    if node == "review":
        return "distractors"
    return STEPS[STEPS.index(node) + 1] if node in STEPS[:-1] else "review"


def steps_of(kind: str) -> tuple[str, ...]:
    """The steps a job goes through, in graph order: a first generation all of them; a review decision its
    own step, then the graph again from the distractors on."""
    return STEPS if kind == "generate" else ("review", *STEPS[STEPS.index("distractors") :])


def record_step_time(node: str, seconds: float) -> None:
    total, count = _STEP_TIMES.get(node, (0.0, 0))
    _STEP_TIMES[node] = (total + seconds, count + 1)


def typical_seconds(node: str) -> float | None:
    total, count = _STEP_TIMES.get(node, (0.0, 0))
    return total / count if count else None


def _time_left(seconds: float) -> str:
    if seconds < 1.5:
        return "About a second left."
    if seconds < 90:
        return f"About {round(seconds)} seconds left."
    return f"About {round(seconds / 60)} minutes left."


def progress(kind: str, updates: list[dict[str, Any]], node: str, since: float) -> tuple[int, int, str]:
    """(k, n, a line in plain words) for ``node`` in progress, ``since`` seconds after the last update.

    The time left adds the typical time of this step and of the ones after it (from earlier runs of this
    process, else the mean of this job's steps so far), less the time this step has taken already."""
    steps = steps_of(kind)
    n = len(steps)
    if node not in steps:  # past the last step: the graph is about to stop for the review
        return n, n, f"Step {n} of {n}: handing the item over for your review."
    k = steps.index(node) + 1
    walls = [u["wall"] for u in updates]
    mean = sum(walls) / len(walls) if walls else None
    guesses = [typical_seconds(s) or mean for s in steps[k - 1 :]]
    again = " again" if any(u["node"] == node for u in updates) else ""
    line = f"Step {k} of {n}: {STEP_WORDS.get(node, node)}{again}."
    known = [g for g in guesses if g is not None]
    if len(known) < len(guesses):
        return k, n, f"{line} Estimating the time left…"
    left = max(known[0] - since, 0.0) + sum(known[1:])
    slow = " This step is taking longer than usual." if since > 2 * known[0] + 2 else ""
    return k, n, f"{line} {_time_left(left)}{slow}"


def first_step_progress() -> tuple[int, int, str]:
    """The progress of a first generation about to start."""
    return progress("generate", [], STEPS[0], 0.0)
