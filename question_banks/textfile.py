"""Bank files as text: UTF-8 (a byte-order mark allowed), or one clear error."""

from __future__ import annotations

from coe.errors import InputError


def decode(data: bytes, name: str = "the file") -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{name} is not UTF-8 text (line {line}); save it as UTF-8 and import it again") from None
