"""Process executor: a spawn-based pool of single-purpose worker processes on this machine.

Spawn (not fork) so workers start clean of the driver's threads and torch state. Each worker gets an equal share
of the cores for torch's intra-op threads (on 2 cores: 2 workers x 1 thread beat 1 worker x 2 threads, because
decode and inference are both CPU-bound and idle torch threads spin), and builds heavy objects such as a model
once, on its first unit (see `vidprep.worker.context_for`).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _init_worker(threads: int, log_level: int, log_format: str | None) -> None:
    """Worker set-up: thread budget before torch is imported, and logging like the parent's (stderr)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["VIDPREP_TORCH_THREADS"] = str(threads)
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


class ProcessExecutor:
    """A spawn pool of ``workers`` processes (default: one per core); results arrive as units finish."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task in completion order; tasks may be a lazy stream (stdin)."""
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        ctx = mp.get_context("spawn")
        payloads = ((fn, t) for t in itertools.chain([first], tasks))
        init = (threads, logging.getLogger("vidprep").getEffectiveLevel(), _log_format())
        with ctx.Pool(self.workers, initializer=_init_worker, initargs=init) as pool:
            yield from pool.imap_unordered(_call, payloads, chunksize=1)
