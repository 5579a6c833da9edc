"""Where the CLI's words go: data on stdout, messages and progress on stderr, logging set up once here.

The library configures no logging handlers (STYLE.md); the application does, in `setup_logging`.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from vidprep.errors import VidprepError

log = logging.getLogger("vidprep.cli")


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else " ".join(text.split())


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Send vidprep's log records to stderr: warnings only with -q, debug with -v, info otherwise."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("vidprep")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("vidprep: %(message)s" if not verbose else "vidprep %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def emit(line: str) -> None:
    """Print one data line on stdout and flush at once, so a downstream pipe stage can start on it."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    emit(json.dumps(obj, default=str, ensure_ascii=False))


def report_error(err: BaseException) -> None:
    """One line on stderr for an error that ends the command."""
    text = str(err) if isinstance(err, VidprepError) else f"{type(err).__name__}: {err}"
    sys.stderr.write("vidprep: error: " + " ".join(text.split()) + "\n")
    sys.stderr.flush()


def exits_on_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for commands: a VidprepError becomes one stderr line and its exit code (works under CliRunner)."""
    import typer

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VidprepError as err:
            report_error(err)
            raise typer.Exit(err.exit_code) from None

    return wrapper
