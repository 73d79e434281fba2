"""The console's *All settings*: one widget per graph setting, written from ``GraphSettings`` (so a new setting
shows up here by itself). A value left at its default keeps what the chosen variant sets."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import streamlit as st

from coe.graphs.settings import GraphSettings

# settings with their own widget above the form (Distractors, Difficulty, Misconception notes)
OWN_WIDGET = {"n_distractors": "n", "difficulty": "difficulty", "write_notes": "write_notes"}
PREFIX = "setting_"


def _bound(field: Any, name: str) -> Any:
    return next((getattr(m, name) for m in field.metadata if getattr(m, name, None) is not None), None)


def _widget(column: Any, name: str, field: Any) -> None:
    key, default, help_ = PREFIX + name, field.get_default(call_default_factory=True), field.description
    if get_origin(field.annotation) is Literal:
        choices = list(get_args(field.annotation))
        column.selectbox(name, choices, index=choices.index(default), key=key, help=help_)
    elif field.annotation is bool:
        column.checkbox(name, value=default, key=key, help=help_)
    elif field.annotation == bool | None:  # unset: decided by the backend
        choices = [None, True, False]
        column.selectbox(
            name,
            choices,
            index=choices.index(default),
            format_func=lambda v: "by backend" if v is None else ("on" if v else "off"),
            key=key,
            help=help_,
        )
    elif field.annotation is int or field.annotation == int | None:
        # an unset optional number is decided by the backend (README: the default, by backend)
        column.number_input(
            name,
            value=default,
            step=1,
            min_value=_bound(field, "ge"),
            max_value=_bound(field, "le"),
            placeholder="by backend",
            key=key,
            help=help_,
        )
    elif field.annotation is float:
        column.number_input(
            name,
            value=float(default),
            step=0.05,
            format="%.2f",
            min_value=_bound(field, "ge"),
            max_value=_bound(field, "le"),
            key=key,
            help=help_,
        )
    else:  # a list of text
        column.text_input(name, value=", ".join(default), key=key, help=f"{help_} (comma-separated)")


def settings_form() -> None:
    with st.popover("All settings", width="stretch"):
        st.caption(
            "Every setting of the graph (README: Configuration). A value left at its default keeps what "
            "the variant sets; `seed` is the first alternative's, *Generate again* counts on from it."
        )
        columns = st.columns(3)
        names = [n for n in GraphSettings.model_fields if n not in OWN_WIDGET]
        for i, name in enumerate(names):
            _widget(columns[i % 3], name, GraphSettings.model_fields[name])


def changed_settings(state: Any) -> dict[str, Any]:
    """The settings the form sets away from their defaults."""
    out: dict[str, Any] = {}
    for name, field in GraphSettings.model_fields.items():
        if name in OWN_WIDGET or PREFIX + name not in state:
            continue
        value = state[PREFIX + name]
        if get_origin(field.annotation) is list:
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        if value != field.get_default(call_default_factory=True):
            out[name] = value
    return out
