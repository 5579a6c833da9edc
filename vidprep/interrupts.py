"""Ctrl-C that cannot be lost: the CLI's SIGINT handler also records the request, and the engine checks it.

Python raises KeyboardInterrupt wherever the main thread happens to be, and in places it is swallowed: inside a
weakref callback or ``__del__`` run by the garbage collector ("Exception ignored in ..."), where a signalled ``split``
went on to the end (exit 0); another signalled run failed the video being written instead (exit 3, its shard no
longer validating), the interrupt turned into an ordinary error on the way. With
:func:`install` (the CLI does) the request is also remembered, and :func:`check` raises it again at the engine's
safe points (every decoded chunk, before a unit is committed, when a video fails, after each unit), so the run
stops with 130.
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
