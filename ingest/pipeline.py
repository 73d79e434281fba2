"""``ingest(paths, material)``: files → LlamaIndex documents → passages (split, figures linked, embedded)
→ the material's Chroma collection, through an ``IngestionPipeline`` whose docstore remembers every page's
hash, so a re-ingest redoes only what changed (unchanged files are not even re-read)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coe.errors import InputError
from coe.text import one_line
from coe.ingest import store
from coe.ingest.linking import FigureLinker
from coe.ingest.readers import SUPPORTED, check_size, extractors

CHUNK_TOKENS = 220
CHUNK_OVERLAP = 30
PAGE_BATCH = 64
# Only these metadata keys reach the embedder and prompts; paths, hashes and figure lists stay out.
SHOWN_KEYS = ("title", "section")


@dataclass
class FileResult:
    path: str
    status: str  # new | changed | unchanged | failed | removed
    documents: int = 0  # pages, slides or sections read
    passages: int = 0  # nodes written (0 when the docstore found every page unchanged)
    figures: int = 0
    error: str = ""


@dataclass
class IngestReport:
    material: str
    files: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)


def _files(paths: list[str], report: IngestReport, allow_outside: bool = False) -> tuple[dict[Path, Path], list[Path]]:
    """The supported files named or found under ``paths``, each with the folder its pictures must stay in
    (the folder given, or a file's own folder), and the folders given; bad paths are reported. A link that
    leads out of a folder given is refused unless ``allow_outside``."""
    from llama_index.core import SimpleDirectoryReader

    files: dict[Path, Path] = {}
    folders: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser().resolve()
        if p.is_dir():
            folders.append(p)
            try:
                found = SimpleDirectoryReader(
                    input_dir=str(p), recursive=True, required_exts=list(SUPPORTED), exclude_hidden=True
                ).input_files
            except ValueError:
                found = []
            for f in map(Path, found):
                if allow_outside or f.resolve().is_relative_to(p):
                    files.setdefault(f, p)
                else:
                    report.files.append(
                        FileResult(
                            str(f),
                            "failed",
                            error=f"a link to a file outside {p}: {f.name} (--allow-outside-files reads it)",
                        )
                    )
        elif not p.exists():
            report.files.append(FileResult(str(p), "failed", error=f"not found: {p}"))
        elif p.suffix.lower() not in SUPPORTED:
            report.files.append(
                FileResult(
                    str(p),
                    "failed",
                    error=f"unsupported file type {p.suffix or '(none)'}: "
                    f"{p.name} (supported: {', '.join(sorted(SUPPORTED))})",
                )
            )
        else:
            files.setdefault(p, p.parent)
    return files, folders


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class _Docstore:
    """The pipeline's docstore, kept as one JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        from llama_index.core.storage.docstore import SimpleDocumentStore

        self.path = path
        data = None
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None  # lost hashes only mean pages are embedded again
        self.store = SimpleDocumentStore.from_dict(data) if data else SimpleDocumentStore()

    def save(self) -> None:
        from coe.atomic import write_text

        write_text(self.path, json.dumps(self.store.to_dict()))

    def forget(self, doc_ids, vector_store) -> None:
        for doc_id in doc_ids:
            self.store.delete_document(doc_id, raise_error=False)
            self.store.delete_ref_doc(doc_id, raise_error=False)
            vector_store.delete(doc_id)


def _loaded(path: Path, name: str, readers: dict) -> list:
    from llama_index.core import SimpleDirectoryReader

    def metadata(file: str) -> dict[str, Any]:
        return {"material": name, "file_path": file, "file_name": Path(file).name}

    try:
        docs = SimpleDirectoryReader.load_file(
            path, file_metadata=metadata, file_extractor=readers, raise_on_error=True
        )
    except Exception as exc:  # LlamaIndex wraps the reader's error; the user wants the reader's line
        cause = exc.__cause__ or exc
        if isinstance(cause, InputError):
            raise cause from None
        raise InputError(f"cannot read {path.name}: {type(cause).__name__}: {one_line(cause)}") from None
    for doc in docs:
        doc.excluded_embed_metadata_keys = [k for k in doc.metadata if k not in SHOWN_KEYS]
        doc.excluded_llm_metadata_keys = list(doc.excluded_embed_metadata_keys)
    return docs


def _node_id(i: int, doc: Any) -> str:
    """A passage's id from its page/section (its file is in the document id), that page's content and its
    place in it: a rerun after an interruption writes the same ids again instead of duplicates."""
    return hashlib.sha256(f"{doc.id_}\0{doc.hash}\0{i}".encode()).hexdigest()[:32]


def ingest(
    paths: list[str],
    material: str,
    *,
    embedder: Any = None,
    image_reader: Any = None,
    console: Any = None,
    reread: bool = False,
    allow_outside: bool = False,
    max_pages: int | None = None,
) -> IngestReport:
    """Ingest ``paths`` (files or folders) into ``material``. ``reread``: read unchanged files again
    (the docstore still skips their unchanged pages). ``allow_outside``: read pictures that a document
    names outside its folder, and files linked from outside a folder given. ``max_pages``: a PDF's page
    limit. Per-file failures are in the report, never raised.

    One writer per material at a time (``writer_lock``): two ingests into one material run one after the
    other, and neither loses the other's files."""
    from coe.store_lock import writer_lock

    name = store.check_name(material)
    with writer_lock(store.material_dir(name), f"material {name!r}"):
        new = not store.material_dir(name).joinpath(store.REGISTRY).is_file()
        try:
            report = _ingest(
                paths,
                name,
                embedder=embedder,
                image_reader=image_reader,
                console=console,
                reread=reread,
                allow_outside=allow_outside,
                max_pages=max_pages,
            )
        except BaseException:
            if new:
                store.drop_empty(name)
            raise
        if new and not any(f.status in ("new", "changed") for f in report.files):
            store.drop_empty(name)  # nothing went in: no empty material is left to list
        return report


def _ingest(
    paths: list[str],
    material: str,
    *,
    embedder: Any,
    image_reader: Any,
    console: Any,
    reread: bool,
    allow_outside: bool,
    max_pages: int | None,
) -> IngestReport:
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from rich.console import Console

    from coe.ingest.embedding import CoeEmbedding
    from coe.progress import make_progress

    t0 = time.perf_counter()
    name = store.check_name(material)
    report = IngestReport(material=name)
    files, folders = _files(paths, report, allow_outside)
    if not files and not report.files:
        raise InputError(f"no supported files in {', '.join(paths)} (supported: {', '.join(sorted(SUPPORTED))})")
    folder = store.material_dir(name, create=True)
    registry = store.read_registry(folder)
    docstore = _Docstore(folder / store.DOCSTORE)
    vectors = store.vector_store(name)
    pipeline: IngestionPipeline | None = None
    readers = extractors(folder, image_reader, allow_outside=allow_outside, max_pages=max_pages)
    console = console or Console(stderr=True)
    changed = False
    with make_progress(console=console) as progress:
        task = progress.add_task(f"ingest {name}", total=len(files))
        for path, scope in files.items():
            key = str(path)
            result = FileResult(key, "changed" if key in registry else "new")
            report.files.append(result)
            try:
                check_size(path)
                digest = _digest(path)
                if not reread and registry.get(key, {}).get("sha256") == digest:
                    result.status = "unchanged"
                    continue
                for reader in readers.values():
                    reader.scope = scope
                docs = _loaded(path, name, readers)
                if pipeline is None:
                    pipeline = IngestionPipeline(
                        transformations=[
                            SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP, id_func=_node_id),
                            FigureLinker(),
                            CoeEmbedding(embedder),
                        ],
                        docstore=docstore.store,
                        vector_store=vectors,
                        docstore_strategy=DocstoreStrategy.UPSERTS,
                        disable_cache=True,
                    )
                # a page batch at a time: a long document's passages and vectors are never all in memory
                written = sum(
                    len(pipeline.run(documents=docs[start : start + PAGE_BATCH]))
                    for start in range(0, len(docs), PAGE_BATCH)
                )
                ids = [d.id_ for d in docs]
                docstore.forget(set(registry.get(key, {}).get("docs", [])) - set(ids), vectors)
                result.documents, result.passages = len(docs), written
                result.figures = sum(len(json.loads(d.metadata.get("figures") or "[]")) for d in docs)
                registry[key] = {"sha256": digest, "size": path.stat().st_size, "docs": ids, "figures": result.figures}
                changed = True
            except InputError as exc:
                result.status, result.error = "failed", str(exc)
            except OSError as exc:
                result.status, result.error = "failed", f"cannot read {path}: {exc.strerror or exc}"
            finally:
                progress.advance(task)
                if changed:
                    docstore.save()
                    store.write_registry(folder, registry)
    for gone in [k for k in registry if any(Path(k).is_relative_to(f) for f in folders) and not Path(k).exists()]:
        docstore.forget(registry.pop(gone).get("docs", []), vectors)
        report.files.append(FileResult(gone, "removed"))
        changed = True
    if changed:
        docstore.save()
        _drop_unused_figures(folder, name)
    store.write_registry(folder, registry)
    for reader in {id(r): r for r in readers.values()}.values():
        report.warnings += getattr(reader, "warnings", [])
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _drop_unused_figures(folder: Path, name: str) -> None:
    """Figure files no stored passage links to any more (their page changed or their file left)."""
    from coe.ingest.figures import load

    used = {f.get("path") for p in store.passages(name) for f in load(p["metadata"].get("figures"))}
    for path in (folder / "figures").glob("*"):
        if f"figures/{path.name}" not in used:
            path.unlink(missing_ok=True)
