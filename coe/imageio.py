"""Safe loading of user-supplied images and text.

Every file here may come from an untrusted user, so each failure becomes a one-line
``InputError`` (exit 2) instead of a traceback, and image size is checked from the
header before any pixel data is decoded (decompression bombs).

Decoded pictures are kept in a small LRU (bounded by pixels): one item's picture is read by its OCR step
and then by every model call that shows it to a vision-language model (question, rationale,
distractors, verification, notes), and a large photo costs far more to decode than to copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path

from cachetools import LRUCache
from PIL import Image

from coe.errors import InputError
from coe.text import one_line

MiB = 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_IMAGE_BYTES = 50 * MiB
DEFAULT_MAX_TEXT_BYTES = 10 * MiB
# About 190 MB of RGB: a few dozen ScienceQA-sized pictures, or a handful of camera photos.
DECODED_CACHE_PIXELS = 64_000_000

_decoded: LRUCache = LRUCache(maxsize=DECODED_CACHE_PIXELS, getsizeof=lambda img: img.width * img.height)
_decoded_lock = threading.Lock()


def clear_decoded_images() -> None:
    """Forget every decoded picture (the next read decodes its file again)."""
    with _decoded_lock:
        _decoded.clear()


def _remembered(key: Hashable, decode: Callable[[], Image.Image]) -> Image.Image:
    """A copy of the picture decoded under ``key``, decoding it on a miss: callers (third-party readers
    among them) may change what they get without changing what the next caller gets."""
    with _decoded_lock:
        image = _decoded.get(key)
    if image is None:
        image = decode()
        if image.width * image.height <= DECODED_CACHE_PIXELS:
            with _decoded_lock:
                _decoded[key] = image
    return image.copy()


def _regular_file(path: str | os.PathLike, *, kind: str, max_bytes: int) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{kind} not found: {p}")
    if p.is_dir():
        raise InputError(f"{kind} path is a directory, not a file: {p}")
    if not p.is_file():
        # FIFOs and devices would block or stream forever.
        raise InputError(f"{kind} path is not a regular file: {p}")
    size = p.stat().st_size
    if size > max_bytes:
        raise InputError(f"{kind} too large: {p} ({size} bytes, limit {max_bytes})")
    return p


def _reason(exc: BaseException) -> str:
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# Grey levels wider than 8 bits: 16-bit PNG/TIFF ("I;16*"), 32-bit integer ("I") and float ("F").
HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def _to_8bit(img: Image.Image) -> Image.Image:
    """Wide grey levels as 8-bit "L". Pillow's own conversion clips them at 255, which turns a 16-bit
    picture white: 16-bit values are scaled by 255/65535; "I" and "F" by 255/65535 when they fit 16 bits
    (how 16-bit files often arrive), float in [0, 1] by 255, and otherwise from their real range."""
    import numpy as np

    values = np.asarray(img, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (low >= 0 and 255 < high <= 65535):
        scaled = values * (255 / 65535)
    elif img.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in HIGH_DEPTH_MODES:
        img = _to_8bit(img)
    # Transparent pixels are often black underneath; flatten onto white so drawn
    # diagrams stay legible for OCR and captioning.
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def load_image(
    path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> Image.Image:
    """Open an image file as an RGB ``PIL.Image`` or raise ``InputError`` with one line. A file read before
    and unchanged since (same size and modification time) is not decoded again."""
    p = _regular_file(path, kind="image", max_bytes=max_bytes)
    st = p.stat()
    key = ("file", str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, max_pixels)
    return _remembered(key, lambda: _decode(lambda: Image.open(p), str(p), max_pixels))


def load_image_bytes(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    label: str = "image bytes",
) -> Image.Image:
    """``load_image`` for an encoded image already in memory (an upload, a database blob)."""
    if len(data) > max_bytes:
        raise InputError(f"image too large: {label} ({len(data)} bytes, limit {max_bytes})")
    key = ("bytes", hashlib.blake2b(data, digest_size=16).digest(), max_pixels)
    return _remembered(key, lambda: _decode(lambda: Image.open(io.BytesIO(data)), label, max_pixels))


def check_image(img: Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS, label: str = "image") -> Image.Image:
    """An image the caller already decoded, held to the same pixel limit and returned as RGB."""
    width, height = img.size
    if width * height > max_pixels:
        raise InputError(f"image too large: {label} ({width}x{height} pixels, limit {max_pixels})")
    return _to_rgb(img)


def _decode(open_image, label: str, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; make it fatal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with open_image() as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise InputError(f"image too large: {label} ({width}x{height} pixels, limit {max_pixels})")
                probe.verify()
            # verify() leaves the image unusable, so decode from a fresh handle.
            with open_image() as img:
                img.load()
                return _to_rgb(img)
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InputError(f"image too large: {label} ({_reason(exc)})") from exc
        except Exception as exc:  # any decoder failure means the same thing to the user
            raise InputError(f"not a readable image: {label} ({_reason(exc)})") from exc


def check_text(value: object, *, name: str, max_chars: int) -> str:
    """Return ``value`` if it is usable text, else raise ``InputError`` naming ``name``."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable argv bytes arrive as lone surrogates
        raise InputError(f"{name} is not valid UTF-8 text") from exc
    if "\x00" in value:
        raise InputError(f"{name} contains a NUL character")
    if len(value) > max_chars:
        raise InputError(f"{name} too long: {len(value)} characters (limit {max_chars})")
    return value


def read_text_file(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> str:
    """Read a UTF-8 text file (a leading BOM is dropped); anything else is an ``InputError``."""
    p = _regular_file(path, kind="text file", max_bytes=max_bytes)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read text file: {p} ({_reason(exc)})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {p} (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc
