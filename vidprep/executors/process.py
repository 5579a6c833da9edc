"""Process executor: a pool of worker processes on this machine, forked from a server that preloaded the heavy modules.

Workers come from a forkserver (not spawn): the server imports torch/torchvision (or whatever the run needs) once,
and every worker is a fork of it, so the import (~3-6 s for torch + torchvision) is paid once per run instead of
once per worker, and it overlaps the driver's own start-up. The server has run no OpenMP region when it forks, so
the children's thread pools start clean. Where forkserver is missing (Windows) spawn is used.

Threads follow the work: every worker shares one counter of units running (`vidprep.executors.threads`), so a unit
running alone (one video, the tail of a batch) gets all cores, and N units share them. The pool never has more
workers than tasks when the number of tasks is known. Heavy objects such as a model are built once per worker, on
its first unit (see `vidprep.engine.worker.context_for`).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from vidprep.executors.threads import ThreadShare, available_cpus, install, user_threads
from vidprep.host_heap import keep_freed_blocks


def _init_worker(share: ThreadShare, log_level: int, log_format: str | None) -> None:
    """Worker set-up: freed heap blocks kept (`vidprep.host_heap`), the shared thread counter, and logging like the
    parent's (stderr)."""
    keep_freed_blocks()
    install(share)
    root = logging.getLogger("vidprep")
    root.setLevel(log_level)
    if log_format:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(log_format))
        root.handlers[:] = [handler]
        root.propagate = False


def _log_format() -> str | None:
    """The format of the parent's first vidprep handler, so worker lines look the same."""
    handlers = logging.getLogger("vidprep").handlers
    fmt = handlers[0].formatter if handlers else None
    return getattr(fmt, "_fmt", None)


def _call(payload: tuple[Callable[..., Any], tuple]) -> Any:
    fn, task = payload
    return fn(*task)


def _context(preload: Sequence[str]) -> Any:
    """A forkserver context preloading ``preload`` (started now, so its imports overlap the driver's), else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return ctx


class ProcessExecutor:
    """A pool of ``workers`` processes (default: one per available CPU); results arrive as units finish.

    Arguments:
        workers: pool size (capped by ``tasks`` when known).
        tasks: how many tasks ``map`` will get, when known, so no idle worker is started.
        preload: modules the forkserver imports once for every worker (e.g. torch for a features run).
    """

    def __init__(self, workers: int | None = None, *, tasks: int | None = None, preload: Sequence[str] = ()) -> None:
        self.cpus = available_cpus()
        self.workers = max(1, min(workers or self.cpus, tasks or workers or self.cpus))
        self._ctx = _context(preload)

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task in completion order; tasks may be a lazy stream (stdin)."""
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        share = ThreadShare(self.cpus, user_threads(), self._ctx.Value("i", 0))
        payloads = ((fn, t) for t in itertools.chain([first], tasks))
        init = (share, logging.getLogger("vidprep").getEffectiveLevel(), _log_format())
        with self._ctx.Pool(self.workers, initializer=_init_worker, initargs=init) as pool:
            yield from pool.imap_unordered(_call, payloads, chunksize=1)
