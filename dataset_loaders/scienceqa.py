"""Read-only access to the local ScienceQA folder (CC BY-NC-SA: read in place, never copied).

The folder's ``problems.json`` is a merge of several partial sources (see its README):
``hint_missing`` marks placeholder hints and ``field_sources`` says whether a lecture or
solution is the original text, so both are carried into each record.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from coe.errors import ConfigError, InputError
from coe.paths import scienceqa_dir
from coe.text import one_line

SPLIT_NAMES = ("train", "val", "test", "trainval", "minitrain", "minival", "minitest")
_REQUIRED = ("problems.json", "pid_splits.json")
_HOW_TO_FIX = "set COE_SCIENCEQA_DIR or pass --data to the ScienceQA folder"


class ScienceQAProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: str
    split: str
    question: str
    choices: list[str]
    answer_index: int
    answer: str
    distractors: list[str]
    hint: str = ""
    hint_missing: bool = False
    image_path: Path | None = None
    has_image: bool = False
    caption: str = ""
    ocr_text: str = ""
    task: str | None = None
    subject: str | None = None
    grade: str | None = None
    topic: str | None = None
    category: str | None = None
    skill: str | None = None
    lecture: str = ""
    solution: str = ""
    # None: the source does not say (field missing or no provenance recorded).
    lecture_original: bool | None = None
    solution_original: bool | None = None

    @model_validator(mode="after")
    def _answer_matches_choices(self) -> ScienceQAProblem:
        if not 0 <= self.answer_index < len(self.choices):
            raise ValueError(f"answer index {self.answer_index} outside {len(self.choices)} choices")
        if self.answer != self.choices[self.answer_index]:
            raise ValueError("answer is not choices[answer_index]")
        return self

    @property
    def rationale(self) -> str:
        return "\n".join(part for part in (self.lecture, self.solution) if part.strip())

    @property
    def context_text(self) -> str:
        return "\n".join(part for part in (self.hint, self.caption, self.ocr_text) if part.strip())


def _is_original(note: str | None) -> bool | None:
    if not note or note.startswith("missing"):
        return None
    return "rewritten" not in note and "not original" not in note


# The text literal that follows a box's closing "]]" in a repr'd (box, text, conf) tuple.
_OCR_TEXT = re.compile(r"""\]\],\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*,""")


def _ocr_join(items: Any) -> str:
    # The released ocrs.json stores each pid's boxes as a Python repr string of
    # (box, text, confidence) tuples, not as JSON lists; accept both. Pulling out only the
    # text literals is ~6x faster than literal_eval of the whole string.
    if isinstance(items, str):
        try:
            found = _OCR_TEXT.findall(items)
            items = [(None, ast.literal_eval(t)) for t in found] if found else ast.literal_eval(items)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return ""
    if not isinstance(items, (list, tuple)):
        return ""
    texts = (str(item[1]).strip() for item in items if isinstance(item, (list, tuple)) and len(item) > 1)
    return " ".join(t for t in texts if t)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class ScienceQA:
    """The ScienceQA folder; JSON files are read on first use and records built on demand."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = scienceqa_dir(root)
        if not self.root.is_dir():
            raise ConfigError(f"ScienceQA folder not found: {self.root} ({_HOW_TO_FIX})")
        for name in _REQUIRED:
            if not (self.root / name).is_file():
                raise ConfigError(f"ScienceQA file missing: {self.root / name} ({_HOW_TO_FIX})")
        self._problems: dict[str, dict[str, Any]] | None = None
        self._splits: dict[str, list[str]] | None = None
        self._captions: dict[str, str] | None = None
        self._ocrs: dict[str, list] | None = None
        self._records: dict[str, ScienceQAProblem] = {}
        self._pid_by_path: dict[Path, str] | None = None
        self._paths_by_size: dict[int, list[Path]] | None = None
        self._digests: dict[Path, str] = {}

    # -- raw files -------------------------------------------------------------------

    def _read_json(self, name: str, *, required: bool) -> Any:
        path = self.root / name
        if not path.is_file():
            if required:
                raise ConfigError(f"ScienceQA file missing: {path} ({_HOW_TO_FIX})")
            return None
        try:
            with path.open(encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"ScienceQA file unreadable: {path} ({exc})") from exc

    @property
    def _raw(self) -> dict[str, dict[str, Any]]:
        if self._problems is None:
            data = self._read_json("problems.json", required=True)
            if not isinstance(data, dict):
                raise ConfigError(
                    f"ScienceQA file malformed: {self.root / 'problems.json'} (expected an object keyed by pid)"
                )
            self._problems = data
        return self._problems

    @property
    def _split_pids(self) -> dict[str, list[str]]:
        if self._splits is None:
            data = self._read_json("pid_splits.json", required=True)
            if not isinstance(data, dict):
                raise ConfigError(f"ScienceQA file malformed: {self.root / 'pid_splits.json'}")
            self._splits = {k: [str(p) for p in v] for k, v in data.items()}
        return self._splits

    def _caption_of(self, pid: str) -> str:
        if self._captions is None:
            data = self._read_json("captions.json", required=False) or {}
            self._captions = data.get("captions", {})
        return (self._captions.get(pid) or "").strip()

    def _ocr_of(self, pid: str) -> str:
        if self._ocrs is None:
            data = self._read_json("ocrs.json", required=False) or {}
            self._ocrs = data.get("texts", {})
        return _ocr_join(self._ocrs.get(pid))

    # -- records ---------------------------------------------------------------------

    def _image_path(self, raw: dict[str, Any]) -> Path | None:
        rel = raw.get("image_file")
        if not rel:
            return None
        path = (self.root / rel).resolve()
        return path if path.is_file() else None

    def _build(self, pid: str, raw: dict[str, Any]) -> ScienceQAProblem:
        choices = [str(c) for c in raw.get("choices") or []]
        index = raw.get("answer")
        sources = raw.get("field_sources") or {}
        try:
            if not isinstance(index, int):
                raise TypeError(f"answer index {index!r} is not an integer")
            answer = choices[index]
            return ScienceQAProblem(
                pid=pid,
                split=raw.get("split") or "",
                question=raw.get("question") or "",
                choices=choices,
                answer_index=index,
                answer=answer,
                distractors=[c for i, c in enumerate(choices) if i != index],
                hint=raw.get("hint") or "",
                hint_missing=bool(raw.get("hint_missing")),
                image_path=self._image_path(raw),
                has_image=bool(raw.get("image")),
                caption=self._caption_of(pid),
                ocr_text=self._ocr_of(pid),
                task=raw.get("task"),
                subject=raw.get("subject"),
                grade=raw.get("grade"),
                topic=raw.get("topic"),
                category=raw.get("category"),
                skill=raw.get("skill"),
                lecture=raw.get("lecture") or "",
                solution=raw.get("solution") or "",
                lecture_original=_is_original(sources.get("lecture")),
                solution_original=_is_original(sources.get("solution")),
            )
        except (TypeError, IndexError, ValidationError) as exc:
            reason = one_line(exc)[:200]
            raise ConfigError(
                f"ScienceQA problem {pid} is malformed in {self.root / 'problems.json'} ({reason})"
            ) from exc

    def get(self, pid: str | int) -> ScienceQAProblem:
        key = str(pid)
        record = self._records.get(key)
        if record is None:
            raw = self._raw.get(key)
            if raw is None:
                raise InputError(f"unknown ScienceQA problem id: {key!r} (not in {self.root / 'problems.json'})")
            record = self._records[key] = self._build(key, raw)
        return record

    def __contains__(self, pid: object) -> bool:
        return str(pid) in self._raw

    def __iter__(self) -> Iterator[ScienceQAProblem]:
        return (self.get(pid) for pid in list(self._raw))

    def __len__(self) -> int:
        return len(self._raw)

    def splits(self) -> list[str]:
        """Split names present in ``pid_splits.json``, in file order."""
        return list(self._split_pids)

    def split(self, name: str) -> list[ScienceQAProblem]:
        """Problems of a split in official order; pids absent from ``problems.json`` are skipped."""
        pids = self._split_pids.get(name)
        if pids is None:
            known = ", ".join(self._split_pids) or ", ".join(SPLIT_NAMES)
            raise InputError(f"unknown ScienceQA split: {name!r} (choose one of: {known})")
        raw = self._raw
        return [self.get(pid) for pid in pids if pid in raw]

    # -- image lookup ----------------------------------------------------------------

    def _image_index(self) -> dict[Path, str]:
        if self._pid_by_path is None:
            index: dict[Path, str] = {}
            for pid, raw in self._raw.items():
                path = self._image_path(raw)
                if path is not None:
                    index.setdefault(path, pid)
            self._pid_by_path = index
        return self._pid_by_path

    def _digest(self, path: Path) -> str:
        digest = self._digests.get(path)
        if digest is None:
            digest = self._digests[path] = _sha256(path)
        return digest

    def find_by_image(self, path: str | os.PathLike) -> ScienceQAProblem | None:
        """The problem whose image is this file, by resolved path or else by identical bytes.

        Only images of the same byte size are hashed (and cached), so a lookup costs a few
        stat calls the first time instead of hashing the whole image folder.
        """
        try:
            target = Path(path).expanduser().resolve()
        except (OSError, RuntimeError):
            return None
        index = self._image_index()
        if target in index:
            return self.get(index[target])
        try:
            size = target.stat().st_size if target.is_file() else None
        except OSError:
            return None
        if size is None:
            return None
        if self._paths_by_size is None:
            by_size: dict[int, list[Path]] = {}
            for image in index:
                by_size.setdefault(image.stat().st_size, []).append(image)
            self._paths_by_size = by_size
        candidates = self._paths_by_size.get(size, [])
        if not candidates:
            return None
        wanted = _sha256(target)
        for image in candidates:
            if self._digest(image) == wanted:
                return self.get(index[image])
        return None
