"""Where coe keeps and finds things. Every location can be overridden by a ``COE_*`` variable (see
``coe.settings``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from coe.errors import ConfigError
from coe.settings import settings

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def coe_home() -> Path:
    """Root of coe's own state (models, index, traces): ``$COE_HOME`` or ``~/.cache/coe``."""
    return settings().home


def models_dir() -> Path:
    return settings().models_dir or coe_home() / "models"


def chroma_dir() -> Path:
    """The local index folder, created and checked writable: Chroma writes its database even to read it."""
    return writable_dir(settings().chroma_dir or coe_home() / "chroma", "exemplar index", "COE_CHROMA_DIR")


def state_dir_error(path: Path, what: str, variable: str, exc: OSError) -> ConfigError:
    """One line for a state folder coe cannot write: which folder, why, and what to do."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    reason = (
        f"{probe} is a file, not a directory" if probe.exists() and not probe.is_dir() else exc.strerror or str(exc)
    )
    return ConfigError(
        f"cannot write to the {what} directory {path} ({reason}); make it writable, or set "
        f"{variable}{'' if variable == 'COE_HOME' else ' (or COE_HOME)'} to a writable directory"
    )


def writable_dir(path: str | os.PathLike, what: str, variable: str) -> Path:
    """``path``, created if missing, once a file can really be created in it (permissions, a read-only mount
    and a file in the way all show only then); else ``state_dir_error``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise state_dir_error(path, what, variable, exc) from None
    return path


def scienceqa_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The ScienceQA folder: explicit argument, ``$COE_SCIENCEQA_DIR``, or ``../shared/data/scienceqa``
    next to the current directory or next to the source tree (first that exists)."""
    if explicit:
        return Path(explicit).expanduser()
    env = settings().scienceqa_dir
    if env:
        return env
    candidates = [
        Path.cwd() / ".." / "shared" / "data" / "scienceqa",
        _SOURCE_ROOT / ".." / "shared" / "data" / "scienceqa",
    ]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[0]
