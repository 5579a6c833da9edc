"""Ray executor (`pip install 'vidprep[ray]'`): one Ray task per work unit, on a cluster or a local Ray.

With an address (``--ray-address`` or ``RAY_ADDRESS``) it connects and never starts a cluster; without one it starts
a local Ray sized to this machine. Every task writes its own shard into the shared output directory; only the small
UnitResult travels back. Tasks that run a model on CUDA request ``num_gpus``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vidprep.errors import DependencyError


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError("the ray executor needs Ray: pip install 'vidprep[ray]'") from None
    return ray


class RayExecutor:
    """Runs each task as a Ray remote function, yielding results in completion order."""

    def __init__(self, workers: int | None = None, *, address: str | None = None, gpus: float = 0) -> None:
        self.ray = _import_ray()
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.gpus = gpus

    def _init(self) -> None:
        if self.ray.is_initialized():
            return
        if self.address:
            self.ray.init(address=self.address, log_to_driver=False)
        else:
            self.ray.init(num_cpus=self.workers or os.cpu_count(), log_to_driver=False, include_dashboard=False)

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """Submit every task, then yield results as they complete."""
        self._init()
        remote = self.ray.remote(num_cpus=1, num_gpus=self.gpus)(fn)
        pending = [remote.remote(*task) for task in tasks]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(done[0])
