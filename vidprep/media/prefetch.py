"""Start the ffmpeg/ffprobe queries every decoding command makes (versions, pixel formats, filters) the moment the
CLI starts, so they run while Python imports the rest of vidprep (~0.4 s); `vidprep.media.ffmpeg` collects them.

Only the standard library is imported here, because this runs before anything else. A query nobody collects is
reaped at exit, so no process is left unreaped.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import threading

#: The commands that never decode videos; every other command (probe, run and each registered stage) asks ffmpeg
#: about itself first. Listed this way so a new stage needs no entry here (this module imports no vidprep code).
NON_DECODING_COMMANDS = frozenset({"shards", "filter", "dedup", "env", "-h", "--help", "--version"})
PIXEL_FORMATS = ("ffprobe", "-v", "error", "-show_pixel_formats", "-of", "json")
FILTERS = ("ffmpeg", "-hide_banner", "-filters")
VERSIONS = (("ffmpeg", "-version"), ("ffprobe", "-version"))

_started: dict[tuple[str, ...], subprocess.Popen[bytes]] = {}
_lock = threading.Lock()  # a query is taken by exactly one of: its collector, or the exit reaper


def start_for(argv: list[str]) -> None:
    """Start the queries when ``argv`` (the CLI arguments) names a decoding command; otherwise do nothing."""
    if not argv or argv[0] in NON_DECODING_COMMANDS or argv[0].startswith("-"):
        return
    for name, *args in (*VERSIONS, PIXEL_FORMATS, FILTERS):
        exe = shutil.which(name)
        if exe is None:
            continue  # the regular check reports the missing tool
        try:
            _started[(exe, *args)] = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL,
                                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError:
            continue
    atexit.register(_reap)


def take(argv: list[str]) -> subprocess.Popen[bytes] | None:
    """The already started process running exactly ``argv``, once; None if none was started."""
    with _lock:
        return _started.pop(tuple(argv), None)


def _reap() -> None:
    """At exit: kill and wait for the queries nobody collected. One still being collected on another thread is
    that thread's (two ``communicate`` calls on one process close its pipes under each other)."""
    with _lock:
        left = list(_started.values())
        _started.clear()
    for proc in left:
        proc.kill()
        try:
            proc.communicate()
        except (OSError, ValueError):  # pipes already gone: the process is killed, which is what matters here
            proc.wait()
