"""The ``coe`` command line: the command families live in ``coe.commands``; errors reach the user as one
line: exit 2 for bad input, 1 otherwise (3 for ``generate --strict`` on an item that is not verified, 130 with
"coe: aborted" on Ctrl-C)."""

from __future__ import annotations

import os
import signal
import sys

import click
import typer

from coe.commands import batch, evaluate, finetune, generate, index, models, rank
from coe.commands import ingest as ingest_cmd
from coe.commands.bank import bank_app
from coe.errors import CoeError
from coe.text import one_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Chain-of-Exemplar multiple-choice question generation.",
)
app.add_typer(models.models_app, name="models")
app.add_typer(index.index_app, name="index")
app.add_typer(finetune.finetune_app, name="finetune")
app.add_typer(batch.batch_app, name="batch")
app.add_typer(bank_app, name="bank")
app.add_typer(rank.rank_app, name="rank")
app.command("generate")(generate.generate)
app.command("ui")(generate.ui)
app.command("eval")(evaluate.eval_command)
app.command("bench")(evaluate.bench_command)
app.command("ingest")(ingest_cmd.ingest)
app.command("suggest")(ingest_cmd.suggest)
app.add_typer(ingest_cmd.material_app, name="material")


def _is_usage_error(exc: BaseException) -> bool:
    # typer vendors its own copy of click, whose usage errors are not click's classes but keep click's
    # shape: a ``format_message()`` and exit code 2.
    return isinstance(exc, click.exceptions.UsageError) or (
        getattr(exc, "exit_code", None) == 2 and callable(getattr(exc, "format_message", None))
    )


def _abort() -> None:
    print("coe: aborted", file=sys.stderr)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from coe.plugins.llm.llamacpp import on_sigint

    # Ctrl-C also stops a llama.cpp call in progress, which a plain KeyboardInterrupt would wait out.
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        _run(argv)
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(argv: list[str] | None) -> None:
    try:
        rv = app(args=argv, standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        _abort()
    except CoeError as exc:
        print(f"coe: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a usage error, or unexpected: still one line, the traceback on request
        if _is_usage_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":  # help is already printed
                sys.exit(0)
            print(f"coe: error: {one_line(exc.format_message())}", file=sys.stderr)  # type: ignore[attr-defined]
            sys.exit(2)
        from coe.settings import settings

        if settings().debug:
            raise
        print(
            f"coe: internal error: {type(exc).__name__}: {one_line(str(exc))} (set COE_DEBUG=1 for details)",
            file=sys.stderr,
        )
        sys.exit(1)
    if rv == 130:  # typer turns a KeyboardInterrupt into this exit code, silently
        _abort()
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
