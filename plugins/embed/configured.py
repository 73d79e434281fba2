"""The image embedder retrieval uses, if any: named on the command line or by ``COE_IMAGE_EMBEDDER``.

Off by default: OCR text stays the offline CPU path, and an image index is built only on request.
"""

from __future__ import annotations

from coe.plugins import registry
from coe.settings import settings


def configured_image_embedder(name: str | None = None, *, model: str | None = None, pretrained: str | None = None):
    """An image embedder plugin built from the arguments, each falling back to its variable
    (``COE_IMAGE_EMBEDDER``, ``COE_IMAGE_MODEL``, ``COE_IMAGE_WEIGHTS``); ``None`` when no name is set."""
    env = settings()
    name = name or registry.configured_name("image_embedder")
    if not name or name == "none":
        return None
    kwargs = {}
    model = model or (env.image_model or "").strip()
    pretrained = pretrained or (env.image_weights or "").strip()
    if model:
        kwargs["model"] = model
    if pretrained:
        kwargs["pretrained"] = pretrained
    return registry.create("image_embedder", name, **kwargs)


def similarity_embedder(retrieval_embedder):
    """The embedder whose cosines the checks' thresholds and the evaluation's embedding scores read: the
    model a fitted encoder imitates (its ``teacher``, an entry-point name: MiniLM for ``minilm-static``),
    else the retrieval embedder itself. The thresholds (same question 0.9, duplicate options 0.93, the
    answer-fit floor) were set on MiniLM cosines, which a static encoder's only approximate."""
    teacher = getattr(retrieval_embedder, "teacher", None)
    return registry.create("text_embedder", teacher) if teacher else retrieval_embedder
