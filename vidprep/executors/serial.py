"""Serial executor: every unit in this process, in order (the default on one core, and the reference)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


class SerialExecutor:
    """Runs tasks one after another in the calling process."""

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """Yield ``fn(*task)`` for each task, in order."""
        for task in tasks:
            yield fn(*task)
