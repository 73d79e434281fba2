"""``coe bank import``: a question bank file into a named exemplar bank (three collections, as ScienceQA's).

Formats are those ``coe.exports`` writes, under the same names; duplicates (same question, answer and
options once normalized) are skipped, and every question that cannot be an exemplar is reported with its
place in the file while the others go in."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from coe.errors import InputError
from coe.plugins.registry import resolve

from .records import ParsedQuestion, Problem, checked, digest, to_exemplar
from .registry import (
    DEFAULT_BANK,
    BankInfo,
    bank_dir,
    check_name,
    read_exemplars,
    read_info,
    write_exemplars,
    write_info,
)

MAX_FILE_BYTES = 64 * 2**20
MAX_QUESTIONS = 10_000  # per import (--max-questions): an hour of embedding on a laptop CPU
FORMATS = ("moodle-xml", "gift", "qti21", "aiken", "csv", "jsonl")


@dataclass
class ImportReport:
    bank: str
    file: str
    format: str
    read: int = 0  # questions found in the file
    added: int = 0
    duplicates: list[str] = field(default_factory=list)  # positions of questions already in the bank
    problems: list[Problem] = field(default_factory=list)  # skipped or malformed, with their positions
    exemplars: int = 0  # the bank's size after the import


def detect_format(path: Path, data: bytes) -> str:
    name = path.name.lower()
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if data[:4] == b"PK\x03\x04":
        return "qti21"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".xml") or head.startswith(b"<"):
        return "qti21" if b"assessmentItem" in data[:8192] else "moodle-xml"
    if name.endswith(".gift") or ".gift." in name:
        return "gift"
    if name.endswith((".aiken.txt", ".aiken")):
        return "aiken"
    from .aiken import looks_like
    from .textfile import decode

    return "aiken" if looks_like(decode(data[:65536], path.name)) else "gift"


def parse_file(data: bytes, fmt: str) -> Iterable[ParsedQuestion | Problem]:
    from . import aiken, gift, moodle_xml, qti21, tabular

    # most parsers yield one question at a time, so an import can stop at its question limit
    parsers: dict[str, Callable[[bytes], Iterable[ParsedQuestion | Problem]]] = {
        "moodle-xml": moodle_xml.parse,
        "gift": gift.parse,
        "qti21": qti21.parse,
        "aiken": aiken.parse,
        "csv": tabular.parse_csv,
        "jsonl": tabular.parse_jsonl,
    }
    if fmt not in parsers:
        raise InputError(f"unknown bank format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return parsers[fmt](data)


def read_file(path: str | Path) -> bytes:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"bank file not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"bank file too large: {path} ({size} bytes, limit {MAX_FILE_BYTES})")
    if size == 0:
        raise InputError(f"bank file is empty: {path}")
    return path.read_bytes()


def _save_image(q: ParsedQuestion, images: Path, report: ImportReport) -> str:
    """The first embedded picture that decodes, written under the bank's ``images/`` by its digest."""
    from PIL import Image as PILImage

    from coe.atomic import write_bytes
    from coe.imageio import load_image_bytes

    for image in q.images:
        try:
            load_image_bytes(image.data, label=image.name)
        except InputError as exc:
            report.problems.append(Problem(q.position, f"embedded image left out: {exc}", "image"))
            continue
        with PILImage.open(io.BytesIO(image.data)) as probe:
            ext = (probe.format or "png").lower().replace("jpeg", "jpg")
        target = images / f"{hashlib.sha256(image.data).hexdigest()[:24]}.{ext}"
        if not target.exists():
            write_bytes(target, image.data)
        return str(target)
    return ""


def _read_questions(data: bytes, fmt: str, path: Path, max_questions: int) -> list[ParsedQuestion | Problem]:
    """Every question and problem of the file, or one line as soon as there are more than ``max_questions``
    (an import's size is bounded before anything is written or embedded)."""
    found: list[ParsedQuestion | Problem] = []
    for item in parse_file(data, fmt):
        found.append(checked(item) if isinstance(item, ParsedQuestion) else item)
        if len(found) > max_questions:
            raise InputError(
                f"{path.name} holds more than {max_questions} questions; import it in parts, or "
                f"raise the limit with --max-questions"
            )
    return found


def import_bank(
    path: str | Path,
    bank: str,
    *,
    fmt: str | None = None,
    embedder=None,
    store=None,
    progress: Callable[[str, int, int], None] | None = None,
    max_questions: int = MAX_QUESTIONS,
) -> ImportReport:
    """Read ``path`` into the bank ``bank`` (created, or grown) and index its new exemplars.

    One writer per bank at a time (``writer_lock``). The records and ``bank.json`` are written before the
    vectors, whose ids are the records' digests: an import stopped anywhere is finished by running it again
    (the vectors it lacks are upserted), and ``coe bank remove`` always finds what it left."""
    from coe.kill_points import Watched
    from coe.retrieval.index import build_index
    from coe.store_lock import writer_lock

    bank = check_name(bank)
    if bank == DEFAULT_BANK:
        raise InputError("the default bank is ScienceQA's; import into a bank of another name")
    path = Path(path).expanduser()
    data = read_file(path)
    fmt = fmt or detect_format(path, data)
    report = ImportReport(bank=bank, file=str(path), format=fmt)
    found = _read_questions(data, fmt, path, max_questions)
    if embedder is None:
        embedder = resolve("text_embedder")
    if store is None:
        store = resolve("vector_store")
    with writer_lock(bank_dir(bank), f"bank {bank!r}"):
        existing = read_exemplars(bank)
        known = {digest(e.question, e.answer, e.distractors) for e in existing}
        new = []
        images = bank_dir(bank) / "images"
        for item in found:
            if isinstance(item, Problem):
                report.problems.append(item)
                continue
            report.read += 1
            key = digest(item.question, item.answer, item.distractors)
            if key in known:
                report.duplicates.append(item.position)
                continue
            known.add(key)
            new.append(to_exemplar(item, bank, image=_save_image(item, images, report) if item.images else ""))
        if not existing and not new:
            first = report.problems[0].line() if report.problems else "no questions found"
            raise InputError(f"no multiple-choice question with one correct answer in {path.name} ({first})")
        exemplars = existing + new
        now = datetime.now(UTC).isoformat(timespec="seconds")
        info = read_info(bank) or BankInfo(name=bank, created=now)
        sha = hashlib.sha256(data).hexdigest()
        if new or not any(s.get("sha256") == sha for s in info.sources):
            info.sources.append(
                {
                    "file": path.name,
                    "path": str(path.resolve()),
                    "format": fmt,
                    "imported": now,
                    "sha256": sha,
                    "added": len(new),
                    "duplicates": len(report.duplicates),
                    "problems": len(report.problems),
                }
            )
        info.exemplars, info.updated, info.embedder = len(exemplars), now, embedder.model_id
        write_exemplars(bank, exemplars)
        write_info(info)
        build_index(
            exemplars,
            embedder=embedder,
            store=Watched(store, ("upsert", "reset", "set_marker"), "bank"),
            bank=bank,
            progress=progress,
            append=True,
        )
    report.added, report.exemplars = len(new), len(exemplars)
    return report
