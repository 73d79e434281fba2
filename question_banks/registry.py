"""Named exemplar banks: ``default`` (ScienceQA, built by ``coe index build``) and the banks imported with
``coe bank import``, each a folder under ``coe_home()/banks/NAME`` (``bank.json``: its sources and dates;
``exemplars.jsonl``: its records; ``images/``) beside its three collections in the vector store."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coe.retrieval.exemplars import Exemplar
from coe.retrieval.index import FIELDS
from pydantic import BaseModel, Field

from coe.errors import ConfigError, InputError
from coe.plugins.registry import resolve

DEFAULT_BANK = "default"
# a Chroma collection name is [A-Za-z0-9._-], and ours are "coe-NAME-field"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")


class BankInfo(BaseModel):
    name: str
    exemplars: int = 0
    sources: list[dict[str, Any]] = Field(default_factory=list)  # file, format, sha256, imported, added, ...
    created: str = ""
    updated: str = ""
    embedder: str = ""
    builtin: bool = False


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise InputError(
            f"bad bank name {name!r}: use letters, digits, '-' and '_' (at most 48, starting with a letter or digit)"
        )
    return name


def parse_banks(values: str | Iterable[str] | None) -> tuple[str, ...]:
    """``--bank`` values (repeated and/or comma-separated) as names, in order, each once; none: the default."""
    raw = [values] if isinstance(values, str) else list(values or [])
    names = [check_name(part) for value in raw for part in str(value).split(",") if part.strip()]
    return tuple(dict.fromkeys(names)) or (DEFAULT_BANK,)


def banks_root() -> Path:
    from coe.paths import coe_home

    return coe_home() / "banks"


def bank_dir(name: str) -> Path:
    return banks_root() / check_name(name)


def read_info(name: str) -> BankInfo | None:
    path = bank_dir(name) / "bank.json"
    try:
        return BankInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ConfigError(
            f"the bank record {path} is damaged ({exc.__class__.__name__}); remove the bank with "
            f"`coe bank remove {name}` and import it again"
        ) from None


def write_info(info: BankInfo) -> None:
    from coe.atomic import write_text

    write_text(bank_dir(info.name) / "bank.json", info.model_dump_json(indent=1))


def read_exemplars(name: str) -> list[Exemplar]:
    path = bank_dir(name) / "exemplars.jsonl"
    if not path.is_file():
        return []
    return [Exemplar.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_exemplars(name: str, exemplars: list[Exemplar]) -> None:
    from coe.atomic import write_text

    keep = {"score", "signals", "bank"}
    write_text(
        bank_dir(name) / "exemplars.jsonl",
        "".join(json.dumps(e.model_dump(exclude=keep), ensure_ascii=False) + "\n" for e in exemplars),
    )


def _default_info(store) -> BankInfo | None:
    marker = store.get_marker(f"index-{DEFAULT_BANK}") if store is not None else None
    if not marker or marker.get("removed"):
        return None
    return BankInfo(
        name=DEFAULT_BANK,
        exemplars=int(marker.get("exemplars", 0)),
        builtin=True,
        sources=[{"file": "ScienceQA (coe index build)"}],
        embedder=str(marker.get("embedder", "")),
    )


def list_banks(store=None) -> list[BankInfo]:
    """Every bank: ``default`` when its index is built (``store``: the vector store; default: the configured
    one, ``COE_VECTOR_STORE``), then the imported ones by name."""
    if store is None:
        store = resolve("vector_store")
    out = [b for b in [_default_info(store)] if b is not None]
    root = banks_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_dir() and _NAME.match(folder.name) and folder.name != DEFAULT_BANK:
            info = read_info(folder.name)
            if info is not None:
                out.append(info)
    return out


def require_banks(store, names: Iterable[str], embedder_id: str) -> None:
    """Every bank in ``names`` is built in ``store`` with this embedder, or one line saying what to do."""
    for name in names:
        marker = store.get_marker(f"index-{name}")
        if not marker or marker.get("removed"):
            if name == DEFAULT_BANK:
                raise ConfigError("the exemplar index is not built; run `coe index build`")
            known = ", ".join(b.name for b in list_banks(store)) or "none"
            raise ConfigError(
                f"no exemplar bank {name!r} (banks: {known}); import one with `coe bank import FILE --bank {name}`"
            )
        if marker.get("embedder") and marker["embedder"] != embedder_id:
            raise ConfigError(
                f"the exemplar bank {name!r} was embedded with {marker['embedder']}, not "
                f"{embedder_id}; import it again (or rebuild it with `coe index build --force`)"
            )


def remove_bank(name: str, store=None) -> BankInfo:
    """Drop an imported bank: its collections, its index marker and its folder; also what an import that
    was stopped, or a damaged ``bank.json``, left behind."""
    from coe.store_lock import writer_lock

    name = check_name(name)
    if name == DEFAULT_BANK:
        raise InputError("the default bank is ScienceQA's; rebuild it with `coe index build --force`")
    if store is None:
        store = resolve("vector_store")
    with writer_lock(bank_dir(name), f"bank {name!r}"):
        try:
            info = read_info(name)
        except ConfigError:
            info = None
        marker = store.get_marker(f"index-{name}")
        if info is None and not bank_dir(name).exists() and not (marker and not marker.get("removed")):
            raise InputError(f"no imported bank {name!r}; `coe bank list` shows the banks")
        for field in FIELDS:
            store.reset(f"{name}-{field}")
        # the store has no way to delete a marker; one saying "removed" makes the next import start afresh
        store.set_marker(f"index-{name}", {"removed": True})
        shutil.rmtree(bank_dir(name), ignore_errors=True)
    return info or BankInfo(name=name)
