"""Executors run the picklable per-unit function over many work units: serially, in a process pool, or on Ray.

Each yields results as units finish (any order), so the driver can publish every shard the moment it is complete.
One registry, one protocol: ``executor(fn, tasks) -> Iterator[result]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from vidprep.errors import UsageError

EXECUTORS = ("serial", "process", "ray")


class Executor(Protocol):
    """Runs ``fn(*task)`` for every task and yields each outcome as it finishes."""

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]: ...


def default_executor() -> str:
    """process when more than one core is available, else serial."""
    return "process" if (os.cpu_count() or 1) > 1 else "serial"


def get_executor(name: str | None, workers: int | None, *, ray_address: str | None = None, gpus: float = 0) -> Executor:
    """Build the named executor; an unknown name or a missing optional package is a usage error."""
    name = name or default_executor()
    if name == "serial":
        from vidprep.executors.serial import SerialExecutor

        return SerialExecutor()
    if name == "process":
        from vidprep.executors.process import ProcessExecutor

        return ProcessExecutor(workers)
    if name == "ray":
        from vidprep.executors.ray import RayExecutor

        return RayExecutor(workers, address=ray_address, gpus=gpus)
    raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
