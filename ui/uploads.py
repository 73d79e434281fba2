"""Uploaded images: kept under COE_HOME by content once they prove to be images (wide grey levels as the
8-bit PNG the pipeline reads)."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import streamlit as st
from PIL import Image

from coe.atomic import write_bytes
from coe.errors import ConfigError, InputError
from coe.imageio import DEFAULT_MAX_IMAGE_BYTES, HIGH_DEPTH_MODES, load_image
from coe.paths import coe_home, writable_dir

from coe.text import one_line


def save_upload(name: str, data: bytes) -> Path:
    """Keep an upload under ``coe_home()/uploads`` (named by content) once it proves to be an image."""
    if len(data) > DEFAULT_MAX_IMAGE_BYTES:
        raise InputError(f"image too large: {name} ({len(data)} bytes, limit {DEFAULT_MAX_IMAGE_BYTES})")
    suffix = Path(name).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".img"
    folder = writable_dir(coe_home() / "uploads", "uploads", "COE_HOME")
    digest = hashlib.sha256(data).hexdigest()[:24]
    shown = folder / f"{digest}-8bit.png"
    if shown.exists():
        return shown
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        write_bytes(path, data)
    try:
        image = load_image(path)
    except InputError as exc:
        path.unlink(missing_ok=True)
        raise InputError(str(exc).replace(str(path), name)) from None
    with Image.open(path) as header:
        mode = header.mode
    if mode not in HIGH_DEPTH_MODES:
        return path
    # Browsers, and the previews' JPEG re-encoding, cannot take wide grey levels: keep the 8-bit picture
    # the pipeline reads instead, so preview and item see the same pixels.
    encoded = io.BytesIO()
    image.save(encoded, "PNG")
    write_bytes(shown, encoded.getvalue())
    path.unlink()
    return shown


def checked_upload(upload) -> tuple[Path | None, str | None]:
    """(path, error) for the current upload, checked once per uploaded file."""
    if upload is None:
        return None, None
    cache = st.session_state.setdefault("_uploads", {})
    if upload.file_id not in cache:
        try:
            cache[upload.file_id] = (save_upload(upload.name, upload.getvalue()), None)
        except (InputError, ConfigError) as exc:
            cache[upload.file_id] = (None, one_line(exc))
    return cache[upload.file_id]
