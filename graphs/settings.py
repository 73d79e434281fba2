"""The graph's settings: one validated model (``GraphSettings``) for every way of running the graph, read by the
nodes from ``config["configurable"]``, and what ``"auto"`` and ``--choose`` stand for."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, get_args, get_origin

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coe.limits import MAX_DISTRACTORS
from coe.plugins.llm.protocol import LLMPlugin

# a share or probability: the type carries the bounds, so every such field declares its default plainly
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class GraphSettings(BaseModel):
    """Every per-run switch of the graph, verification thresholds included. The CLI (``--set KEY=VALUE`` and
    its named options), batch runs, the console, the LangGraph server and the evaluation all build this
    model, so an unknown or ill-typed setting is refused the same way everywhere (``check_settings``)."""

    model_config = ConfigDict(extra="forbid")

    n_distractors: int = Field(
        3,
        ge=1,
        le=MAX_DISTRACTORS,
        description="wrong options per item (a manifest row's or a request's own count wins)",
    )
    mode: Literal["json", "coe"] = Field(
        "json", description="`json`: schema-constrained prompts; `coe`: the paper's free-text shapes"
    )
    use_exemplars: bool = Field(True, description="retrieve exemplars (off: zero-shot ablation)")
    use_rationale: bool = Field(True, description="write the rationale before the distractors (off: ablation)")
    # 2, not 4: the rationale scores the same with two (0.5B, 150 random val items, every paired interval
    # across zero) from two thirds of the prompt tokens (451 against 666) in a little over half the time
    k: int = Field(2, ge=0, description="exemplars shown in each prompt")
    pool_k: int = Field(10, ge=0, description="exemplars whose options form the distractor candidate pool")
    use_pool: bool = Field(True, description="offer the pooled candidate options to the distractor step")
    choose_from_pool: bool = Field(True, description="constrain distractors to the pool when it is large enough")
    pool_selection: Literal["auto", "blend", "learned", "rank", "model"] = Field(
        "auto",
        description="who picks the distractors: `model` (the LLM under the schema's enum), `rank` (the "
        "pool's top n), `blend` (the pool's ranking, the model's vote and the student's draw, steered by "
        "`difficulty`), `learned` (the trained ranker over the wide pool, no model call), `auto` (by backend: "
        "below the table)",
    )
    max_retries: int = Field(2, ge=0, description="re-asks of the distractor step before repairing from exemplars")
    exclude_splits: list[str] = Field(
        default_factory=list, description="bank splits retrieval never returns (the evaluation excludes `test`)"
    )
    question_exemplars: int = Field(
        4, ge=0, description="exemplar (or ranked bank) questions ranked beside the model's"
    )
    question_samples: int = Field(1, ge=0, description="sampled model questions ranked beside the greedy one")
    question_selection: Literal["auto", "model", "learned"] = Field(
        "auto",
        description="who writes the question: `model` (generate several, keep the best), `learned` "
        "(the trained ranker over exemplar and bank questions, no model call), `auto` (by backend: below the "
        "table)",
    )
    verify: bool = Field(True, description="verify the item with the answering agent (off: `unverified`)")
    check_given_question: bool = Field(True, description="refuse a given question that the answer does not answer")
    max_question_rounds: int = Field(1, ge=0, description="times a flagged question goes back to the question step")
    max_distractor_rounds: int | None = Field(
        None,
        ge=0,
        description="times distractors judged correct (or cued) are replaced; unset: once for a backend that sees "
        "the picture, never for a text-only one (the options stay, flagged with the reasons, for the reviewer)",
    )
    difficulty: Literal["easy", "medium", "hard"] = Field("medium", description="steers which distractors are kept")
    seed: int = Field(0, description="another seed gives another alternative for the same input")
    # one more model call with the longest prompt of the item, and small models mostly restate the option
    write_notes: bool = Field(False, description="write why a student would pick each distractor (one more model call)")
    orders: int = Field(2, ge=1, description="option orders averaged per solve (position bias of small models)")
    key_margin: Share = Field(0.15, description="flag when a distractor beats the key by more than this")
    min_key_prob: Share = Field(0.0, description="flag when the key gets less than this (0: rely on the margin)")
    also_correct_yes: Share = Field(0.5, description="a distractor judged also correct needs P(yes) at least this ...")
    also_correct_gap: Share = Field(0.1, description="... and within this of the key's own P(yes)")
    given_min_yes: Share = Field(0.2, description="a given question whose key gets P(yes) below this is refused")
    # calibrated on ScienceQA val gold and known-false items (coe eval --task verify) so that items marked
    # verified are right at least 90 % of the time with the 1.5B (the 0.5B never separates its top two options
    # by 0.05): 0.95 on 50 val items, 0.91 [0.86, 0.96] on 50 test items; at 0.1 it would be 0.87 on test.
    # With the lone-distractor form check, 0.97 [0.91, 1.00] on 100 test items
    confirm_margin: Share = Field(0.55, description="`verified` needs the key ahead of every distractor by this much")
    vague_spread: Share = Field(
        0.0,
        description="flag a question the bank does not know when the student's top two options are closer than this",
    )
    text_only: bool | None = Field(
        None,
        description="also solve without the picture, for the warning that an item is answerable without it "
        "(only when the item has one; changes no status); unset: on for a backend that sees the picture, off for "
        "a text-only one, which reads only the picture's OCR text and caption",
    )


# What "auto" (or unset) resolves to, by whether the backend sees the picture. A text-only model (llama.cpp
# GGUF, a text-only server) lowered the learned rankers' choices when it chose (1.5B, 23 ScienceQA test items:
# DG recall 0.283 against pool-rank's 0.312; its questions no better than copying the nearest exemplar's), so
# the rankers choose there and the model writes the rationale and verifies. Its verifier's replacements
# lowered them too (1.5B, 100 test items: 5 items changed, 3 of the 5 options it sent back were gold
# distractors, none of the 5 it brought in was; DG recall 0.522 against learned's 0.552), so a text-only
# backend leaves doubted options in place, flagged with the reasons. Nor does it solve each item again without
# the picture's text: that solve only warns that an item is answerable without the picture, which a model
# that never saw the picture cannot tell, and it is two of the seven scoring calls of an item with a picture.
# A model that sees the picture keeps the blend, replaces once and solves without the picture.
AUTO_SELECTION: dict[bool, dict[str, Any]] = {
    False: {
        "pool_selection": "learned",
        "question_selection": "learned",
        "max_distractor_rounds": 0,
        "text_only": False,
    },
    True: {"pool_selection": "blend", "question_selection": "model", "max_distractor_rounds": 1, "text_only": True},
}


# ``--choose`` of coe generate and coe batch run: force either side whatever the backend.
CHOOSE = {"auto": {}, "rankers": AUTO_SELECTION[False], "model": AUTO_SELECTION[True]}


def choose_settings(choose: str) -> dict[str, Any]:
    """The graph settings ``--choose`` stands for; an unknown value is a one-line input error."""
    if choose not in CHOOSE:
        from coe.errors import InputError

        raise InputError(f"--choose must be {', '.join(CHOOSE)}, not {choose!r}")
    return dict(CHOOSE[choose])


def resolve_selection(s: GraphSettings, llm: LLMPlugin | None) -> tuple[GraphSettings, dict[str, Any] | None]:
    """``s`` with each "auto" selection (and an unset ``max_distractor_rounds`` or ``text_only``) replaced by its
    value for this backend (``supports_images``; no model: the rankers), and which selections were resolved and
    why for the trace (None when no selection was on "auto")."""
    sees = llm is not None and llm.supports_images
    update = {k: v for k, v in AUTO_SELECTION[sees].items() if getattr(s, k) in ("auto", None)}
    chosen = {k: v for k, v in update.items() if k.endswith("_selection")}
    if not chosen:  # the steps' trace shows a resolved selection; the rounds show in the recorded settings
        return s.model_copy(update=update), None
    why = (
        "the model sees the picture: the model's choices blended with the rankers'"
        if sees
        else "the model cannot see the picture: the learned rankers choose, and options its verifier doubts stay, "
        "flagged, for the reviewer"
    )
    return s.model_copy(update=update), {"auto": chosen, "why": why}


def settings_from(config: RunnableConfig | None) -> GraphSettings:
    """The run's settings as the nodes read them. ``configurable`` also carries LangGraph's own keys
    (``thread_id``, ...) and a server's, so only the model's fields are taken here; callers check theirs
    whole with ``check_settings`` before the run."""
    conf = (config or {}).get("configurable", {}) or {}
    return check_settings({k: v for k, v in conf.items() if k in _FIELDS})


# every node of every item reads its settings; pydantic's ``model_fields`` is a property, not a plain dict
_FIELDS = frozenset(GraphSettings.model_fields)


def check_settings(values: Mapping[str, Any], *, where: str = "") -> GraphSettings:
    """``values`` as ``GraphSettings``; an unknown or ill-typed setting is a one-line ``InputError`` (exit 2)
    naming it. ``where`` prefixes the message (``"--set: "``)."""
    from coe.errors import InputError

    try:
        return GraphSettings.model_validate(dict(values))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            raise InputError(
                f"{where}unknown setting {key!r} (settings: {', '.join(GraphSettings.model_fields)})"
            ) from None
        raise InputError(f"{where}setting {key}={err.get('input')!r}: {err['msg']}") from None


def parse_assignments(pairs: Iterable[str], *, where: str = "--set: ") -> dict[str, Any]:
    """``KEY=VALUE`` strings as settings: the value is JSON where it parses (``true``, ``3``, ``0.2``,
    ``["val"]``), else text; a list may also be written ``a,b``. Checked with ``check_settings``."""
    from coe.errors import InputError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError(f"{where}expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        field = GraphSettings.model_fields.get(key)
        if field is not None and get_origin(field.annotation) is list and isinstance(out[key], str):
            out[key] = [v.strip() for v in out[key].split(",") if v.strip()]
    check_settings(out, where=where)
    return out


def _value_kind(field: Any) -> str:
    """What a field takes, in words: its choices, or its type and bounds."""
    if get_origin(field.annotation) is Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(field.annotation))
    if get_origin(field.annotation) is list:
        return "list of text"
    kinds: dict[Any, str] = {int: "integer", int | None: "integer", float: "number", bool: "true/false"}
    kind = {**kinds, bool | None: "true/false", str: "text"}[field.annotation]
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    if low is not None and high is not None:
        return f"{kind} {low}–{high}"
    return f"{kind} ≥ {low}" if low is not None else kind


def markdown_table() -> str:
    """The README's settings table, written from the model (``python -m coe.graphs.settings``)."""
    rows = ["| setting | value | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in GraphSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default) if not isinstance(default, str) else default
        rows.append(f"| `{name}` | {_value_kind(field)} | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
