"""Start the ffmpeg/ffprobe queries every decoding command makes (versions, pixel formats, filters, and the probe
of the first video file named on the command line) the moment the CLI starts, so they run while Python imports the
rest of vidprep (~0.3 s); `vidprep.media.ffmpeg` collects them.

Only the standard library (and `vidprep.media.ffinput`, which imports nothing else) is imported here, because this
runs before anything else. The probe is the exact command `vidprep.media.probe` would run, with the same input
restrictions, on a regular file with a video extension that the command names, so it reads nothing the run would
not; if the run never asks for it (another path spelling, an option's value), it is simply not used. A query
nobody collects is reaped at exit, so no process is left unreaped.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading

from vidprep.media.ffinput import VIDEO_EXTENSIONS, VIDEO_PROBE, ffprobe_command

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
    commands = [[exe, *args] for name, *args in (*VERSIONS, PIXEL_FORMATS, FILTERS) if (exe := shutil.which(name))]
    video, ffprobe = first_video(argv[1:]), shutil.which("ffprobe")
    if video is not None and ffprobe is not None:
        commands.append(ffprobe_command(ffprobe, video, *VIDEO_PROBE))
    for command in commands:  # a missing tool is left to the regular check, which reports it
        try:
            _started[tuple(command)] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                        stderr=subprocess.PIPE)
        except OSError:
            continue
    atexit.register(_reap)


def first_video(args: list[str]) -> str | None:
    """The first argument that names a regular file with a video extension (symlinks followed, as the probe does)."""
    for arg in args:
        if not arg.startswith("-") and os.path.splitext(arg)[1].lower() in VIDEO_EXTENSIONS and os.path.isfile(arg):
            return arg
    return None


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
