"""The one place that builds ffmpeg/ffprobe command lines and owns their processes (DESIGN §3).

Every input is opened as ``file:<absolute path>`` with ``-protocol_whitelist file`` and a demuxer whitelist, so a
crafted file can neither open other files or URLs (HLS, concat, image2 playlists) nor pick an unexpected demuxer.
Every process is started from an argv list (never a shell), gets ``-nostdin``, has its stderr drained on a thread
(the last lines are kept for error messages), is killed when it stops making progress or outlives its wall-clock
limit, and is always waited for, so no ffmpeg is left running or unreaped.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO

from vidprep.errors import DependencyError, VidprepError
from vidprep.media import prefetch
from vidprep.media.ffinput import FORMAT_WHITELIST, PROTOCOL_WHITELIST, ffprobe_command
from vidprep.media.prefetch import FILTERS, PIXEL_FORMATS

log = logging.getLogger("vidprep.media.ffmpeg")

GLOBAL_ARGS: tuple[str, ...] = ("-nostdin", "-hide_banner", "-nostats", "-loglevel", "info")
INSTALL_HINT = ("install it, e.g. `apt-get install -y ffmpeg` (Debian/Ubuntu), `brew install ffmpeg` (macOS) "
                "or `conda install ffmpeg`")
MIN_VERSION = (5, 1)
"""Oldest ffmpeg/ffprobe release vidprep works with (``-fps_mode``, ``showinfo`` fields, ffprobe JSON it reads)."""
UPGRADE_HINT = ("Ubuntu 22.04 and Debian 11 ship 4.x: use a static build (https://johnvansickle.com/ffmpeg/ or "
                "https://github.com/BtbN/FFmpeg-Builds/releases, put it first on PATH), `conda install -c conda-forge "
                "'ffmpeg>=5.1'`, or `apt-get install ffmpeg` on Debian 12+ / Ubuntu 23.04+")
STDERR_TAIL_LINES = 50
_VERSION_RE = re.compile(r"^n?(\d+)\.(\d+)(?:\.(\d+))?")
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

_PREFIX_RE = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_NOISE_RE = re.compile(r"^(Conversion failed!|Exiting normally|frame=\s*\d+|video:\d+|Last message repeated \d+ times|"
                       r"\s*(Stream|Metadata|Duration|Input #|Output #|Side data|encoder|handler_name|vendor_id|"
                       r"major_brand|minor_version|compatible_brands)\b)")
_WHITELIST_RE = re.compile(r"^\[(\S+) @ 0x[0-9a-f]+\]\s*Format not on whitelist")
_GENERIC_RE = re.compile(r"(Invalid data found|Invalid argument|Error opening (input|output) file|Error while)")


def tool_path(name: str) -> str:
    """Absolute path of ``ffmpeg`` or ``ffprobe`` on PATH; DependencyError when missing."""
    found = shutil.which(name)
    if not found:
        raise DependencyError(f"{name} not found on PATH: {INSTALL_HINT}")
    return found


def require_ffmpeg() -> None:
    """Fail early (exit 2) when ffmpeg or ffprobe is missing, does not run, or is older than :data:`MIN_VERSION`."""
    from concurrent.futures import ThreadPoolExecutor

    def check(name: str) -> None:
        exe = tool_path(name)
        check_version(name, exe, tool_version(exe))

    with ThreadPoolExecutor(2) as pool:  # both at once: this is on every run's start-up path
        list(pool.map(check, ("ffmpeg", "ffprobe")))


def parse_version(text: str) -> tuple[int, ...] | None:
    """``(major, minor[, micro])`` of a release version string, or None for a build without one.

    Releases print ``5.1.6-0+deb12u1``, ``6.1.1-3ubuntu5``, ``7.0-static`` or ``n6.0`` (a tag build); git
    snapshots print ``N-112345-g0123abcd`` or a date (``2023-03-05-git-...``), which carry no release number."""
    match = _VERSION_RE.match(text)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def check_version(name: str, exe: str, version: str) -> None:
    """DependencyError (exit 2) naming the version when it is older than :data:`MIN_VERSION`.

    A git snapshot has no release number to compare: it is accepted (most are recent) with a debug log line."""
    parsed = parse_version(version)
    if parsed is None:
        log.debug("%s %s: version %r has no release number (a git build?); assuming it is recent enough",
                  name, exe, version)
        return
    if parsed < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise DependencyError(f"{name} {version} ({exe}) is too old: vidprep needs {name} >= {need}. "
                              f"{UPGRADE_HINT}")


def tool_version(exe: str) -> str:
    """The version string ``exe -version`` prints on its first line (e.g. ``5.1.9-0+deb12u1``)."""
    try:
        stdout = _query([exe, "-version"])
    except (OSError, subprocess.SubprocessError) as err:
        raise DependencyError(f"{exe} -version failed ({err}): {INSTALL_HINT}") from None
    first = stdout.decode("utf-8", "replace").splitlines()[:1]
    match = re.match(r"\S+ version (\S+)", first[0]) if first else None
    return match.group(1) if match else (first[0] if first else "unknown")


def tool_versions() -> dict[str, str]:
    """Versions of ffmpeg and ffprobe, for `vidprep env` and shard metadata."""
    return {name: tool_version(tool_path(name)) for name in ("ffmpeg", "ffprobe")}


def input_options() -> dict[str, str]:
    """Per-input options that restrict what ffmpeg/ffprobe may open (ffmpeg-python keyword form)."""
    return {"format_whitelist": FORMAT_WHITELIST, "protocol_whitelist": PROTOCOL_WHITELIST}


def with_globals(argv: Sequence[str]) -> list[str]:
    """Insert the global options right after the program name (ffmpeg-python appends them at the end)."""
    return [argv[0], *GLOBAL_ARGS, *argv[1:]]


def ffprobe_argv(path: str | Path, *args: str) -> list[str]:
    """An ffprobe command reading ``path`` safely, with ``args`` (e.g. ``-show_streams``) before the input."""
    return ffprobe_command(tool_path("ffprobe"), path, *args)


def summarize_stderr(lines: Sequence[str]) -> str:
    """The last meaningful stderr line, prefixed by the one before it when it is only a generic failure."""
    useful: list[str] = []
    for raw in lines:
        line = _clean_line(raw)
        if line and not _NOISE_RE.match(line) and (not useful or useful[-1] != line):
            useful.append(line)
    if not useful:
        return "no error message from ffmpeg"
    if len(useful) > 1 and _GENERIC_RE.search(useful[-1]):
        return f"{useful[-2]}: {useful[-1]}"
    return useful[-1]


def _clean_line(raw: str) -> str:
    """A stderr line without the ``[demuxer @ 0x..]`` and ``file:/path:`` prefixes; whitelist refusals reworded."""
    raw = raw.strip()
    if whitelist := _WHITELIST_RE.match(raw):
        return f"container format {whitelist.group(1)!r} is not supported"
    line = _PREFIX_RE.sub("", raw)
    return re.sub(r"^file:\S.*?: (?=\S)", "", line) if line.startswith("file:") else line


@lru_cache(maxsize=1)
def pixel_formats() -> dict[str, tuple[int, bool]]:
    """``{pix_fmt: (max component bit depth, has alpha)}`` from ``ffprobe -show_pixel_formats`` (cached)."""
    out = _checked_query([tool_path("ffprobe"), *PIXEL_FORMATS[1:]], "ffprobe")
    table = {}
    for fmt in json.loads(out).get("pixel_formats", []):
        depths = [c.get("bit_depth", 8) for c in fmt.get("components", [])] or [8]
        table[fmt["name"]] = (max(depths), bool(fmt.get("flags", {}).get("alpha")))
    return table


@lru_cache(maxsize=1)
def filters() -> frozenset[str]:
    """Names of the filters this ffmpeg build has (``ffmpeg -filters``, cached)."""
    out = _checked_query([tool_path("ffmpeg"), *FILTERS[1:]], "ffmpeg")
    names = set()
    for line in out.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and "->" in parts[2]:
            names.add(parts[1])
    return frozenset(names)


class FfmpegProcess:
    """One running ffmpeg/ffprobe child: data on stdout, stderr drained on a thread, killed and reaped on close.

    ``idle_timeout_s`` kills the process when it has shown no progress (no stdout data read through
    :meth:`read_into`, no stderr line) for that long, except while the caller says it is busy itself
    (:meth:`paused`), so a slow consumer never counts against ffmpeg. ``wall_timeout_s`` is an absolute limit.
    ``on_line`` sees every stderr line first (and None at end of stream); lines it returns True for are consumed
    and not kept in the tail.
    """

    def __init__(self, argv: Sequence[str], *, path: str, on_line: Callable[[str | None], bool] | None = None,
                 idle_timeout_s: float | None = None, wall_timeout_s: float | None = None,
                 stdin: int | None = subprocess.DEVNULL, stdout: int | None = subprocess.PIPE,
                 pipe_size: int | None = None, pass_fds: Sequence[int] = ()) -> None:
        self.argv = list(argv)
        self.path = path
        self.tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.timed_out: str | None = None
        self._on_line = on_line
        self._idle = idle_timeout_s
        self._wall = wall_timeout_s
        self._deadline = time.monotonic() + wall_timeout_s if wall_timeout_s else None
        self._last = time.monotonic()
        self._paused = 0
        self._stop = threading.Event()
        log.debug("running %s", " ".join(self.argv))
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, bufsize=0,
                                     pass_fds=tuple(pass_fds))
        if pipe_size and self.proc.stdout is not None:
            grow_pipe(self.proc.stdout.fileno(), pipe_size)
        self._threads = [threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True),
                         threading.Thread(target=self._watch, name="ffmpeg-watchdog", daemon=True)]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> FfmpegProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def touch(self) -> None:
        """Record progress (resets the idle clock)."""
        self._last = time.monotonic()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the idle clock while the caller is busy (e.g. waiting for its consumer)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1
            self.touch()

    def read_into(self, buf: memoryview) -> int:
        """Fill ``buf`` from stdout; returns the bytes read (less than ``len(buf)`` only at end of stream)."""
        stream = _raw_pipe(self.proc.stdout, "stdout")
        got, size = 0, len(buf)
        while got < size:
            n = stream.readinto(buf[got:])
            if not n:
                break
            got += n
            self.touch()
        return got

    def write(self, data: memoryview) -> None:
        """Write all of ``data`` to stdin (a raw pipe write may be partial)."""
        view = data.cast("B") if data.ndim != 1 or data.format != "B" else data
        stdin = _raw_pipe(self.proc.stdin, "stdin")
        while view:
            view = view[stdin.write(view):]
        self.touch()

    def close_stdin(self) -> None:
        """Close stdin: ffmpeg sees the end of its input."""
        _raw_pipe(self.proc.stdin, "stdin").close()

    def kill(self) -> None:
        """Kill the process if it is still running (idempotent)."""
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        """Wait for exit and for stderr to be fully drained; returns the exit status."""
        rc = self.proc.wait()
        self._threads[0].join()
        return rc

    def close(self) -> None:
        """Kill if running, reap, stop the helper threads and close the pipes. Safe to call twice."""
        self.kill()
        self.proc.wait()
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def failure(self) -> str | None:
        """Why the finished process failed (timeout or non-zero exit + last stderr lines), or None if it did not."""
        rc = self.wait()
        if self.timed_out:
            return self.timed_out
        if rc != 0:
            return f"{Path(self.argv[0]).name} failed (exit {rc}): {summarize_stderr(list(self.tail))}"
        return None

    def _drain(self) -> None:
        # Buffered: the pipe itself is unbuffered, and a raw readline() costs one read(2) per byte.
        for raw in io.BufferedReader(_raw_pipe(self.proc.stderr, "stderr"), 1 << 16):
            self.touch()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not self._feed(line):
                self.tail.append(line)
        self._feed(None)

    def _feed(self, line: str | None) -> bool:
        """Offer a line to ``on_line``; a failing callback is logged, never allowed to stop the draining."""
        if self._on_line is None:
            return False
        try:
            return bool(self._on_line(line))
        except Exception:  # noqa: BLE001 - an undrained stderr would deadlock ffmpeg
            log.exception("%s: stderr line handler failed on %r", self.path, line)
            return False

    def _watch(self) -> None:
        while not self._stop.wait(0.2) and self.proc.poll() is None:
            now = time.monotonic()
            if self._deadline is not None and now > self._deadline:
                self._expire(f"timed out after {self._wall:g} s")
            elif self._idle is not None and not self._paused and now - self._last > self._idle:
                self._expire(f"timed out: no progress for {self._idle:g} s")

    def _expire(self, reason: str) -> None:
        self.timed_out = f"{Path(self.argv[0]).name} {reason}"
        log.warning("%s: %s, killing %s", self.path, reason, Path(self.argv[0]).name)
        self.kill()


def grow_pipe(fd: int, want: int) -> int:
    """Enlarge a pipe to ``want`` bytes, capped at /proc/sys/fs/pipe-max-size; returns the size it got."""
    try:
        cap = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        cap = 1 << 20
    try:
        return fcntl.fcntl(fd, F_SETPIPE_SZ, min(max(want, 1 << 16), cap))
    except OSError:
        return 0


def _raw_pipe(pipe: IO[bytes] | None, name: str) -> io.FileIO:
    """A pipe of an FfmpegProcess: unbuffered (``bufsize=0`` makes it a FileIO), and there only when opened."""
    if not isinstance(pipe, io.FileIO):
        raise ValueError(f"the process has no {name} pipe (it was not started with subprocess.PIPE)")
    return pipe


def _query(argv: list[str], timeout_s: float = 30.0) -> bytes:
    """stdout of a short self-query (``-version``, ``-filters``...): the process the CLI started at launch
    (`vidprep.media.prefetch`) when there is one, else a new one. Raises CalledProcessError on a non-zero exit."""
    proc = prefetch.take(argv)
    if proc is None:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=True).stdout
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
    return out


def _checked_query(argv: list[str], name: str) -> bytes:
    """`_query`, with any failure a DependencyError naming the tool."""
    try:
        return _query(argv)
    except (OSError, subprocess.SubprocessError) as err:
        raise DependencyError(f"{name} failed ({err}): {INSTALL_HINT}") from None


def run_tool(argv: Sequence[str], *, path: str, timeout_s: float, error: type[VidprepError]) -> bytes:
    """Run a short command to completion and return its stdout; ``error`` (one line naming ``path``) on failure.

    The CLI may have started this very command at launch (`vidprep.media.prefetch`: a probe of the first video it
    names); its output is taken when it succeeded. Otherwise (it failed or timed out) the command runs again here,
    so a failure is reported exactly as without the head start."""
    early = prefetch.take(list(argv))
    if early is not None:
        try:
            out, _ = early.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            early.kill()
            early.communicate()
        else:
            if early.returncode == 0:
                return out
    with FfmpegProcess(argv, path=path, wall_timeout_s=timeout_s) as proc:
        out = _raw_pipe(proc.proc.stdout, "stdout").read()
        reason = proc.failure()
    if reason:
        raise error(reason, path=path)
    return out
