"""Find and remove temp files that crashed writers left in an output directory, without touching live ones.

Temp names come from `vidprep.shards.atomic` (the only scheme). A temp is removed only when its writer is gone:
nobody holds its flock, and either it was written on this host by a pid that no longer exists, or on another host
and its heartbeat (mtime) is older than ``stale_after_s``. Other processes rename and remove temps all the time, so
every step tolerates a file vanishing between listing and use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from vidprep.shards import atomic

log = logging.getLogger("vidprep.shards.cleanup")


def find_temp(out_dir: str | Path, *, subdirs: Iterable[str | Path] = ()) -> list[Path]:
    """Temp files in ``out_dir`` and, recursively, in each of ``subdirs`` (relative to it) that exist."""
    root = Path(out_dir)
    found = _temps_in(root)
    inside = root.resolve()
    for sub in subdirs:
        top = root / sub
        if not top.resolve().is_relative_to(inside):  # never search (and clean) outside the output directory
            continue
        for dirpath, _dirs, files in os.walk(top, onerror=lambda err: None):
            found += [Path(dirpath) / name for name in files if atomic.parse_temp_name(name)]
    return sorted(set(found))


def _temps_in(directory: Path) -> list[Path]:
    try:
        with os.scandir(directory) as entries:
            return [Path(e.path) for e in entries if atomic.parse_temp_name(e.name) and _is_file(e)]
    except FileNotFoundError:
        return []


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def cleanup_temp(out_dir: str | Path, *, stale_after_s: float = atomic.STALE_AFTER_S,
                 subdirs: Iterable[str | Path] = ()) -> list[Path]:
    """Remove abandoned temp files (see module doc); returns the removed paths. ``subdirs`` are searched too
    (image/mp4 outputs write into per-video folders). ``stale_after_s=0`` removes other hosts' unlocked temps at
    once (only for a directory no other host is writing to)."""
    removed = []
    for p in find_temp(out_dir, subdirs=subdirs):
        if is_abandoned(p, stale_after_s):
            try:
                p.unlink()
            except FileNotFoundError:
                continue  # its writer renamed or removed it meanwhile
            removed.append(p)
            log.info("removed leftover temp file %s", p)
    return removed


def remove_own_temp(out_dir: str | Path) -> list[Path]:
    """Remove the temp files directly in ``out_dir`` that this process (this host and pid) left: called when the
    run stops on an interrupt or an error, when nothing of this process is still being written (an interrupt can
    land between creating a temp file and the code that discards it on failure)."""
    removed = []
    host, pid = atomic.safe_host(atomic.this_host()), os.getpid()
    for p in _temps_in(Path(out_dir)):
        parsed = atomic.parse_temp_name(p.name)
        if parsed is not None and parsed["host"] == host and int(parsed["pid"]) == pid:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def is_abandoned(path: Path, stale_after_s: float = atomic.STALE_AFTER_S) -> bool:
    """True when ``path`` is a temp file whose writer is gone (False when it vanished or is in use)."""
    info = atomic.parse_temp_name(path.name)
    if info is None or atomic.is_locked(path):
        return False
    if info["host"] == atomic.this_host():
        return not pid_alive(info["pid"])
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age >= stale_after_s


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (ours always does)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
