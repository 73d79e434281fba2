"""The trace of a run, one collapsible entry per graph step, with a text filter over all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from coe.errors import CoeError
from coe.ui.markdown_text import literal


def entry_label(index: int, entry: dict[str, Any]) -> str:
    node = entry.get("node", "?")
    parts = [f"{index + 1}. {node}"]
    if entry.get("attempt") and node in ("distractors", "validate"):
        parts[0] += f" (attempt {entry['attempt']})"
    if node == "review" and entry.get("action"):
        parts[0] += f": {entry['action']}"
    parts.append(f"{float(entry.get('seconds') or 0):.2f} s")
    usage = entry.get("usage") or {}
    if usage:
        parts.append(f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens")
    if entry.get("skipped"):
        parts.append(f"skipped ({entry['skipped']})")
    if "valid" in entry and node in ("validate", "review"):
        parts.append("valid" if entry.get("valid") or entry.get("valid_after_repair") else "invalid")
    if entry.get("repair"):
        parts.append("repaired")
    if entry.get("error"):
        parts.append("error")
    return " · ".join(parts)


def matches(entry: dict[str, Any], needle: str) -> bool:
    if not needle:
        return True
    return needle.lower() in json.dumps(entry, ensure_ascii=False, default=str).lower()


def _thumbnail(exemplar_id: str, dataset, has_image: bool) -> None:
    path = None
    if dataset is not None:
        try:
            path = dataset.get(exemplar_id).image_path
        except CoeError:  # unknown id or a broken record: fall back to the placeholder
            path = None
    if path is not None and Path(path).is_file():
        st.image(str(path), width=96)
    elif has_image:
        st.caption("image not available locally")
    else:
        st.caption("no image (text-only item)")


def _exemplars(entry: dict[str, Any], known: dict[str, dict[str, Any]], dataset) -> None:
    rows = entry.get("exemplars") or []
    st.markdown(f"**Retrieved exemplars** ({len(rows)})")
    if not rows:
        st.caption("none")
    for row in rows:
        ex = known.get(str(row.get("id")), {})
        thumb, text = st.columns([1, 5])
        with thumb:
            _thumbnail(str(row.get("id")), dataset, bool(ex.get("has_image")))
        with text:
            signals = ", ".join(f"{k} {v:.2f}" for k, v in (row.get("signals") or {}).items())
            st.markdown(f"`#{row.get('id')}` score **{float(row.get('score') or 0):.3f}** ({signals})")
            if ex:
                options = ", ".join([ex.get("answer") or "", *(ex.get("distractors") or [])])
                st.caption(f"{literal(ex.get('question'))} → {literal(ex.get('answer'))} (options: {literal(options)})")
    extra = {k: v for k, v in entry.items() if k not in ("node", "seconds", "exemplars", "inputs")}
    if extra:
        st.markdown("**Retrieval details**")
        st.json(extra, expanded=False)


def render_entry(entry: dict[str, Any], known: dict[str, dict[str, Any]], dataset) -> None:
    node = entry.get("node")
    st.markdown("**Inputs**")
    if "inputs" in entry:
        st.json(entry["inputs"], expanded=False)
    else:
        st.caption("not recorded for this run")
    if entry.get("skipped"):
        st.info(f"Skipped: {entry['skipped']}")
    if node == "describe_image" and entry.get("output"):
        st.markdown(f"**Image reader** `{entry.get('reader', '')}`")
        st.json(entry["output"], expanded=False)
    if node == "retrieve" and not entry.get("skipped"):
        _exemplars(entry, known, dataset)
    for i, msg in enumerate(entry.get("messages") or []):
        if i == 0:
            st.markdown(f"**Prompt sent** (`{entry.get('prompt_id', '')}`)")
        images = f", {msg.get('images')} image(s)" if msg.get("images") else ""
        st.caption(f"{msg.get('role')}{images}")
        st.code(msg.get("content", ""), language=None, wrap_lines=True)
    for i, raw in enumerate(entry.get("raw") or []):
        st.markdown(f"**Raw model output**{f' (try {i + 1})' if len(entry['raw']) > 1 else ''}")
        st.code(raw, language=None, wrap_lines=True)
    for err in entry.get("parse_errors") or []:
        st.warning(f"Parse error: {err}")
    if "parsed" in entry:
        st.markdown("**Parsed output**")
        st.json({"value": entry["parsed"]}, expanded=True)
    if entry.get("kept"):
        st.markdown(f"**Kept by the reviewer:** {literal(', '.join(entry['kept']))}")
    if node in ("validate", "review"):
        ok = entry.get("valid") or entry.get("valid_after_repair")
        verdict = ":material/check_circle: valid" if ok else ":red[:material/cancel: invalid]"
        st.markdown("**Validator verdict:** " + verdict)
        for problem in entry.get("problems") or []:
            st.markdown(f"- {literal(problem)}")
        if entry.get("repair"):
            st.markdown(
                f"**Repair:** {entry['repair']}: {literal(', '.join(entry.get('filled') or []))} "
                f"({'valid' if entry.get('valid_after_repair') else 'still invalid'} after repair)"
            )
        if node == "review":
            st.json({k: entry.get(k) for k in ("action", "edits", "keep", "rejected") if k in entry}, expanded=False)
    if entry.get("error"):
        st.error(entry["error"])
    usage = entry.get("usage") or {}
    st.caption(
        f"{float(entry.get('seconds') or 0):.3f} s"
        + (
            f" · {usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens"
            if usage
            else ""
        )
        + (f" · model {entry['model']}" if entry.get("model") else "")
    )


def render_trace(
    trace: list[dict[str, Any]], *, key: str, exemplars: list[dict[str, Any]] | None = None, dataset=None
) -> None:
    """Every step as an expander; the filter keeps the steps whose content contains the text."""
    known = {str(e.get("id")): e for e in exemplars or []}
    needle = st.text_input(
        "Filter the trace", key=f"{key}_filter", placeholder="e.g. a word of the prompt, 'invalid', 'retrieve'"
    )
    shown = [(i, e) for i, e in enumerate(trace) if matches(e, needle.strip())]
    total_tokens = sum(sum((e.get("usage") or {}).values()) for e in trace)
    total_seconds = sum(float(e.get("seconds") or 0) for e in trace)
    st.caption(f"{len(shown)} of {len(trace)} steps shown · {total_seconds:.2f} s · {total_tokens} tokens in all")
    for i, entry in shown:
        with st.expander(entry_label(i, entry), expanded=bool(needle.strip())):
            render_entry(entry, known, dataset)
