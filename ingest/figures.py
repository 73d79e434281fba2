"""Figures as files beside the index: each embedded picture is checked like a user's image, stored once
under its digest, and described by its caption (or the nearest text) so it can be linked to its passage."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coe.imageio import load_image_bytes
from coe.text import one_line

# Icons, bullets and rules are pictures too; a figure worth a question is at least this big.
MIN_SIDE = 48
MIN_AREA = 96 * 96
MAX_CAPTION_CHARS = 300
CAPTION = re.compile(
    r"^\s*(fig(ure)?|image|diagram|chart|illustration|plate|photo)\.?\s*[\dIVXivx]+"
    r"([.\-]\d+)*\s*[.:)\u2013\u2014-]?",
    re.I,
)
_KEEP_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif"}


@dataclass
class Figure:
    id: str
    path: str  # relative to the material's folder
    caption: str
    width: int
    height: int
    captioned: bool = False  # a real caption ("Figure 3: ...", alt text, figcaption), not merely nearby text


def is_caption(text: str) -> bool:
    return bool(CAPTION.match(text or ""))


def save_figure(
    folder: Path, data: bytes, *, fig_id: str, caption: str, label: str, captioned: bool | None = None
) -> Figure | None:
    """Store one embedded picture under ``folder/figures``; ``None`` for one too small to be a figure.
    A picture that is not a readable image within coe's limits raises ``InputError``."""
    from PIL import Image

    img = load_image_bytes(data, label=label)
    width, height = img.size
    if min(width, height) < MIN_SIDE or width * height < MIN_AREA:
        return None
    with Image.open(io.BytesIO(data)) as probe:
        ext = _KEEP_FORMATS.get(probe.format or "")
    if ext is None:  # JPEG 2000, TIFF, CMYK JPEG, ...: stored as PNG so any viewer and model can read it
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data, ext = buf.getvalue(), ".png"
    name = hashlib.sha256(data).hexdigest()[:20] + ext
    target = folder / "figures" / name
    if not target.exists():
        from coe.atomic import write_bytes

        write_bytes(target, data)
    return Figure(
        id=fig_id,
        path=f"figures/{name}",
        caption=one_line(caption or "")[:MAX_CAPTION_CHARS],
        width=width,
        height=height,
        captioned=is_caption(caption) if captioned is None else captioned,
    )


def dump(figures: list[Figure]) -> str:
    """Figures as one metadata value (Chroma metadata is flat)."""
    return json.dumps([asdict(f) for f in figures], ensure_ascii=False)


def load(value: Any) -> list[dict[str, Any]]:
    try:
        out = json.loads(value or "[]")
    except (TypeError, ValueError):
        return []
    return out if isinstance(out, list) else []


def nearest_caption(lines: list[tuple[float, float, str]], box: tuple[float, float, float, float] | None) -> str:
    """The caption of a picture at ``box`` (x0, y0, x1, y1) among text ``lines`` (x, y, text): a "Figure N"
    line near it first, else the closest line (above or below: documents say "produces:" above a picture
    as often as they caption it below). Without a box, the page's first "Figure N" line or its first line."""
    lines = [(x, y, one_line(t)) for x, y, t in lines if len(one_line(t)) >= 3 and not one_line(t).isdigit()]
    if not lines:
        return ""
    if box is None:
        captions = [t for _, _, t in lines if is_caption(t)]
        return captions[0] if captions else lines[0][2]
    low, high = min(box[1], box[3]), max(box[1], box[3])

    def gap(y: float) -> float:
        return 0.0 if low <= y <= high else min(abs(y - low), abs(y - high))

    near = [(gap(y), t) for _, y, t in lines if is_caption(t) and gap(y) <= 150]
    return min(near or [(gap(y), t) for _, y, t in lines])[1]
