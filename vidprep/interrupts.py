"""Ctrl-C that cannot be lost: the CLI's SIGINT handler also records the request, and the engine checks it.

Python raises KeyboardInterrupt wherever the main thread happens to be, and in a few places it is swallowed: inside
a weakref callback or ``__del__`` run by the garbage collector ("Exception ignored in ..."), or inside a C library
that called back into Python (HDF5 writing through its file object) and turns it into an ordinary error. A run
interrupted there went on to the end (exit 0), or failed the video being written (exit 3). With
:func:`install` (the CLI does) the request is also remembered, and :func:`check` raises it again at the engine's
safe points (every decoded chunk, before a unit is committed, when a video fails), so the run stops with 130.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested = threading.Event()


def install() -> None:
    """Handle SIGINT by recording it and raising KeyboardInterrupt (Python's own behaviour, plus the record).
    Main thread only, as any signal handler; the CLI calls it before running a command."""
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even when the first one was swallowed somewhere."""
    if _requested.is_set():
        raise KeyboardInterrupt


def requested() -> bool:
    """Whether Ctrl-C was pressed during this process (as recorded by the handler :func:`install` sets)."""
    return _requested.is_set()
