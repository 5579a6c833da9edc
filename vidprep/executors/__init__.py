"""Executors run the picklable per-unit function over many work units: serially, in a process pool, or on Ray.

Each yields results as units finish (any order), so the driver can publish every shard the moment it is complete.
One registry, one protocol: ``executor(fn, tasks) -> Iterator[result]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from vidprep.errors import UsageError
from vidprep.executors.threads import available_cpus

EXECUTORS = ("serial", "process", "ray")


class Executor(Protocol):
    """Runs ``fn(*task)`` for every task and yields each outcome as it finishes."""

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]: ...


def default_executor(tasks: int | None = None, workers: int | None = None) -> str:
    """serial when the work fits one process (one known task, one worker or one CPU), else process.

    A single unit gains nothing from a pool and would pay its start-up (a second import of torch), so it runs in
    this process with every core.
    """
    one_task = tasks is not None and tasks <= 1
    return "serial" if one_task or workers == 1 or available_cpus() == 1 else "process"


def get_executor(name: str | None, workers: int | None, *, ray_address: str | None = None, gpus: float = 0,
                 tasks: int | None = None, preload: Sequence[str] = ()) -> Executor:
    """Build the named executor (default: `default_executor`); an unknown name or a missing optional package is a
    usage error. ``tasks`` (when known) caps the pool; ``preload`` names modules pool workers should start with."""
    name = name or default_executor(tasks, workers)
    if name == "serial":
        from vidprep.executors.serial import SerialExecutor

        return SerialExecutor()
    if name == "process":
        from vidprep.executors.process import ProcessExecutor

        return ProcessExecutor(workers, tasks=tasks, preload=preload)
    if name == "ray":
        from vidprep.executors.ray import RayExecutor

        return RayExecutor(workers, address=ray_address, gpus=gpus)
    raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
