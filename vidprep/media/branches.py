"""Extra low-resolution outputs of the same ffmpeg decode, for the scene detectors.

A shot detector must see every decoded frame, at its own resolution, before sampling and enhancement. Decoding
the video a second time would double the cost, so the decode's filter graph ``split``s the decoded stream right
after the ``PRE`` showinfo (and deinterlacing), before the sampling ``select``::

    [0:V:0] [bwdif,] [showinfo@pre,] split=N+1 [main][b0][b1]...
    [main] select, showinfo@post, geometry ... -> pipe:1   (the frames vidprep keeps, as before)
    [b0]   rotation, scale=<branch size>, format=<pix_fmt> -> pipe:<fd>   (every decoded frame)

Each branch writes raw frames of a fixed size to its own pipe (an extra file descriptor passed to ffmpeg), read
by a thread that hands every frame, in decode order, to the branch's consumer. Frame k of a branch is decoded
frame k, the same ordinal :class:`vidprep.media.framelog.FrameLog` gives the kept frames, so branch results line
up with the sampled rows through their ``index``. HDR tone mapping and SAR correction are not applied on branches
(frames are taken at the stored size, as OpenCV-based tools read them); rotation is.

A consumer must never block (it runs on the pipe's reader thread; ffmpeg waits while it works), and the array
it is given is reused for the next frame (no allocation per frame): a consumer that keeps a frame copies it.
Decodes with branches are always sequential (a seek plan skips frames the branch must see).
A branch may end with :func:`gather_rows` (the scene scorer: only the rows its resize reads cross the pipe).
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vidprep.media.ffmpeg import grow_pipe
from vidprep.media.filtergraph import ROTATE_FILTERS
from vidprep.types import VideoInfo

log = logging.getLogger("vidprep.media.branches")


@dataclass
class Branch:
    """One extra output: its filters after the split, its frame shape, and what receives each frame.

    ``start`` is called before every ffmpeg run (a decode may be retried from the start, e.g. without HDR tone
    mapping), so a consumer can drop what an abandoned run gave it.
    """

    name: str
    filters: list[str]
    shape: tuple[int, int, int]
    consume: Callable[[np.ndarray], None]
    start: Callable[[], None] = lambda: None


def stored_size(info: VideoInfo) -> tuple[int, int]:
    """(width, height) of the decoded frames before any scaling, after rotation (SAR not applied)."""
    w, h = info.coded_width, info.coded_height
    return (h, w) if info.rotation in (90, 270) else (w, h)


def branch_filters(info: VideoInfo, width: int, height: int, pix_fmt: str, flags: str = "bicubic") -> list[str]:
    """Rotation, then one ``scale`` to an explicit size and pixel format (a fixed frame size on the pipe even if
    the stream changes resolution mid-way)."""
    return [*ROTATE_FILTERS[info.rotation], f"scale=w={width}:h={height}:flags={flags}", f"format={pix_fmt}"]


def gather_rows(rows: Sequence[int], width: int, tag: str) -> list[str]:
    """Filters that keep only ``rows`` (increasing) of a packed frame ``width`` wide, stacked top to bottom.

    lavfi has no row-gather filter: the frame is ``split`` into one ``crop`` per run of consecutive rows (crop
    only moves data pointers) and the pieces are ``vstack``ed, so the pipe carries those rows and nothing else
    (exact copies, after the pixel-format conversion). ``tag`` keeps the pads' labels unique in the graph."""
    runs: list[list[int]] = []
    for r in rows:
        if runs and r == runs[-1][1]:
            runs[-1][1] = r + 1
        else:
            runs.append([r, r + 1])
    crops = [f"crop=w={width}:h={b - a}:x=0:y={a}:exact=1" for a, b in runs]
    if len(crops) == 1:
        return crops
    outs = "".join(f"[{tag}s{i}]" for i in range(len(crops)))
    pieces = ";".join(f"[{tag}s{i}]{crop}[{tag}c{i}]" for i, crop in enumerate(crops))
    stacked = "".join(f"[{tag}c{i}]" for i in range(len(crops)))
    return [f"split={len(crops)}{outs};{pieces};{stacked}vstack=inputs={len(crops)}"]


class BranchPipes:
    """The pipes of a decode's branches: created before ffmpeg starts, drained by one thread each."""

    def __init__(self, branches: Sequence[Branch]) -> None:
        self.branches = list(branches)
        self._fds = [os.pipe() for _ in self.branches]
        for (r, _), branch in zip(self._fds, self.branches):
            grow_pipe(r, 2 * int(np.prod(branch.shape)))  # fewer wake-ups per frame for large branch frames
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        for branch in self.branches:
            branch.start()

    @property
    def write_fds(self) -> list[int]:
        """The write ends, to pass to ffmpeg (``pass_fds``; it writes to ``pipe:<fd>``)."""
        return [w for _, w in self._fds]

    def started(self) -> None:
        """ffmpeg is running: close our copies of the write ends (so EOF arrives) and start the readers."""
        for (r, w), branch in zip(self._fds, self.branches):
            os.close(w)
            thread = threading.Thread(target=self._drain, args=(r, branch), daemon=True,
                                      name=f"vidprep-branch-{branch.name}")
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Wait for every reader to reach end of stream (ffmpeg has exited or been killed)."""
        for thread in self._threads:
            thread.join()
        if not self._threads:  # ffmpeg never started: close everything ourselves
            for r, w in self._fds:
                os.close(r)
                os.close(w)
        self._threads = []

    def _drain(self, fd: int, branch: Branch) -> None:
        frame = np.empty(branch.shape, np.uint8)
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            try:
                while _read_frame(pipe, frame):
                    branch.consume(frame)
            except BaseException as err:  # re-raised by the decoder after ffmpeg is reaped
                log.debug("branch %s failed: %s", branch.name, err)
                self.errors.append(err)
                while pipe.read(1 << 16):  # keep draining so ffmpeg never blocks on a failed branch
                    pass


def _read_frame(pipe: io.FileIO, frame: np.ndarray) -> bool:
    """Fill ``frame`` with the next whole frame; False at end of stream (a partial frame only when ffmpeg was
    stopped mid-frame)."""
    view, got = frame.reshape(-1).data, 0
    while got < frame.size:
        n = pipe.readinto(view[got:])
        if not n:
            return False
        got += n
    return True
