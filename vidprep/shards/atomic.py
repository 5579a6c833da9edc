"""Durable, atomic file writes: the one temp-name scheme of vidprep, fsync, publish, and proof of life.

Every file vidprep writes into OUT (shards, jpg/png/mp4 clips, index parts, index.jsonl, manifest.json,
errors.jsonl compaction, normalization rewrites) is first written under ``temp_path_for(final)``, a hidden sibling
``.<final>.tmp-<host>-<pid>-<random>``, then fsynced, renamed over the final name and the directory fsynced
(`publish`). A file under its final name is therefore always complete, and a crash leaves only names that
`vidprep.shards.cleanup` recognises.

While a temp file exists its writer *claims* it (`claim`): it holds a shared ``flock`` on it (works between processes of
one host) and a heartbeat thread touches its mtime every ``HEARTBEAT_S`` seconds (works across NFS hosts, where
flock is not reliable). Cleanup removes a temp only when nobody holds its lock and its writer is provably gone:
same host and the pid is dead, or another host and no heartbeat for ``STALE_AFTER_S``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("vidprep.shards.atomic")

HEARTBEAT_S = 60.0
#: A temp of another host is abandoned after this many seconds without a heartbeat (10 missed beats).
STALE_AFTER_S = 10 * HEARTBEAT_S
#: Lock files and temps are opened with this: a link planted under their name is an error, never followed.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
TEMP_RE = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<host>.*)-(?P<pid>\d+)-(?P<rand>[0-9a-f]+)$")


def safe_host(host: str) -> str:
    """Host name reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.\-]", "_", host) or "host"


def this_host() -> str:
    """This machine's host name as it appears in temp names."""
    return safe_host(socket.gethostname())


def temp_name(final: str, host: str, pid: int, rand: str) -> str:
    """Hidden temp name of a file being written; carries host and pid so stale leftovers can be recognised."""
    return f".{final}.tmp-{safe_host(host)}-{pid}-{rand}"


def parse_temp_name(name: str) -> dict | None:
    """``{"final", "host", "pid", "rand"}`` for a temp name, else None."""
    m = TEMP_RE.match(name)
    if not m:
        return None
    return {"final": m["final"], "host": m["host"], "pid": int(m["pid"]), "rand": m["rand"]}


def temp_path_for(final: str | Path) -> Path:
    """A fresh temp path next to ``final`` (same directory, so the rename is atomic)."""
    p = Path(final)
    return p.with_name(temp_name(p.name, socket.gethostname(), os.getpid(), secrets.token_hex(4)))


def fsync_file(path: str | Path) -> None:
    """Flush a closed file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str | Path) -> None:
    """Make a rename durable; a file system that cannot fsync a directory only loses durability, so log it."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as err:
        log.debug("cannot open %s to fsync: %s", directory, err)
        return
    try:
        os.fsync(fd)
    except OSError as err:
        log.debug("fsync of directory %s failed: %s", directory, err)
    finally:
        os.close(fd)


def publish(temp: str | Path, final: str | Path, *, synced: bool = False, sync_dir: bool = True) -> None:
    """fsync ``temp`` (unless ``synced``), rename it over ``final``, then fsync the directory (unless told not to:
    a caller publishing many files into one folder fsyncs the folder once, before it publishes what lists them)."""
    if not synced:
        fsync_file(temp)
    os.replace(temp, final)
    if sync_dir:
        fsync_dir(Path(final).parent)


@contextlib.contextmanager
def writing(final: str | Path, *, sync_dir: bool = True, lock: bool = True) -> Iterator[Path]:
    """Yield a claimed temp path for ``final``; on success publish it, on any exception remove it.

    ``lock=False`` for a path HDF5 creates by name: HDF5 takes an exclusive flock on it, which ours would block.
    """
    temp = temp_path_for(final)
    claim(temp, lock=lock)
    try:
        yield temp
    except BaseException:
        release(temp)
        _remove(temp)
        raise
    release(temp)  # before the rename: whoever opens the final file never meets our lock
    try:
        publish(temp, final, sync_dir=sync_dir)
    except BaseException:
        _remove(temp)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def atomic_write_bytes(final: str | Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``final`` durably and atomically."""
    with writing(final, sync_dir=sync_dir) as temp, open(temp, "wb") as fh:
        fh.write(data)


def atomic_write_text(final: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``final`` durably and atomically."""
    atomic_write_bytes(final, text.encode("utf-8"))


class _Claims:
    """Temp files this process is writing: an flock held on each, and one heartbeat thread touching them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._owner_pid = -1  # the pid whose heartbeat thread runs (a forked child has none until it claims)
        self._wake = threading.Event()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_parent)
        atexit.register(self.remove_unfinished)

    def remove_unfinished(self) -> None:
        """At exit: remove the temp files this process claimed and never published or discarded (an interrupt
        landed between creating one and the code that discards it on failure). A published temp name no longer
        exists, so only unfinished files go."""
        with self._lock:
            left, self._fds = self._fds, {}
        for path, fd in left.items():
            with contextlib.suppress(OSError):
                os.unlink(path)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _forget_parent(self) -> None:
        """In a forked child: the parent's claims are not ours, and its lock may have been held mid-beat."""
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)  # our copy only: the parent's descriptor keeps its lock
        self._lock = threading.Lock()
        self._fds = {}

    def claim(self, path: Path, lock: bool) -> None:
        fd = os.open(path, os.O_RDWR | NOFOLLOW | os.O_CREAT, 0o644)
        try:
            if lock:  # shared: HDF5 opening the temp read-only (validate) takes a shared flock too
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:  # e.g. a file system without locks: pid and heartbeat still protect it
            log.debug("cannot lock %s: %s", path, err)
        with self._lock:
            self._fds[str(path)] = fd
            if self._owner_pid != os.getpid():
                self._owner_pid = os.getpid()
                threading.Thread(target=self._beat, name="vidprep-heartbeat", daemon=True).start()

    def release(self, path: Path) -> None:
        with self._lock:
            fd = self._fds.pop(str(path), None)
        if fd is not None:
            os.close(fd)

    def _beat(self) -> None:
        pid = os.getpid()
        while not self._wake.wait(HEARTBEAT_S):
            if pid != os.getpid():
                return
            with self._lock:
                paths = list(self._fds)
            for p in paths:
                try:
                    os.utime(p)
                except OSError:  # renamed or removed since the listing: nothing to keep alive
                    pass


_CLAIMS = _Claims()


def claim(temp: str | Path, *, lock: bool = True) -> None:
    """Mark ``temp`` as being written by this process (creates it if needed): lock it and keep it alive."""
    _CLAIMS.claim(Path(temp), lock)


def release(temp: str | Path) -> None:
    """Stop claiming ``temp`` (after it was published or removed)."""
    _CLAIMS.release(Path(temp))


def is_locked(path: Path) -> bool:
    """True when an open file (of any process on this host, this one included) holds an flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDWR | NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the test lock if we got it
    return False


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive flock on the lock file ``path`` (created if missing; Linux NFS clients emulate it)."""
    fd = os.open(path, os.O_RDWR | NOFOLLOW | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
