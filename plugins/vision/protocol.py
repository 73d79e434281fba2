"""What an image reader gives the generator: the image turned into text it can prompt with."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field


class ImageText(BaseModel):
    model_config = ConfigDict(frozen=True)

    caption: str = ""
    ocr_text: str = ""
    ocr_lines: list[str] = Field(default_factory=list)
    # Which channels produced the text, e.g. "ocr" or "ocr+scienceqa-caption".
    source: str
    # Set when the image was recognised as a ScienceQA image (its caption came from there).
    scienceqa_pid: str | None = None

    def as_prompt_text(self) -> str:
        parts = []
        if self.caption.strip():
            parts.append(f"Image caption: {self.caption.strip()}")
        if self.ocr_text.strip():
            parts.append(f"Text in the image: {self.ocr_text.strip()}")
        return "\n".join(parts)


class CaptionedImage(Protocol):
    """A known image's record: its dataset id and official caption (a ScienceQA problem is one)."""

    @property
    def pid(self) -> str: ...

    @property
    def caption(self) -> str: ...


class CaptionSource(Protocol):
    """Where a reader looks up a known image's caption (``coe.dataset_loaders.ScienceQA`` is one); plugins
    never import the dataset loaders, so the reader names only this."""

    def find_by_image(self, path: Path) -> CaptionedImage | None: ...


@runtime_checkable
class ImageReader(Protocol):
    """Turns an image into text (``coe.image_readers``). Plugins take a ``dataset`` keyword argument: a
    ``CaptionSource`` for known images' captions, or None; that is how the services build one."""

    name: str

    def describe(self, image: Image.Image, *, source_path: Path | None = None) -> ImageText: ...
