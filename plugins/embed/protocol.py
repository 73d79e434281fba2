"""Text embedders map strings to L2-normalised vectors; retrieval compares them by dot product."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextEmbedder(Protocol):
    """Strings into vectors (``coe.text_embedders``). Plugins are built with no arguments, or with
    ``max_length`` (tokens a text is cut to; material passages ask for more than exemplar fields)."""

    name: str
    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dim), each row of unit length."""
        ...


@runtime_checkable
class ImageEmbedder(Protocol):
    """Images and texts into one space (a CLIP-style pair of towers), so either can query the other.

    Plugins take ``model`` and ``pretrained`` keyword arguments, which is how the CLI and services build one.
    """

    name: str
    model_id: str
    dim: int

    def embed_images(self, images: list) -> np.ndarray:
        """Images (``PIL.Image``, file paths or encoded bytes) to float32 (len(images), dim), unit rows."""
        ...

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Texts through the text tower to float32 (len(texts), dim), unit rows."""
        ...
