"""What a model's reply text becomes: cut at stop strings, its JSON read, or salvaged when the token limit
cut it off, and checked against the request's schema. Every backend reads replies here.

Reading and salvaging both use ``json_repair``, which finds the JSON amid prose or a code fence, mends
quoting slips and closes open strings, arrays and objects. It keeps a half-written string as if it were
complete, but a value the token limit cut off is not an answer: the reply is repaired with a marker
appended, so whatever value the cut fell into holds the marker. ``parse_json_text`` refuses such a reply;
callers then either drop marked values (``repair_json``) or take a cut-off text and keep what of it is
complete (``cut_off_value``, used for long rationales). Model output is untrusted: only
``parse_json_text`` raises, and only ValueError.
"""

from __future__ import annotations

import json
from typing import Any

import json_repair

# Letters make json_repair read the marker as a value where a key is left without one ("b": <cut>), and
# neither is a hex digit nor an escape letter, so a cut inside "\u00" cannot swallow them; the
# private-use character keeps the marker from ever matching model text. json_repair may eat a letter
# (after a closed empty array), so a value is marked when it holds the character.
CUT = "zz\ue000"
_MARK = CUT[-1]


def salvage_json(text: str) -> Any | None:
    """The JSON a reply holds, closed where it was cut off; the value the cut fell into (a string, a
    number, a literal, a key without its value) holds the ``CUT`` marker. None when the text holds no JSON."""
    if "{" not in text and "[" not in text:
        return None
    try:
        obj = json_repair.loads(text + CUT)
    except (RecursionError, ValueError):  # nesting deeper than the parser allows: no answer in it
        return None
    return obj if isinstance(obj, (dict, list)) else None


def _holds_cut(obj: Any) -> bool:
    if isinstance(obj, str):
        return _MARK in obj
    if isinstance(obj, dict):
        return any(_MARK in k or _holds_cut(v) for k, v in obj.items())
    return isinstance(obj, list) and any(map(_holds_cut, obj))


def parse_json_text(text: str) -> Any:
    """The JSON a reply holds, whole: bare, in a code fence or amid prose; of several top-level values, the
    first. ValueError when there is none, or when the token limit cut it off (see ``repair_json``)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        pass
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON object in model output")
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]  # a whole value, whatever prose follows it
    except (ValueError, RecursionError):
        pass
    obj = salvage_json(text[start:])
    if isinstance(obj, list) and obj and text[start] == "{":
        obj = obj[0]  # json_repair lists the values of a reply that holds several; the reply opened with this one
    if obj is None:
        raise ValueError("no JSON object in model output")
    if _holds_cut(obj):
        raise ValueError("the JSON in the model output is cut off")
    return obj


def schema_data(text: str, schema: dict | None) -> Any:
    """The parsed JSON of a reply to a schema-bound request; None when there was no schema or no JSON.
    Callers validate and repair: a truncated object is reported there, not here."""
    if schema is None:
        return None
    try:
        return parse_json_text(text)
    except ValueError:
        return None


_GONE = object()  # a dropped value (None is a JSON value of its own)


def _drop_cut(obj: Any) -> Any:
    """``obj`` without its cut-off values; a container that held nothing but them goes too."""
    if isinstance(obj, str):
        return _GONE if _MARK in obj else obj
    if isinstance(obj, dict):
        kept = {k: v for k, v in ((k, _drop_cut(v)) for k, v in obj.items() if _MARK not in k) if v is not _GONE}
        return _GONE if obj and not kept else kept
    if isinstance(obj, list):
        left = [v for v in map(_drop_cut, obj) if v is not _GONE]
        return _GONE if obj and not left else left
    return obj


def repair_json(text: str) -> Any | None:
    """The complete part of a cut-off JSON reply: open arrays and objects closed, the value the cut fell
    into dropped with its key (a half-written value is not an answer; callers re-ask or salvage with
    ``cut_off_value``). None when nothing complete is left."""
    obj = salvage_json(text)
    kept = _GONE if obj is None else _drop_cut(obj)
    return None if kept is _GONE else kept


def cut_off_value(text: str, key: str) -> str | None:
    """The text of top-level ``key`` when the reply was cut off inside it (without the marker), else None.
    An unquoted value cut off there reads as text too: callers keep only what is complete in it."""
    obj = salvage_json(text)
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value.endswith(CUT):
        return None
    return value.removesuffix(CUT)


def parse_and_validate(text: str, schema: dict | None) -> tuple[Any, list[str]]:
    """The reply's JSON (repaired if cut off) and the schema problems; data is None if none fit."""
    import jsonschema

    problems: list[str] = []
    candidates = []
    try:
        candidates.append(parse_json_text(text))
    except ValueError as exc:
        problems.append(f"not JSON: {exc}")
    repaired = repair_json(text)
    if repaired is not None and repaired not in candidates:
        candidates.append(repaired)
    for obj in candidates:
        if schema is None:
            return obj, []
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        if not errors:
            return obj, []
        problems.extend(e.message for e in errors[:3])
    return None, problems


def stop_at(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
