"""Ray executor (`pip install 'vidprep[ray]'`): work units on a Ray cluster, or on a local Ray sized to this machine.

Where it runs. With an address (``--ray-address`` or ``RAY_ADDRESS``; ``auto`` = the cluster ``ray start`` made on
this node) it connects and never starts a cluster; a failed connection is a usage error. Without one it starts a
private local Ray (``address="local"``, so a cluster left running by ``ray start`` is never picked up by accident)
with ``--workers`` CPUs (default: all cores), without a dashboard or usage-stats reporting (unless
``RAY_USAGE_STATS_ENABLED`` says otherwise), and shuts it down when the run ends. When the caller already called
``ray.init`` (a notebook, a test), that Ray is used as it is and left running.

How units run. CPU stages: one Ray task per work unit (``num_cpus=1``). Runs with a model (``features``) use a pool
of long-lived actors instead, one unit at a time per actor, created lazily up to the number of slots
(``--workers``, else the cluster's CPUs, or its GPUs when the model runs on CUDA and each actor requests
``num_gpus``). Each actor process builds the model once, on its first unit, through the per-process cache in
`vidprep.engine.worker.context_for`, and reuses it for every later unit. Why actors rather than relying on that cache
inside plain tasks: Ray does reuse a worker process for later CPU tasks (measured: 12 tasks on ``num_cpus=2`` ran
in 2 processes, so the cache was built twice), but a task that requests a GPU gets ``max_calls=1`` by default,
i.e. a fresh process per task, which would rebuild the model for every unit; actors also cap the number of models
in memory at the number of slots. Tasks and actor calls are retried on worker death; that is safe because a shard
appears under its final name only when complete.

Data movement. Every unit writes its own shard into the output directory, which must be the same path on every
node (a shared filesystem); workers start in the driver's working directory when it exists there, so relative
paths work locally. Only the small `UnitResult` (counts, ids, messages; no arrays) travels back. Arguments shared
by every task (the `Job`) are put in the object store once. At most ~2 units per slot are in flight; the task
stream is read on a feeder thread, so shard paths arriving on stdin start as soon as a slot is free and finished
shards are reported while the input is still arriving.

Output. stdout carries shard paths only. Worker stdout/stderr is not forwarded to the driver (``log_to_driver=False``,
which also silences Ray's worker chatter); instead each unit returns vidprep's log records (at the driver's level:
failed videos, shard written, ...) with its result and the driver replays them through its own handlers, on stderr.
Ray's own driver messages go to stderr: errors only for the private local Ray, warnings too for a cluster, INFO
and above with ``-v``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vidprep.errors import DependencyError, UsageError
from vidprep.host_heap import keep_freed_blocks

log = logging.getLogger("vidprep.executors.ray")

INSTALL = "pip install 'vidprep[ray]'"
PLAIN = (str, bytes, int, float, bool, type(None))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError(f"the ray executor needs Ray: {INSTALL}") from None
    return ray


def _enter(cwd: str) -> None:
    """Worker-side setup: the driver's working directory (when this node has it), idle OpenMP threads that sleep,
    and freed heap blocks kept for the next batch (`vidprep.host_heap`; threads Ray started before keep their own
    arenas)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_blocks()
    if cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)


