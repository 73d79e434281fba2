"""The exemplar bank's matrices on disk, so a new process does not read 19k records back out of the store.

Reading a bank's three text collections from Chroma (ids, vectors, metadata, documents) is most of the
first retrieval of a process: 3 to 5 seconds on 2 cores, for a teacher's first item after every start.
The same arrays load from one ``.npz`` file in a fraction of that. The file sits in the store's folder and
is only used while it matches the store: it names the bank's build marker (the fingerprint of the exemplars
and the embedder that ``build_index`` writes after its last record), and ``build_index`` deletes it before
it changes a record, so a rebuilt, extended or half-written index is read from the store again. (Counting
the records instead costs as much as the copy saves: Chroma loads each collection's index to count it.)
Writes are atomic; an unreadable or stale file is ignored and written again."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
log = logging.getLogger(__name__)


def cache_path(store, bank: str) -> Path | None:
    """Beside the store's own files, so it goes where the index goes; None for a store that is not a local
    folder (a Chroma server)."""
    location = getattr(store, "location", None)
    if not isinstance(location, str) or "://" in location or not Path(location).is_dir():
        return None
    name = hashlib.sha256(f"{getattr(store, 'prefix', '')}|{bank}".encode()).hexdigest()[:24]
    return Path(location) / "coe-bank-cache" / f"{name}.npz"


def stamp(store, bank: str) -> str | None:
    """What the file must name to be used: the bank's build marker. None for a bank without one (not
    written by ``build_index``), which is never cached."""
    marker = store.get_marker(f"index-{bank}")
    if not marker or not marker.get("fingerprint"):
        return None
    return json.dumps({"format": FORMAT, "marker": marker["fingerprint"]}, sort_keys=True)


def forget(store, bank: str) -> None:
    """Drop the bank's copy before its collections change: ``build_index`` writes its new marker only after
    its last record, so until then the old marker must not vouch for a copy of the old records."""
    path = cache_path(store, bank)
    if path is not None:
        path.unlink(missing_ok=True)


Records = tuple[list[str], np.ndarray, list[dict], list[str | None] | None]  # ids, vectors, metadata, documents


def read(path: Path, want: str) -> dict[str, Records] | None:
    """Each collection's records if the file is there, readable and stamped ``want``; else None. Collections
    that shared their ids and metadata when written share them again."""
    try:
        with np.load(path, allow_pickle=False) as data:
            head = json.loads(bytes(data["head"]).decode("utf-8"))
            if not isinstance(head, dict) or head.get("stamp") != want:
                return None
            out: dict[str, Records] = {}
            for i, c in enumerate(head["collections"]):
                ids, metadatas = (
                    (out[c["same_as"]][0], out[c["same_as"]][2]) if c["same_as"] else (c["ids"], c["metadatas"])
                )
                vectors, documents = np.asarray(data[f"v{i}"]), c["documents"]
                if len(metadatas) != len(ids) or (documents is not None and len(documents) != len(ids)):
                    return None
                if len(ids) and (vectors.ndim != 2 or len(vectors) != len(ids)):
                    return None
                out[c["name"]] = (ids, vectors, metadatas, documents)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        log.info("ignoring the bank cache %s (%s)", path, type(exc).__name__)
        return None
    return out


def write(path: Path, stamp_: str, collections: dict[str, Records]) -> None:
    """Best effort: a cache that cannot be written costs the next process its load time, nothing else."""
    from coe.atomic import write_bytes

    heads: list[dict[str, Any]] = []
    for name, (ids, _, metadatas, documents) in collections.items():
        same = next((h["name"] for h in heads if collections[h["name"]][2] is metadatas), None)
        heads.append(
            {
                "name": name,
                "same_as": same,
                "ids": None if same else ids,
                "metadatas": None if same else metadatas,
                "documents": documents,
            }
        )
    arrays: dict[str, Any] = {
        f"v{i}": np.ascontiguousarray(c[1], dtype=np.float32) for i, c in enumerate(collections.values())
    }
    head = json.dumps({"stamp": stamp_, "collections": heads}).encode("utf-8")
    buf = io.BytesIO()
    np.savez(buf, head=np.frombuffer(head, dtype=np.uint8), **arrays)
    try:
        write_bytes(path, buf.getvalue())
    except OSError as exc:
        log.info("could not write the bank cache %s (%s)", path, exc)
