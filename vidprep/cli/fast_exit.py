"""Leave the process as soon as a command's work is done, without tearing down the interpreter.

A finished command has closed and fsynced its outputs; what remains is Python's finalization, which with torch and
torchvision loaded walks and frees tens of thousands of objects and modules: 1-3 s here, more than a short job's
real work. The entry points (`vidprep`, `python -m vidprep`) therefore run the exit handlers (``atexit``: pools,
Ray, temp files), flush logging and the standard streams, and then end the process with ``os._exit``.

Only the process entry points use this; library callers and in-process tests call ``vidprep.cli.app.main`` and get
an ordinary ``SystemExit``. When a thread we did not start is still running, the normal shutdown (which joins it)
is kept.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def run(entry: Callable[[], None]) -> NoReturn:
    """Run ``entry`` (a CLI main) and end the process with its exit status, skipping interpreter teardown."""
    try:
        entry()
        code = 0
    except SystemExit as done:
        code = _status(done.code)
    _leave(code)


def _status(code: object) -> int:
    """`sys.exit` semantics: None is 0, an int is itself, anything else is printed and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def _leave(code: int) -> NoReturn:
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # the normal shutdown joins non-daemon threads; keep their work
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed reader of our stdout is its choice, not our failure
            pass
    os._exit(code)