class _LogCapture(logging.Handler):
    """Collects vidprep's log records in a worker, made picklable, to be replayed by the driver."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        record.exc_info = record.exc_text = record.stack_info = None
        self.records.append(record)


def _captured(fn: Callable[..., Any], args: tuple, level: int) -> tuple[Any, list[logging.LogRecord]]:
    """``fn(*args)`` and the vidprep log records (at ``level`` and above) it emitted."""
    logger = logging.getLogger("vidprep")
    handler, old_level = _LogCapture(level), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        return fn(*args), handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _call(fn: Callable[..., Any], cwd: str, level: int, *args: Any) -> tuple[Any, list[logging.LogRecord]]:
    """Body of the Ray task for one unit."""
    _enter(cwd)
    return _captured(fn, args, level)


class _UnitActor:
    """A long-lived worker process that keeps its per-process context (the model) between units."""

    def __init__(self, cwd: str) -> None:
        _enter(cwd)

    def run(self, fn: Callable[..., Any], level: int, *args: Any) -> tuple[Any, list[logging.LogRecord]]:
        return _captured(fn, args, level)


def _replay(records: list[logging.LogRecord]) -> None:
    """Emit a worker's log records through the driver's handlers (stderr), as if logged here."""
    for record in records:
        logging.getLogger(record.name).handle(record)


def _uses_model(task: tuple) -> bool:
    """True when a task carries a job whose run ends with a feature model (see `vidprep.engine.worker.Job.kind`)."""
    return any(getattr(arg, "kind", None) == "features" for arg in task)


class RayExecutor:
    """Runs each task on Ray (tasks, or an actor pool for model runs), yielding results in completion order."""

    def __init__(self, workers: int | None = None, *, address: str | None = None, gpus: float = 0,
                 actors: bool | None = None) -> None:
        self.ray = _import_ray()
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.gpus = gpus
        self.actors = actors
        self._started = False

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        verbose = log.isEnabledFor(logging.DEBUG)
        started = time.monotonic()
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False,
                         logging_level=logging.INFO if verbose else logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise UsageError(f"cannot connect to the Ray cluster at {self.address}: {err}") from None
            log.info("ray: connected to %s in %.1f s", self.address, time.monotonic() - started)
            return
        cpus = max(1, self.workers or os.cpu_count() or 1)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private, throw-away Ray: no usage reporting
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.INFO if verbose else logging.ERROR)
        self._started = True
        log.info("ray: started a local Ray with %d CPUs in %.1f s", cpus, time.monotonic() - started)

    def _slots(self) -> int:
        """How many units may run at once: --workers, else the cluster's CPUs (or GPUs / gpus per unit)."""
        resources = self.ray.cluster_resources()
        if self.gpus:
            have = resources.get("GPU", 0)
            if have < self.gpus:
                raise UsageError(f"the Ray cluster has {have:g} GPUs; each unit needs {self.gpus:g}")
            by_resource = int(have // self.gpus)
        else:
            by_resource = int(resources.get("CPU", 1))
        return max(1, min(self.workers, by_resource) if self.workers else by_resource)

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task in completion order; tasks may be a lazy stream (stdin)."""
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        self._init()
        try:
            yield from self._run(fn, first, tasks)
        finally:
            if self._started:
                self.ray.shutdown()
                self._started = False

    def _run(self, fn: Callable[..., Any], first: tuple, rest: Iterator[tuple]) -> Iterator[Any]:
        ray = self.ray
        slots = self._slots()
        use_actors = self.actors if self.actors is not None else bool(self.gpus) or _uses_model(first)
        level = logging.getLogger("vidprep").getEffectiveLevel()
        submit = (_ActorPool(ray, fn, slots, self.gpus, level) if use_actors
                  else _TaskSubmitter(ray, fn, self.gpus, level))
        window = slots if use_actors else 2 * slots
        shared = {id(a): (a, ray.put(a)) for a in first if not isinstance(a, PLAIN)}
        feed = _Feeder(first, rest, window)
        pending: dict[Any, Any] = {}
        try:
            while True:
                while len(pending) < window:
                    task = feed.get(block=not pending)
                    if task is None:
                        break
                    args = tuple(shared[id(a)][1] if id(a) in shared and shared[id(a)][0] is a else a for a in task)
                    ref, owner = submit(args)
                    pending[ref] = owner
                if not pending:
                    return
                wait_s = None if feed.finished or len(pending) >= window else 0.2
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
                for ref in ready:
                    submit.release(pending.pop(ref))
                    result, records = ray.get(ref)
                    _replay(records)
                    yield result
        finally:
            feed.stop()
            for ref in pending:
                _quietly(ray.cancel, ref, force=not use_actors)
            submit.close()


class _TaskSubmitter:
    """One Ray task per unit."""

    def __init__(self, ray: Any, fn: Callable[..., Any], gpus: float, level: int) -> None:
        self.fn, self.cwd, self.level = fn, os.getcwd(), level
        self.remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(_call)

    def __call__(self, args: tuple) -> tuple[Any, None]:
        return self.remote.remote(self.fn, self.cwd, self.level, *args), None

    def release(self, owner: None) -> None:
        pass

    def close(self) -> None:
        pass


class _ActorPool:
    """Up to ``size`` actors, one unit in flight each; actors are created when all existing ones are busy."""

    def __init__(self, ray: Any, fn: Callable[..., Any], size: int, gpus: float, level: int) -> None:
        self.ray, self.fn, self.size, self.cwd, self.level = ray, fn, size, os.getcwd(), level
        self.cls = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=2, max_task_retries=2)(_UnitActor)
        self.actors: list[Any] = []
        self.idle: list[Any] = []

    def __call__(self, args: tuple) -> tuple[Any, Any]:
        if not self.idle:
            if len(self.actors) >= self.size:
                raise RuntimeError("actor pool: no idle actor (window larger than the pool)")
            actor = self.cls.remote(self.cwd)
            self.actors.append(actor)
            self.idle.append(actor)
        actor = self.idle.pop()
        return actor.run.remote(self.fn, self.level, *args), actor

    def release(self, actor: Any) -> None:
        self.idle.append(actor)

    def close(self) -> None:
        for actor in self.actors:
            _quietly(self.ray.kill, actor)
        self.actors, self.idle = [], []


class _Feeder:
    """Reads the task stream on a daemon thread, so waiting for input never delays reporting finished units."""

    _END = object()

    def __init__(self, first: tuple, rest: Iterator[tuple], size: int) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        self.queue.put(first)
        self.finished = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(rest,), name="ray-feeder", daemon=True)
        self._thread.start()

    def _pump(self, rest: Iterator[tuple]) -> None:
        try:
            for task in rest:
                while not self._put(task):
                    if self._stopped.is_set():
                        return
            self._put_final(self._END)
        except BaseException as err:  # re-raised on the driver thread by get()
            self._put_final(err)

    def _put(self, item: object) -> bool:
        try:
            self.queue.put(item, timeout=0.5)
            return True
        except queue.Full:
            return False

    def _put_final(self, item: object) -> None:
        while not self._put(item) and not self._stopped.is_set():
            pass

    def get(self, *, block: bool) -> tuple | None:
        """The next task; None when the stream ended or (block=False) nothing is waiting."""
        if self.finished:
            return None
        try:
            item = self.queue.get(block=block)
        except queue.Empty:
            return None
        if item is self._END:
            self.finished = True
            return None
        if isinstance(item, BaseException):
            self.finished = True
            raise item
        return item

    def stop(self) -> None:
        self._stopped.set()


def _quietly(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        action(*args, **kwargs)
    except Exception:  # cleanup after the run's outcome is decided; never mask it
        log.debug("ray cleanup: %s failed", getattr(action, "__name__", action), exc_info=True)
