"""Where coe keeps and finds things. Every location can be overridden by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def coe_home() -> Path:
    """Root of coe's own state (models, index, traces): ``$COE_HOME`` or ``~/.cache/coe``."""
    return Path(os.environ.get("COE_HOME") or Path.home() / ".cache" / "coe").expanduser()


def models_dir() -> Path:
    return Path(os.environ.get("COE_MODELS_DIR") or coe_home() / "models").expanduser()


def chroma_dir() -> Path:
    return Path(os.environ.get("COE_CHROMA_DIR") or coe_home() / "chroma").expanduser()


def scienceqa_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The ScienceQA folder: explicit argument, ``$COE_SCIENCEQA_DIR``, or ``../shared/data/scienceqa``
    next to the current directory or next to the source tree (first that exists)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("COE_SCIENCEQA_DIR")
    if env:
        return Path(env).expanduser()
    candidates = [Path.cwd() / ".." / "shared" / "data" / "scienceqa",
                  _SOURCE_ROOT / ".." / "shared" / "data" / "scienceqa"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[0]
