"""One exported item: the fields every format writes, built from a generated item or a console run.

The options are put in one order per item (seeded by its id), the same in every format, so the correct
answer is not always first where a format has no shuffle of its own (Aiken, CSV) and two exports of
the same item agree.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from coe.errors import InputError
from coe.text import LETTERS

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
Status = Literal["verified", "unconfirmed", "flagged", "unverified"]


class Provenance(BaseModel):
    model: str = ""
    exemplar_ids: list[str] = Field(default_factory=list)
    prompt_version: str = ""
    seed: int | None = None
    tags: list[str] = Field(default_factory=list)
    # where a material-grounded item's context and picture came from: material, file, page/slide, figure
    source: dict[str, Any] | None = None


class Option(BaseModel):
    letter: str
    text: str
    correct: bool
    feedback: str = ""


class EmbeddedImage(BaseModel):
    name: str  # file name inside the export: "<item id>.<ext>"
    mime: str
    data: bytes


class ExportItem(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    distractors: list[str] = Field(min_length=1, max_length=len(LETTERS) - 1)
    rationale: str | None = None
    distractor_notes: list[str] = Field(default_factory=list)
    image: str | None = None
    status: Status = "unverified"
    reasons: list[str] = Field(default_factory=list)
    difficulty: str | None = None
    # what a reviewer must check when no model could confirm the key ("Check in the picture: ...")
    check: str | None = None
    provenance: Provenance = Field(default_factory=Provenance)

    @field_validator("question", "answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("question", "answer", "rationale", "distractors", "distractor_notes", "check")
    @classmethod
    def _xml_safe(cls, value: str | list[str] | None) -> str | list[str] | None:
        # model output is untrusted; XML 1.0 (Moodle XML, QTI) cannot hold control characters at all
        for text in [value] if isinstance(value, str) else value or []:
            if bad := _CONTROL.search(text):
                raise ValueError(f"contains the control character {bad.group()!r}")
        return value

    @classmethod
    def build(cls, **fields: Any) -> ExportItem:
        """``ExportItem(**fields)`` with a bad field reported as one line."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "item"
            raise InputError(f"cannot export item {fields.get('id')!r}: {where}: {first['msg']}") from None

    @classmethod
    def from_mcq(
        cls, item: BaseModel, *, id: str | None = None, seed: int | None = None, tags: list[str] | None = None
    ) -> ExportItem:
        """From what ``coe.generate.generate_item`` returns (an ``MCQItem``; exports sit below the generate job,
        so any pydantic model with its fields will do)."""
        return cls._from_fields(item.model_dump(), id=id, seed=seed, tags=tags)

    @classmethod
    def from_record(
        cls, item: dict[str, Any], *, id: str | None = None, seed: int | None = None, tags: list[str] | None = None
    ) -> ExportItem:
        """From a stored item (``MCQItem.model_dump()``, e.g. a batch run's ledger entry)."""
        return cls._from_fields(item, id=id, seed=seed, tags=tags)

    @classmethod
    def from_console(
        cls, item: dict[str, Any], *, id: str | None = None, seed: int | None = None, tags: list[str] | None = None
    ) -> ExportItem:
        """From the console's item dict (``coe.ui.runs.Run.item()``); its variant becomes a tag."""
        variant = item.get("variant")
        tags = [*(tags or []), *([f"variant:{variant}"] if variant else [])]
        return cls._from_fields(item, id=id, seed=seed, tags=tags)

    @classmethod
    def _from_fields(cls, v: dict[str, Any], *, id: str | None, seed: int | None, tags: list[str] | None) -> ExportItem:
        from coe.agents.prompting import PROMPT_VERSION

        question, answer = v.get("question") or "", v.get("answer") or ""
        if id is None:  # stable across exports of the same item
            id = "item-" + hashlib.sha256(f"{question}\0{answer}".encode()).hexdigest()[:12]
        provenance = Provenance(
            model=v.get("model") or "",
            exemplar_ids=[str(e.get("id")) for e in v.get("exemplars") or [] if e.get("id")],
            prompt_version=PROMPT_VERSION,
            seed=seed,
            tags=list(tags or []),
            source=v["source"] if isinstance(v.get("source"), dict) else None,
        )
        return cls.build(
            id=id,
            question=question,
            answer=answer,
            distractors=list(v.get("distractors") or []),
            rationale=v.get("rationale"),
            distractor_notes=list(v.get("distractor_notes") or []),
            image=v.get("image"),
            status=v.get("status") or "unverified",
            reasons=list(v.get("reasons") or []),
            difficulty=v.get("difficulty"),
            check=_check_of(v),
            provenance=provenance,
        )

    def review_notes(self) -> list[str]:
        """What the reviewer should know before using the item: the claim to check, then the flags' reasons."""
        return [*([self.check] if self.check else []), *self.reasons]

    def options(self) -> list[Option]:
        """The answer and the distractors (each with its note as feedback), in this item's order."""
        notes = [*self.distractor_notes, *[""] * len(self.distractors)]
        entries = [(self.answer, True, ""), *((d, False, n) for d, n in zip(self.distractors, notes))]
        random.Random(self.id).shuffle(entries)
        return [
            Option(letter=LETTERS[i], text=text, correct=correct, feedback=note)
            for i, (text, correct, note) in enumerate(entries)
        ]

    def correct_option(self) -> Option:
        return next(o for o in self.options() if o.correct)

    def tags(self) -> list[str]:
        """Status, difficulty and provenance as ``key:value`` tags, for formats that only have tags."""
        p = self.provenance
        return [
            f"status:{self.status}",
            *([f"difficulty:{self.difficulty}"] if self.difficulty else []),
            *([f"model:{p.model}"] if p.model else []),
            *([f"prompt:{p.prompt_version}"] if p.prompt_version else []),
            *([f"seed:{p.seed}"] if p.seed is not None else []),
            *p.tags,
        ]

    def embedded_image(self) -> EmbeddedImage | None:
        """The image's own bytes, after ``coe.imageio`` has checked its size and that it decodes."""
        if self.image is None:
            return None
        from PIL import Image

        from coe.imageio import load_image

        load_image(self.image)
        data = Path(self.image).expanduser().read_bytes()
        with Image.open(Path(self.image).expanduser()) as probe:
            fmt = probe.format or "PNG"
        return EmbeddedImage(
            name=f"{self.id}.{fmt.lower().replace('jpeg', 'jpg')}",
            mime=Image.MIME.get(fmt, "application/octet-stream"),
            data=data,
        )


def _check_of(v: dict[str, Any]) -> str | None:
    """The claim to check of an item no model confirmed (an edited, verified item has none to check)."""
    if (v.get("status") or "unverified") == "verified":
        return None
    return v.get("check") or (v.get("verification") or {}).get("check") or None


def check_unique_ids(items: list[ExportItem]) -> None:
    """Ids name files and questions in an export, so two items must not share one."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InputError(f"two items share the id {item.id!r}; each exported item needs its own")
        seen.add(item.id)
