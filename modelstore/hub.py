"""Resolve vision-language model specs for the transformers backends to a local checkpoint directory.

A spec is a hub preset name (``qwen2-vl-2b``), a local directory holding ``config.json``, or a hub repo id
(``Qwen/Qwen2-VL-2B-Instruct``). Offline (``HF_HUB_OFFLINE`` or ``COE_OFFLINE``) a preset or repo id that
has no local copy fails at once, naming the directory to use instead; nothing waits on the network.
"""

from __future__ import annotations

import re
from pathlib import Path

from coe.errors import ConfigError, InputError
from coe.modelstore.presets import HUB_PRESETS
from coe.modelstore.store import offline
from coe.paths import models_dir

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def local_copy(name: str) -> Path:
    """Where a hub preset's local copy is looked for: ``MODELS_DIR/NAME`` (a checkpoint directory)."""
    return models_dir() / name


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _download(repo: str, label: str, local: Path | None) -> Path:
    where = f" or put it at {local}" if local else ""
    if offline():
        raise ConfigError(
            f"cannot fetch {label} from the model hub while offline (HF_HUB_OFFLINE/COE_OFFLINE); "
            f"download it where the hub is reachable (`hf download {repo} --local-dir DIR`) and pass that "
            f"directory as the model{where}"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(
            f"{label} needs huggingface_hub (pip install 'coe[vlm]'), or pass a local checkpoint directory{where}"
        ) from None
    try:
        return Path(snapshot_download(repo_id=repo))
    except Exception as exc:  # the hub client raises many unrelated types; all mean "not available"
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(
            f"could not fetch {repo} from the hub: {type(exc).__name__}: {first}; "
            f"pass a local checkpoint directory instead{where}"
        ) from None


def resolve_vlm(spec: str | None) -> tuple[str, Path]:
    """(display name, checkpoint directory) for a hub preset, local directory or hub repo id."""
    spec = spec or "qwen2-vl-2b"
    if spec in HUB_PRESETS:
        preset = HUB_PRESETS[spec]
        local = local_copy(spec)
        if _is_checkpoint(local):
            return spec, local
        return spec, _download(preset.hub_id or spec, f"model preset {spec} ({preset.hub_id})", local)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not _is_checkpoint(path):
            raise InputError(f"{spec} is a directory without config.json, not a model checkpoint")
        return path.name, path
    if path.exists():
        raise InputError(f"{spec} is a file; a transformers model is a directory with config.json")
    if _REPO_ID.match(spec):
        return spec, _download(spec, f"hub model {spec!r}", None)
    raise InputError(
        f"unknown model {spec!r}: not a hub preset ({', '.join(HUB_PRESETS)}), "
        "a local checkpoint directory, or a hub repo id owner/name"
    )
