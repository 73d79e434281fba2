"""Where coe keeps and finds things. Every location can be overridden by a ``COE_*`` variable (see
``coe.settings``)."""

from __future__ import annotations

import os
from pathlib import Path

from coe.settings import settings

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def coe_home() -> Path:
    """Root of coe's own state (models, index, traces): ``$COE_HOME`` or ``~/.cache/coe``."""
    return settings().home


def models_dir() -> Path:
    return settings().models_dir or coe_home() / "models"


def chroma_dir() -> Path:
    return settings().chroma_dir or coe_home() / "chroma"


def scienceqa_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The ScienceQA folder: explicit argument, ``$COE_SCIENCEQA_DIR``, or ``../shared/data/scienceqa``
    next to the current directory or next to the source tree (first that exists)."""
    if explicit:
        return Path(explicit).expanduser()
    env = settings().scienceqa_dir
    if env:
        return env
    candidates = [Path.cwd() / ".." / "shared" / "data" / "scienceqa",
                  _SOURCE_ROOT / ".." / "shared" / "data" / "scienceqa"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[0]
