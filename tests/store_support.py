"""The real ``coe`` command line in a child process, for the hostile-input, concurrency and crash tests:
its exit code, its stderr, and its peak memory (a wrapper process reads ``RUSAGE_CHILDREN`` after waiting
for it, so each run's peak is its own); snapshots of a folder tree, to show what a run changed; and a
vector store that records which collections were read in full."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# runs coe.cli as its only child and reports that child's peak RSS (KiB on Linux) on its last stderr line
_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.call([sys.executable, "-m", "coe.cli", *sys.argv[1:]])
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(rc)
"""


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str          # without the wrapper's line
    peak_mb: float

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("coe: ")]


def coe_env(home: Path, **extra: str) -> dict[str, str]:
    from coe.paths import models_dir

    env = {**os.environ, "COE_HOME": str(home), "COE_CHROMA_DIR": str(home / "chroma"),
           "COE_MODELS_DIR": str(models_dir()), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "COLUMNS": "200", **extra}
    env.pop("COE_CHROMA_URL", None)
    env.pop("COE_EXIT_AFTER_WRITE", None)
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRAPPER, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> Ran:
    out, err = proc.communicate(timeout=timeout)
    lines = err.splitlines()
    peak = next((int(line.split()[1]) for line in reversed(lines) if line.startswith("PEAK_KIB ")), -1)
    return Ran(proc.returncode, out, "\n".join(line for line in lines if not line.startswith("PEAK_KIB ")),
               peak / 1024)


def coe(args: list[str], env: dict[str, str], timeout: float = 600) -> Ran:
    return finish(start(args, env), timeout)


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every file and link under ``root`` (outside ``skip``) with a digest of its content or target."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or path.is_relative_to(s) for s in skip):
            continue
        if path.is_symlink():
            out[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def bank_state(home: Path, bank: str) -> dict:
    """What a bank holds: its records (ids and texts), its sources' digests, and its vectors' ids."""
    import chromadb

    folder = home / "banks" / bank
    records = sorted(json.loads(line)["id"] for line in (folder / "exemplars.jsonl").read_text("utf-8").splitlines())
    info = json.loads((folder / "bank.json").read_text("utf-8"))
    client = chromadb.PersistentClient(path=str(home / "chroma"))
    vectors = {c.name: sorted(c.get(include=[])["ids"]) for c in client.list_collections()
               if c.name.startswith(f"coe-{bank}-")}
    return {"records": records, "exemplars": info["exemplars"],
            "sources": sorted(s["sha256"] for s in info["sources"]), "vectors": vectors}


def material_state(home: Path, name: str) -> dict:
    """What a material holds: its registered files, and its passages' ids and texts."""
    import chromadb

    folder = home / "materials" / name
    registry = json.loads((folder / "files.json").read_text("utf-8"))
    client = chromadb.PersistentClient(path=str(home / "chroma"))
    got = client.get_collection(f"coe-material-{name}").get(include=["documents"])
    return {"files": sorted(registry), "docs": sorted(d for e in registry.values() for d in e["docs"]),
            "passages": sorted(zip(got["ids"], got["documents"]))}


class Counting:
    """``store`` recording each collection it was asked to read in full (``get_all``)."""

    def __init__(self, store):
        self.store, self.full = store, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def get_all(self, collection):
        self.full.append(collection)
        return self.store.get_all(collection)
