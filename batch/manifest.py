"""A batch manifest: the rows to write items for, each checked on its own.

A manifest is a CSV or JSONL file (columns ``image``, ``context``, ``answer``, optional ``question``,
``n_distractors``, ``id``, ``tags``; image paths relative to the manifest, and inside its folder), or a folder of
images with one sidecar CSV/JSONL whose ``image`` column names files in the folder. A bad row (missing or broken image,
empty answer, text that is not UTF-8, a repeated id) becomes a ``RowError`` with its line; the others go on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from coe.errors import CoeError, InputError
from coe.imageio import DEFAULT_MAX_TEXT_BYTES

COLUMNS = ("id", "image", "context", "answer", "question", "n_distractors", "tags")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
MAX_ROWS = 100_000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_SURROGATE = re.compile("[\udc80-\udcff]")


class Row(BaseModel):
    """One checked row: the graph's input for one item, plus its id, tags and place in the manifest."""

    id: str
    line: int
    answer: str
    context: str = ""
    image_path: str | None = None
    question_given: str | None = None
    n_distractors: int = 3
    tags: list[str] = Field(default_factory=list)

    def graph_input(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "context": self.context,
            "image_path": self.image_path,
            "question_given": self.question_given,
            "n_distractors": self.n_distractors,
        }

    def digest(self) -> str:
        """What the item depends on: the inputs and the image's bytes (an edited image is a new input)."""
        h = hashlib.sha256(json.dumps(self.graph_input(), sort_keys=True).encode())
        if self.image_path:
            h.update(Path(self.image_path).read_bytes())
        return h.hexdigest()


class RowError(BaseModel):
    id: str
    line: int
    error: str


def _source(path: Path) -> tuple[Path, Path]:
    """(the manifest file, the folder its relative image paths start from)."""
    if not path.exists():
        raise InputError(f"manifest not found: {path}")
    if path.is_dir():
        sidecars = sorted(p for p in path.iterdir() if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file())
        if len(sidecars) != 1:
            raise InputError(
                f"a manifest folder needs exactly one .csv or .jsonl sidecar naming its images; "
                f"{path} has {len(sidecars)}"
            )
        return sidecars[0], path
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise InputError(f"a manifest is a .csv or .jsonl file (or a folder with one): {path}")
    return path, path.parent


def _records(file: Path) -> list[tuple[int, dict[str, Any] | str]]:
    """(line, raw record) pairs; a record that cannot be read is its error message instead."""
    if file.stat().st_size > DEFAULT_MAX_TEXT_BYTES:
        raise InputError(f"manifest too large: {file} (limit {DEFAULT_MAX_TEXT_BYTES} bytes)")
    # surrogateescape keeps a row with bytes that are not UTF-8 readable, so only that row fails
    text = file.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    out: list[tuple[int, dict[str, Any] | str]] = []
    if file.suffix.lower() == ".jsonl":
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            if _SURROGATE.search(raw):
                out.append((n, "the row is not UTF-8 text"))
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                out.append((n, f"not a JSON object: {exc.msg}"))
                continue
            except RecursionError:
                out.append((n, "not a JSON object: nested too deeply"))
                continue
            out.append((n, record if isinstance(record, dict) else "not a JSON object"))
        return out
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "answer" not in header:
        raise InputError(f"the manifest {file} has no 'answer' column (columns: {', '.join(COLUMNS)})")
    unknown = [h for h in header if h and h not in COLUMNS]
    if unknown:
        raise InputError(f"the manifest {file} has an unknown column {unknown[0]!r} (columns: {', '.join(COLUMNS)})")
    reader.fieldnames = header
    for record in reader:
        line = reader.line_num
        if None in record:
            out.append((line, "the row has more fields than the header"))
            continue
        record = {k: v for k, v in record.items() if k}
        if any(_SURROGATE.search(v or "") for v in record.values()):
            # the id is kept when it is readable, so the error names the row the user knows
            out.append(
                (line, {"id": _SURROGATE.sub("", record.get("id") or ""), "_error": "the row is not UTF-8 text"})
            )
            continue
        out.append((line, record))
    return out


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in re.split(r"[;,]", str(value or "")) if t.strip()]


