"""CPU image reader: RapidOCR text lines, plus the dataset caption for known ScienceQA images.

No captioning model runs here; a caption is only available when the image is one of the
ScienceQA images (matched by path or identical bytes), whose official captions ship as JSON.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from coe.errors import CoeError, ConfigError
from coe.plugins.vision.protocol import CaptionSource, ImageText
from coe.text import one_line

MAX_SIDE = 1600
MAX_ASPECT = 3.0

_engine_lock = threading.Lock()


@functools.cache
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise ConfigError("OCR needs the rapidocr-onnxruntime package: pip install rapidocr-onnxruntime") from exc
    # Score filtering is done per reader, so the shared engine keeps every line.
    return RapidOCR(text_score=0.0)


# The bundled recognition model is Chinese+English: on English diagrams it sometimes
# emits full-width punctuation (kept, as ASCII) or CJK characters (misread lettering, dropped).
_FULLWIDTH: dict[int, str | int] = {0x3000: " ", **{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}}
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff5f-\uffef]")


def _reading_order(items: list[tuple[list, str, float]]) -> list[tuple[list, str, float]]:
    """Group boxes into rows by vertical overlap, then left to right within a row.

    RapidOCR's own order compares box tops with a fixed 10 px tolerance, so on one row a
    word with ascenders ("rabbit") sorts before one without ("grass").
    """

    def extent(box: list) -> tuple[float, float, float]:
        xs = [p[0] for p in box]
        ys = [p[1] for p in box]
        return min(xs), min(ys), max(ys)

    rows: list[list[tuple[float, tuple]]] = []
    row_top = row_bottom = 0.0
    for item in sorted(items, key=lambda it: sum(extent(it[0])[1:]) / 2):
        x0, y0, y1 = extent(item[0])
        if rows:
            overlap = min(y1, row_bottom) - max(y0, row_top)
            if overlap >= 0.5 * min(y1 - y0, row_bottom - row_top):
                rows[-1].append((x0, item))
                row_top, row_bottom = min(row_top, y0), max(row_bottom, y1)
                continue
        rows.append([(x0, item)])
        row_top, row_bottom = y0, y1
    return [item for row in rows for _x, item in sorted(row, key=lambda r: r[0])]


def _bounded(image: Image.Image, max_side: int) -> Image.Image:
    longest = max(image.size)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _padded(image: Image.Image, max_aspect: float) -> Image.Image:
    """Pad a long thin image with white until its sides are within ``max_aspect``.

    RapidOCR scales the short side up to 736 px, so a 695x94 table would be OCR'd at
    5443x736 (4 s on two cores, and words break apart); padded to 695x232 it takes <1 s.
    """
    w, h = image.size
    if w > max_aspect * h:
        size, offset = (w, round(w / max_aspect)), (0, (round(w / max_aspect) - h) // 2)
    elif h > max_aspect * w:
        size, offset = (round(h / max_aspect), h), ((round(h / max_aspect) - w) // 2, 0)
    else:
        return image
    canvas = Image.new("RGB", size, (255, 255, 255))
    canvas.paste(image, offset)
    return canvas


class OcrCaptionReader:
    name = "ocr-caption"

    def __init__(
        self,
        dataset: CaptionSource | None = None,
        *,
        use_dataset_caption: bool = True,
        min_confidence: float = 0.5,
        max_side: int = MAX_SIDE,
        drop_cjk: bool = True,
    ) -> None:
        self.dataset = dataset
        self.use_dataset_caption = use_dataset_caption
        self.min_confidence = min_confidence
        self.max_side = max_side
        self.drop_cjk = drop_cjk

    def warm(self) -> None:
        """Load the OCR engine now (about a second on 2 cores) rather than at the first image: the services
        call it while the language model loads."""
        with _engine_lock:
            _engine()

    def ocr_lines(self, image: Image.Image) -> list[str]:
        """Recognised lines at or above ``min_confidence``, top-to-bottom, left-to-right."""
        rgb = _bounded(image if image.mode == "RGB" else image.convert("RGB"), self.max_side)
        rgb = _padded(rgb, MAX_ASPECT)
        # RapidOCR treats a bare array as OpenCV BGR.
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        with _engine_lock:
            engine = _engine()
        try:
            result, _elapsed = engine(bgr)
        except Exception as exc:  # runtime errors from onnxruntime/OpenCV span many lines
            detail = one_line(exc)[:300]
            raise CoeError(f"OCR failed on the image ({type(exc).__name__}: {detail})") from exc
        lines = []
        for _box, text, score in _reading_order(list(result or [])):
            if float(score) < self.min_confidence:
                continue
            text = str(text)
            if self.drop_cjk:
                text = _CJK.sub("", text.translate(_FULLWIDTH))
            text = one_line(text)
            if text:
                lines.append(text)
        return lines

    def describe(self, image: Image.Image, *, source_path: Path | None = None) -> ImageText:
        lines = self.ocr_lines(image)
        caption, pid, source = "", None, "ocr"
        if self.dataset is not None and self.use_dataset_caption and source_path is not None:
            problem = self.dataset.find_by_image(source_path)
            if problem is not None and problem.caption:
                caption, pid, source = problem.caption, problem.pid, "ocr+scienceqa-caption"
        return ImageText(caption=caption, ocr_text=" ".join(lines), ocr_lines=lines, source=source, scienceqa_pid=pid)
