"""How many CPU threads each running work unit gets: the CPUs this process may use, split among the units running.

A fixed split (cores // workers) leaves cores idle whenever fewer units than workers are running: a single-video
job, or the tail of a batch. Instead every worker of a pool shares one counter of units running right now and gives
its unit ``cpus // running`` torch intra-op threads, re-read before every inference batch, so a unit that finds
itself alone takes the whole machine. A user's ``OMP_NUM_THREADS`` (set before vidprep started) is respected: it
fixes the thread count of every process. ffmpeg decoders keep their own automatic thread count (all cores).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

log = logging.getLogger("vidprep.executors.threads")

#: The user's per-process thread count; vidprep itself never sets this variable.
USER_THREADS_ENV = "OMP_NUM_THREADS"


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2 CPU quota when one is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(n, quota)) if quota else max(1, n)


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """Whole CPUs allowed by a cgroup v2 quota (``cpu.max``: "max 100000" or "200000 100000"), or None."""
    try:
        quota, period = Path(path).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) / int(period)))


def user_threads() -> int | None:
    """Threads per process fixed by the user's ``OMP_NUM_THREADS`` (a positive integer), else None."""
    text = os.environ.get(USER_THREADS_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


class ThreadShare:
    """The CPUs split among the work units running now (all of them in-process; a shared counter in a pool).

    Arguments:
        cpus: CPUs available to the whole run.
        fixed: a thread count to use whatever runs (the user's OMP_NUM_THREADS), or None.
        running: a counter shared by the workers of a pool, or None when units run one at a time in this process.
    """

    def __init__(self, cpus: int, fixed: int | None = None, running: Synchronized | None = None) -> None:
        self.cpus, self.fixed, self.running = max(1, cpus), fixed, running
        self._applied: int | None = None

    def threads(self) -> int:
        """Threads for a unit of this process now: ``fixed``, else the CPUs divided by the units running."""
        if self.fixed:
            return self.fixed
        active = self.running.value if self.running is not None else 1
        return max(1, self.cpus // max(1, active))

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Count this process's unit as running while the block runs, and apply the thread count at its start."""
        self._add(1)
        try:
            self.apply()
            yield
        finally:
            self._add(-1)

    def apply(self) -> int:
        """Set torch's intra-op threads to ``threads()`` if torch is loaded and the count changed; return it.

        A torch still being imported (by a model built in the background) may not have ``set_num_threads`` yet:
        then nothing is set now (the next unit sets it; this thread's default is every CPU meanwhile)."""
        n = self.threads()
        set_threads = getattr(sys.modules.get("torch"), "set_num_threads", None)
        if n != self._applied and set_threads is not None:
            set_threads(n)
            log.debug("torch threads: %d", n)
            self._applied = n
        return n

    def _add(self, delta: int) -> None:
        if self.running is not None:
            with self.running.get_lock():
                self.running.value += delta


_SHARE: ThreadShare | None = None


def current() -> ThreadShare:
    """This process's share: all CPUs (or the user's fixed count) unless a pool worker installed its own."""
    global _SHARE
    if _SHARE is None:
        _SHARE = ThreadShare(available_cpus(), user_threads())
    return _SHARE


def install(share: ThreadShare) -> None:
    """Make ``share`` this process's share (a pool worker's initializer calls this)."""
    global _SHARE
    _SHARE = share
