"""Each LLM step's reply as one pydantic model, and everything derived from it: the JSON schema the backends
decode with (llama.cpp grammars, OpenAI ``response_format``, the transformers plugins' validated parse), the
reply-format line of the step's prompt (its ``{reply_format}`` slot), and the parser of the reply.

A reply has one field, named after the step. Two output modes: ``json`` (the schema-bound object) and
``coe`` (the paper's free-text shapes, "Question: ..." or a numbered list, with no schema).

The parser checks what the step needs to go on. What the step's own checks judge and send back to the model
as feedback — the number of distractors and the pool they are chosen from (``validation.validate_distractors``)
— is the decoder's alone: written into the schema with ``json_schema_extra``, not checked when parsing."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Annotated, Any, ClassVar
from weakref import WeakKeyDictionary

from pydantic import AfterValidator, BaseModel, Field, ValidationError, ValidationInfo, create_model, model_validator

from coe.plugins.llm.reply import parse_json_text
from coe.text import one_line

from .parsing import drop_repeated_sentences, numbered_list, prefixed, salvage_truncated
from .validation import normalize

MODES = ("json", "coe")
# llama.cpp's schema-to-grammar conversion breaks (and can crash the process) on enum strings with quotes,
# backslashes or control characters, so only plain strings can be enforced by the schema.
_UNSAFE_ENUM = re.compile(r'["\\\x00-\x1f]')
_SCHEMAS: WeakKeyDictionary[type, dict[str, Any]] = WeakKeyDictionary()  # contract -> its JSON schema
# Key order of the schemas the quality numbers were measured with: the transformers and OpenAI "none" modes
# spell the schema out in the prompt, so its bytes are part of the prompt.
_KEY_ORDER = ("type", "enum", "minItems", "maxItems", "items", "properties", "required")


def _text(what: str, max_chars: int | None = None, *, clip: int | None = None):
    """One line of text; empty is refused, and longer than ``max_chars`` refused or cut at ``clip``.
    Lengths are checked here, not in the schema: llama.cpp grammars blow up on large repetition counts."""

    def check(value: str) -> str:
        value = one_line(value)
        if not value:
            raise ValueError(f"{what} is empty")
        if max_chars is not None and len(value) > max_chars:
            raise ValueError(f"{what} is longer than {max_chars} characters")
        return value[:clip] if clip else value

    return AfterValidator(check)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown output mode {mode!r}; use one of {MODES}")
    return mode


class Reply(BaseModel):
    """A step's reply. ``label``: the free-text prefix of a text reply ("Question: ..."); ``item``: one entry
    of a list reply ("one distractor per line"); ``salvage``: a JSON reply the token limit cut off inside
    the text keeps its complete sentences."""

    label: ClassVar[str] = ""
    item: ClassVar[str] = ""
    salvage: ClassVar[bool] = False

    @classmethod
    def key(cls) -> str:
        return next(iter(cls.model_fields))

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        # built once per contract: pydantic's schema generation costs milliseconds, and every model call
        # of every item asks for it (twice: the prompt's reply format and the decoder's grammar)
        schema = _SCHEMAS.get(cls)
        if schema is None:
            schema = _SCHEMAS[cls] = _plain(cls.model_json_schema())
        return copy.deepcopy(schema)

    @classmethod
    def reply_format(cls, mode: str = "json") -> str:
        """The prompt's line that tells the model the shape of its reply."""
        if check_mode(mode) == "coe":
            return (
                f'Respond with one {cls.item} per line, numbered "(1) ...", "(2) ...".'
                if cls.item
                else f'Respond in the format "{cls.label}: ...".'
            )
        key = cls.key()
        return f'Reply with JSON: {{"{key}": {_shape(cls.json_schema()["properties"][key])}}}'

    @classmethod
    def parse(cls, data: Any, text: str, mode: str = "json", context: dict[str, Any] | None = None) -> Any:
        """The reply's value (``data``: its JSON when the backend parsed it); ValueError when unusable.
        ``context`` goes to the model's validators (the item's answer, say)."""
        key = cls.key()
        if check_mode(mode) == "coe":
            payload: Any = {key: numbered_list(text) if cls.item else prefixed(text, cls.label)}
        else:
            payload = cls._json(data, text)
        try:
            return getattr(cls.model_validate(payload, context=context), key)
        except ValidationError as exc:
            raise ValueError(_problems(exc, key)) from None

    @classmethod
    def _json(cls, data: Any, text: str) -> Any:
        key = cls.key()
        broken: ValueError | None = None
        try:
            payload = data if data is not None else parse_json_text(text)
        except ValueError as exc:
            payload, broken = None, exc
        if not (isinstance(payload, dict) and key in payload) and cls.salvage:
            cut = salvage_truncated(text, key)
            if cut is not None:
                return {key: cut}
        if broken is not None:
            raise broken
        return payload


