"""Uploaded images: kept under COE_HOME by content once they prove to be images."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import streamlit as st

from coe.atomic import write_bytes
from coe.errors import InputError
from coe.imageio import DEFAULT_MAX_IMAGE_BYTES, load_image
from coe.paths import coe_home

from coe.ui.resources import one_line


def save_upload(name: str, data: bytes) -> Path:
    """Keep an upload under ``coe_home()/uploads`` (named by content) once it proves to be an image."""
    if len(data) > DEFAULT_MAX_IMAGE_BYTES:
        raise InputError(f"image too large: {name} ({len(data)} bytes, limit {DEFAULT_MAX_IMAGE_BYTES})")
    suffix = Path(name).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
    folder = coe_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not path.exists():
        write_bytes(path, data)
    try:
        load_image(path)
    except InputError as exc:
        path.unlink(missing_ok=True)
        raise InputError(str(exc).replace(str(path), name)) from None
    return path


def checked_upload(upload) -> tuple[Path | None, str | None]:
    """(path, error) for the current upload, checked once per uploaded file."""
    if upload is None:
        return None, None
    cache = st.session_state.setdefault("_uploads", {})
    if upload.file_id not in cache:
        try:
            cache[upload.file_id] = (save_upload(upload.name, upload.getvalue()), None)
        except InputError as exc:
            cache[upload.file_id] = (None, one_line(exc))
    return cache[upload.file_id]
