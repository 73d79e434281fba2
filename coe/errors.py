"""Error types the CLI maps to exit codes and one-line messages."""

from typing import Any


class CoeError(Exception):
    """Base class: a failure that should reach the user as one line."""

    exit_code = 1


class InputError(CoeError):
    """The user's input is unusable (bad file, empty answer, ...): exit 2."""

    exit_code = 2


class ConfigError(CoeError):
    """Something the user must set up first (model not pulled, data missing)."""

    exit_code = 1


class ModelOutputError(CoeError):
    """The model's output could not be parsed, validated or repaired."""

    exit_code = 1
    # the failed call's trace (raw replies, parse errors), set where the call gives up
    trace: dict[str, Any]


class QuestionMismatch(InputError):
    """A given question that the given answer does not answer (judged by the answering agent)."""


class FlaggedItem(CoeError):
    """``--strict``: the item was generated but flagged by verification."""

    exit_code = 3
