"""The two shapes a stage plugs into the engine as (DESIGN §2): frame steps and clip steps, and the video they see.

A **frame step** sees one video's frames in decode order, in chunks: ``start(video)``, then ``push(chunk) ->
chunk`` for every chunk (a step that changes pixels returns new ones; an observer returns the chunk it was given),
then ``finish() -> per-video arrays``. The arrays land in ``video.arrays[step.name]``; those named in
``step.stored`` are also written next to the video's frames (``/frames/<v>/<name>``).

Some frame steps must see *every decoded frame*, before sampling and enhancement, at their own resolution (scene
scoring, the quality metrics of a decoded video). They do not read the pushed chunks for that: after ``start``
they declare the extra decode outputs they need in ``branches()`` (:class:`vidprep.media.branches.Branch`, fed by
the same ffmpeg process on a reader thread), and the worker passes every step's branches to the decode. Their
``push`` then returns the chunk untouched, and ``finish`` (called after the decode ended and its branch readers
were joined) returns what the branches gave. For inputs with no decode (frames read from a shard) ``video.info``
is None, no branch exists, and such a step measures the pushed chunks instead or does nothing.

A **clip step** maps a video's clip rows to clip rows: ``apply(video, rows) -> rows`` (plan, curate, augment,
attach features, score). It reads frames again through ``video.read`` (declare ``rereads``) and may add new frame
runs with ``video.new_run`` (augment; declare ``replaces_frames`` when those runs replace the decoded frames in the
output). Optional hooks: ``on_run(row, frames)`` is called for every new frame run while its pixels are in memory
(features of augmented copies), ``begin_unit(sink)`` once per output unit (unit-level metadata) and
``describe()`` for the record of what a step applies (``/meta/config_json``).

Frame steps that change pixels (``transforms``) run before the observers, so every observer and the sink see the
frames as they are stored. Steps are built once per process (:mod:`vidprep.engine.registry`) and reused for
every video; ``start`` resets their per-video state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from vidprep.types import ClipRow, VideoInfo

if TYPE_CHECKING:
    from vidprep.engine.sinks import Sink
    from vidprep.media.branches import Branch

#: One chunk of a video's frames: (rgb (n,H,W,3) uint8, pts_s (n,) float64, decoded ordinal (n,) int64).
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Video:
    """One video as the steps see it: identity, its kept frames' timing, what frame steps found, frame access.

    ``info`` is None when the frames come from an input shard (no decode); ``rows_given`` then says the clip rows
    came with them. ``pts``/``idx`` (the kept frames' times and decoded ordinals) are set once the frames went by.
    """

    video_id: str
    info: VideoInfo | None
    label: int = -1
    rows_given: bool = False
    pts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    reader: Callable[[int, int], np.ndarray] | None = None
    appender: Callable[[np.ndarray, np.ndarray, np.ndarray], int] | None = None
    run_hooks: Sequence[RunHook] = ()

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` of the video's decoded frame run (from the sink or a scratch file)."""
        if self.reader is None:
            raise RuntimeError("no step declared that it re-reads frames (ClipStep.rereads)")
        return self.reader(start, stop)

    def new_run(self, source: ClipRow, frames: np.ndarray, copy: int, params: dict | None) -> ClipRow:
        """Store ``frames`` (a new version of ``source``'s frames) as a new frame run; return its clip row.

        Every run hook sees the new row while its frames are in memory (they are not kept anywhere else)."""
        if self.appender is None:
            raise RuntimeError("this video takes no new frame runs")
        span = slice(source.frame_start, source.frame_stop)
        start = self.appender(frames, self.pts[span], self.idx[span])
        row = ClipRow(start, start + len(frames), source.padded, source.start_s, source.end_s, source.clip_index,
                      copy, source.label, params, quality=source.quality, phash=source.phash)
        for hook in self.run_hooks:
            hook.on_run(row, frames)
        return row


class FrameStep(Protocol):
    """A stage that sees each video's frames in order, in chunks (module docstring)."""

    name: str
    stage: str
    transforms: bool
    stored: tuple[str, ...]

    def start(self, video: Video) -> None: ...
    def branches(self) -> Sequence[Branch]: ...
    def push(self, chunk: Chunk) -> Chunk: ...
    def finish(self) -> dict[str, np.ndarray]: ...


class ClipStep(Protocol):
    """A stage that maps a video's clip rows to clip rows (module docstring)."""

    name: str
    stage: str
    rereads: bool
    replaces_frames: bool

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]: ...


@runtime_checkable
class RunHook(Protocol):
    """A clip step that also sees every new frame run (``Video.new_run``) while its pixels are in memory."""

    def on_run(self, row: ClipRow, frames: np.ndarray) -> None: ...


@runtime_checkable
class UnitHook(Protocol):
    """A step with something to store once per output unit (e.g. zero-shot prompts and their embeddings)."""

    def begin_unit(self, sink: Sink) -> None: ...


@runtime_checkable
class Describes(Protocol):
    """A step that reports what it applies (model, weights, parameters) for ``/meta/config_json``."""

    def describe(self) -> dict[str, Any]: ...


class Observer:
    """Defaults of a frame step that reads frames but does not change them, and needs no decode branch."""

    stage = "decode"
    transforms = False
    stored: tuple[str, ...] = ()

    def branches(self) -> Sequence[Branch]:
        return ()

    def push(self, chunk: Chunk) -> Chunk:
        return chunk


class RowStep:
    """Defaults of a clip step that neither re-reads frames nor adds frame runs."""

    rereads = False
    replaces_frames = False


class Deferred(Protocol):
    """Something a step needs that is built in the background (a feature model): waited for before a unit is
    published; a failed build raises DeferredBuildError from `wait`."""

    def wait(self) -> None: ...
    def failed(self) -> bool: ...


@dataclass
class Steps:
    """A run's steps: frame steps in the order they see chunks, then clip steps in the order they map rows."""

    frame: list[FrameStep] = field(default_factory=list)
    clip: list[ClipStep] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)

    def extend(self, other: Steps) -> Steps:
        self.frame += other.frame
        self.clip += other.clip
        self.deferred += other.deferred
        return self

    def ordered(self) -> Steps:
        """Pixel-changing frame steps first (stable), so observers and the sink see the stored frames."""
        return Steps(sorted(self.frame, key=lambda s: not s.transforms), list(self.clip), list(self.deferred))

    def wait_ready(self) -> None:
        """Wait for what is being built in the background (a feature model); raises DeferredBuildError if that
        failed. Called before a unit is published and before a run that built nothing ends."""
        for item in self.deferred:
            item.wait()

    def failed(self) -> bool:
        """True when something built in the background has failed (never waits)."""
        return any(item.failed() for item in self.deferred)

    def everything(self) -> list[FrameStep | ClipStep]:
        return [*self.frame, *self.clip]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for step in self.everything():
            if isinstance(step, Describes):
                out.update(step.describe())
        return out