def _image(raw: str, base: Path, allow_outside: bool) -> str:
    """The row's picture, which must resolve inside the manifest's folder (no ``..`` or link out of it)
    or be a figure of an ingested material (``coe suggest`` names those) or a picture of the configured
    ScienceQA folder (``coe batch scienceqa`` names those), unless ``allow_outside``.
    Decided before the file is touched, in words that do not tell whether an outside file exists."""
    from coe.ingest.store import materials_root
    from coe.paths import scienceqa_dir

    path = (base / raw).expanduser()
    trusted = (base, materials_root().resolve(), (scienceqa_dir() / "images").resolve())
    inside = any(path.resolve().is_relative_to(root) for root in trusted)
    if not allow_outside and not inside:
        raise InputError(f"the image {raw!r} is outside the manifest's folder {base} (--allow-outside-files reads it)")
    return str(path)


def _n_distractors(raw: Any) -> int:
    """A whole number, as a JSON number or text; ``true`` or ``1.9`` is an error, not 1."""
    if raw in (None, ""):
        return 3
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*\d{1,3}\s*", raw):
        return int(raw)
    raise InputError(f"n_distractors must be a whole number, got {raw!r}")


def _row(record: dict[str, Any], line: int, base: Path, row_id: str, allow_outside: bool = False) -> Row:
    from coe.generate import check_inputs

    unknown = sorted(set(record) - set(COLUMNS))
    if unknown:
        raise InputError(f"unknown column {unknown[0]!r} (columns: {', '.join(COLUMNS)})")
    image = str(record.get("image") or "").strip() or None
    if image is not None:
        image = _image(image, base, allow_outside)
    n = _n_distractors(record.get("n_distractors"))
    question = record.get("question")
    checked = check_inputs(
        image=image,
        context=str(record.get("context") or ""),
        answer=str(record.get("answer") or ""),
        question=str(question) if question not in (None, "") else None,
        n_distractors=n,
        count_name="n_distractors",
    )
    return Row(
        id=row_id,
        line=line,
        answer=checked["answer"],
        context=checked["context"],
        image_path=checked["image_path"],
        question_given=checked["question_given"],
        n_distractors=n,
        tags=_tags(record.get("tags")),
    )


def read_manifest(path: str | Path, *, allow_outside: bool = False) -> tuple[list[Row], list[RowError]]:
    """The manifest's good rows and its bad ones, in manifest order. Raises ``InputError`` only when the
    manifest as a whole is unusable (missing, wrong kind, no answer column, too large). ``allow_outside``:
    rows may name pictures outside the manifest's folder."""
    file, base = _source(Path(path).expanduser().resolve())
    rows: list[Row] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    records = _records(file)
    if len(records) > MAX_ROWS:
        raise InputError(f"the manifest has {len(records)} rows; split it (limit {MAX_ROWS})")
    for line, record in records:
        given = str(record.get("id") or "").strip() if isinstance(record, dict) else ""
        row_id = given or f"row-{line}"
        try:
            if isinstance(record, str):
                raise InputError(record)
            if "_error" in record:
                raise InputError(record["_error"])
            if not _ID.match(row_id):
                raise InputError(f"the id {row_id!r} must be letters, digits, '.', '_' or '-' (at most 80)")
            if row_id in seen:
                raise InputError(f"the id {row_id!r} is used by an earlier row")
            rows.append(_row(record, line, base, row_id, allow_outside))
        except CoeError as exc:
            errors.append(RowError(id=row_id, line=line, error=str(exc)))
        seen.add(row_id)
    if not rows and not errors:
        raise InputError(f"the manifest {file} has no rows")
    return rows, errors