def _problems(exc: ValidationError, key: str) -> str:
    """A validation error as one line: a validator's own sentence, else where and what."""
    out = []
    for e in exc.errors():
        if e["type"] == "value_error":
            out.append(str(e["ctx"]["error"]))
        elif e["type"] == "missing":
            out.append(f"JSON reply lacks {key!r}")
        elif e["type"] in ("model_type", "model_attributes_type"):
            out.append(f"JSON reply is not an object with {key!r}")
        else:
            out.append(f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
    return "; ".join(out)


def _plain(schema: Any, *, names: bool = False) -> Any:
    """The schema without pydantic's titles, its keys in the order the decoders have always been sent."""
    if not isinstance(schema, dict):
        return [_plain(s) for s in schema] if isinstance(schema, list) else schema
    if names:  # "properties": the keys are field names, each value a schema
        return {k: _plain(v) for k, v in schema.items()}
    keys = sorted(
        (k for k in schema if k != "title"), key=lambda k: _KEY_ORDER.index(k) if k in _KEY_ORDER else len(_KEY_ORDER)
    )
    return {k: _plain(schema[k], names=k == "properties") for k in keys}


def _shape(spec: dict[str, Any]) -> str:
    if spec.get("type") != "array":
        return '"..."'
    n = spec.get("minItems") if spec.get("minItems") == spec.get("maxItems") else None
    kind = f"{spec.get('items', {}).get('type', 'value')}s"
    return f"[...{n} {kind}...]" if n is not None else f"[...{kind}...]"


class QuestionReply(Reply):
    label: ClassVar[str] = "Question"
    question: Annotated[str, _text("question", 400)]

    @model_validator(mode="after")
    def _not_the_answer(self, info: ValidationInfo) -> QuestionReply:
        answer = (info.context or {}).get("answer")
        if answer is not None and normalize(self.question) == normalize(answer):
            raise ValueError("the question only restates the answer")
        return self


class RationaleReply(Reply):
    label: ClassVar[str] = "Rationale"
    salvage: ClassVar[bool] = True
    # small models loop: a sentence said twice is kept once
    rationale: Annotated[str, _text("rationale", 2000), AfterValidator(drop_repeated_sentences)]


class DistractorsReply(Reply):
    """Options as written: ``validation.validate_distractors`` cleans and judges them, with feedback."""

    item: ClassVar[str] = "distractor"
    distractors: list[str]


Note = Annotated[str, _text("a note", clip=300)]


class NotesReply(Reply):
    """One short misconception note per distractor, in the distractors' order."""

    item: ClassVar[str] = "note"
    notes: list[Note]

    @model_validator(mode="after")
    def _one_each(self) -> NotesReply:
        if len({normalize(x) for x in self.notes}) < len(self.notes):
            # one sentence copied for every option explains none of them (small models do this)
            raise ValueError("the notes repeat each other; each wrong option needs its own")
        return self


def enforceable(choices: list[str]) -> list[str]:
    """The choices a schema enum can hold (see ``_UNSAFE_ENUM``)."""
    return [c for c in choices if not _UNSAFE_ENUM.search(c)]


def distractors_reply(n: int, choices: list[str] | None = None) -> type[DistractorsReply]:
    """``n`` distractors, each one of ``choices`` when given (the model chooses instead of inventing)."""
    return _distractors_reply(n, tuple(choices) if choices else None)


@lru_cache(maxsize=256)  # one class per shape: a batch asks again and again for the same few
def _distractors_reply(n: int, choices: tuple[str, ...] | None) -> type[DistractorsReply]:
    option: Any = Annotated[str, Field(json_schema_extra={"enum": list(choices)})] if choices else str
    return create_model(
        "Distractors",
        __base__=DistractorsReply,
        distractors=(list[option], Field(json_schema_extra={"minItems": n, "maxItems": n})),
    )


@lru_cache(maxsize=16)
def notes_reply(n: int) -> type[NotesReply]:
    return create_model("Notes", __base__=NotesReply, notes=(list[Note], Field(min_length=n, max_length=n)))
