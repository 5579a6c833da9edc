"""Forward passes of one model on several threads at once, each with its own share of the intra-op threads.

On a CPU, two forward passes side by side with one thread each do far more work than one pass with two threads:
an intra-op parallel region waits for its slowest thread at every layer, and a decoder (ffmpeg) sharing the cores
makes one of them slow all the time. Measured on a 2-core AMD EPYC (bf16, batches already preprocessed, items/s,
one stream x 2 threads vs two streams x 1 thread): resnet18 105-117 vs 114-145, resnet50 25-26 vs 40-42,
r2plus1d_18 (16x112x112 clips, 2 per pass vs 1 per pass on each stream) 3.6-3.7 vs 5.2-5.7 at the same peak
memory, vit_b_16 9.0-9.4 vs 10.8-10.9. So a CPU extractor runs up to :data:`MAX_CPU_STREAMS` batches at once on
threads of its own; each sets its intra-op threads (a per-thread setting under OpenMP) to the budget divided by
the streams, re-read before every batch, because the engine's budget changes as other units start and finish.
Accelerators run one stream (their kernels are asynchronous already).

Results come back in submission order; at most as many batches are in flight as streams may run, so a caller that
submits while decoding holds at most that many batches of frames in memory. The stream threads are daemons (a
``ThreadPoolExecutor``'s are not): a finished command leaves at once (`vidprep.cli.fast_exit`) instead of falling
back to the interpreter's 1-3 s teardown because a live non-daemon thread must be joined; every result a command
needs has been collected before it ends, so nothing is lost. They are stopped and joined when their streams are
collected and at exit (``weakref.finalize``, whose exit hook the fast exit runs too): a daemon thread still alive
when the interpreter finalizes is killed wherever it is, and inside torch's C++ code that aborts the process.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

#: Streams of a CPU extractor when the budget allows (two measured above; more would only multiply the memory
#: of the batches in flight on the machines this was measured on).
MAX_CPU_STREAMS = 2

T = TypeVar("T")


def stream_count(device: str, threads: int) -> int:
    """Streams for a model on ``device`` with up to ``threads`` CPU threads: one per thread up to the maximum on a
    CPU, one on an accelerator."""
    return max(1, min(MAX_CPU_STREAMS, threads)) if device == "cpu" else 1


class ModelStreams:
    """Run jobs (one forward pass each) on up to ``streams`` threads, in order, with bounded work in flight.

    Arguments:
        streams: the most jobs that run at once.
        budget: the intra-op CPU threads this model may use now (all streams together); re-read before every job.
    """

    def __init__(self, streams: int, budget: Callable[[], int]) -> None:
        self.streams = max(1, streams)
        self.budget = budget
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any], int] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._in_flight: list[Future[Any]] = []  # submitted and not yet done
        weakref.finalize(self, _stop, self._jobs, self._threads)  # at collection or at exit

    def active(self) -> tuple[int, int]:
        """(streams allowed to run now, intra-op threads for each) from the current budget."""
        total = max(1, self.budget())
        running = min(self.streams, total)
        return running, max(1, total // running)

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Queue ``job``; wait first while as many jobs as streams may run now are still running."""
        running, each = self.active()
        self._in_flight = [f for f in self._in_flight if not f.done()]
        while len(self._in_flight) >= running:
            wait(self._in_flight, return_when=FIRST_COMPLETED)
            self._in_flight = [f for f in self._in_flight if not f.done()]
        if len(self._threads) < running:
            thread = threading.Thread(target=_serve, args=(self._jobs,), daemon=True,
                                      name=f"vidprep-model-{len(self._threads)}")
            thread.start()
            self._threads.append(thread)
        future: Future[T] = Future()
        self._jobs.put((future, job, each))
        self._in_flight.append(future)
        return future

    def map(self, jobs: Iterable[Callable[[], T]]) -> Iterator[T]:
        """Results of ``jobs`` in order, running up to the allowed number at once (``jobs`` is consumed lazily)."""
        pending: deque[Future[T]] = deque()
        for job in jobs:
            pending.append(self.submit(job))
            while pending and pending[0].done():
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _serve(jobs: queue.SimpleQueue) -> None:
    """A stream thread: run jobs until told to stop, setting this thread's intra-op threads when they change."""
    applied = None
    while (item := jobs.get()) is not None:
        future, job, threads = item
        if not future.set_running_or_notify_cancel():
            continue
        if threads != applied:
            import torch

            torch.set_num_threads(threads)
            applied = threads
        try:
            future.set_result(job())
        except BaseException as err:  # handed to whoever waits for the result
            future.set_exception(err)


def _stop(jobs: queue.SimpleQueue, threads: list[threading.Thread]) -> None:
    """End every stream thread once its current job is done, and wait for them (not from a stream thread itself)."""
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join()
