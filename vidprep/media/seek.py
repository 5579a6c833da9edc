"""Sparse sampling by seeking: decode only the stretches of a long video that hold the sampled frames.

Why: one sequential decode costs every frame of the video, whatever is kept. Sixteen frames spread over an hour of
1080p cost about as much as the whole hour. Seeking to the keyframe before each sampled frame costs one group of
pictures per sample, plus an ffmpeg start-up per seek.

How (this module plans; :mod:`vidprep.media.decode` runs the plan and checks it):

1. :class:`FrameIndex` turns a demux-only packet scan into the frames a decoder outputs, in presentation order:
   packets not marked *discard*, from the first keyframe on, sorted by pts. Ordinal ``i`` is the ``i``-th of them
   and its time is ``(pts_i - pts_0) * time_base``: the ordinals and times the sequential decoder reports.
2. :func:`sampled_ordinals` applies a sampling rule to those timestamps with the formula the ``select`` filter
   uses, so both paths keep the same frames.
3. :func:`plan_runs` groups the sampled frames into *runs*. A run is one ffmpeg process that seeks to a keyframe
   and decodes on to its last sampled frame. A sample joins the current run when decoding on to it is cheaper than
   a new seek (start-up plus decoding from its keyframe). The plan is only worth running when it costs well under
   a full decode (:func:`worth_seeking`).

Nothing here trusts the container's metadata: the index comes from the packets themselves, and every run is
verified against it when it is decoded (the frames it decoded before its last sample must be exactly the indexed
ones), falling back to the sequential decode when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vidprep.media.probe import NO_PTS, PacketScan
from vidprep.types import Sampling

TICK_EPS = 1e-6
MAX_TARGETS_PER_RUN = 64
"""Sampled frames per run: each is a term of the run's ``select`` expression."""
SEEK_GAIN = 0.5
"""Seek only when the plan costs less than this fraction of a full sequential decode."""
STARTUP_S = 0.15
"""Fixed cost of one run in seconds: starting the ffmpeg binary and opening the file (measured here)."""
STARTUP_S_PER_PIXEL = 7e-8
"""Per-pixel part of a run's fixed cost: decoder set-up and its first keyframe (0.21 s at 720p, 0.30 s at 1080p)."""
DECODE_S_PER_PIXEL = 9.4e-9
"""Decode time per coded pixel and frame (8.7 ms per noisy 720p H.264 frame here). Only ratios matter: a run's
fixed cost is worth about 46 decoded frames at 480p, 25 at 720p, 15 at 1080p."""


@dataclass(frozen=True)
class FrameIndex:
    """The frames a decoder outputs, in presentation order, with the keyframes a decode can start from.

    ``pts`` (T,) are the frames' timestamps in ``time_base`` units, strictly increasing; ``keyframe_pts`` are the
    timestamps of the keyframe packets (discarded ones included: decoding can start there), increasing.
    """

    time_base: Fraction
    pts: np.ndarray
    keyframe_pts: np.ndarray

    @classmethod
    def from_packets(cls, scan: PacketScan) -> FrameIndex | None:
        """The index of a packet scan, or None when the frames cannot be told exactly from the packets.

        None when: no keyframe, a frame packet without pts, or two frames with the same pts.
        """
        keys = np.flatnonzero(scan.key & (scan.pts != NO_PTS))
        if keys.size == 0:
            return None
        first = keys[0]
        kept = ~scan.discard
        kept[:first] = False
        pts = scan.pts[kept]
        if pts.size == 0 or np.any(pts == NO_PTS):
            return None
        pts = np.sort(pts[pts >= scan.pts[first]])
        if pts.size == 0 or np.any(np.diff(pts) == 0):
            return None
        return cls(scan.time_base, pts, np.sort(scan.pts[keys]))

    def __len__(self) -> int:
        return int(self.pts.size)

    def ordinal_of(self, pts: int) -> int | None:
        """The ordinal of the frame with exactly this pts, or None."""
        i = int(np.searchsorted(self.pts, pts))
        return i if i < self.pts.size and int(self.pts[i]) == pts else None

    def seconds(self, pts: int) -> float:
        """A pts as seconds since the first frame (exact rational arithmetic, then float)."""
        return float((int(pts) - int(self.pts[0])) * self.time_base)

    def keyframe_before(self, ordinal: int) -> int:
        """pts of the last keyframe at or before frame ``ordinal`` (the seek point that decodes it)."""
        i = int(np.searchsorted(self.keyframe_pts, self.pts[ordinal], side="right")) - 1
        return int(self.keyframe_pts[max(i, 0)])

    def first_at_or_after(self, pts: int) -> int:
        """Ordinal of the first frame whose pts is at or after ``pts``."""
        return int(np.searchsorted(self.pts, pts))


@dataclass(frozen=True)
class SeekRun:
    """One ffmpeg process: seek to ``seek_pts`` (a keyframe), decode frames ``first`` .. ``targets[-1]``, keep
    ``targets`` (ordinals, increasing)."""

    seek_pts: int
    first: int
    targets: tuple[int, ...]


def uniform_indices(total: int, count: int) -> list[int]:
    """Ordinals of ``uniform=count`` over ``total`` frames: the middle frame of each of ``count`` equal segments."""
    if count >= total:
        return list(range(total))
    return [(2 * k + 1) * total // (2 * count) for k in range(count)]


def sampled_ordinals(index: FrameIndex, sampling: Sampling) -> list[int]:
    """The ordinals a sampling rule keeps, computed as the decoder's ``select`` filter computes them."""
    total = len(index)
    if sampling.mode == "all":
        return list(range(total))
    if sampling.mode == "every":
        return list(range(0, total, int(sampling.value)))
    if sampling.mode == "uniform":
        return uniform_indices(total, int(sampling.value))
    t = index.pts.astype(np.float64) * float(index.time_base)  # ffmpeg: TS2D(pts) * av_q2d(time_base)
    tick = np.floor((t - t[0]) * float(sampling.value) + TICK_EPS)
    keep = np.ones(total, dtype=bool)
    keep[1:] = tick[1:] > tick[:-1]
    return np.flatnonzero(keep).tolist()


def startup_frames(coded_pixels: int) -> float:
    """ffmpeg's start-up and seek cost, expressed in decoded frames of this size (the cost model's unit)."""
    pixels = max(1, coded_pixels)
    return (STARTUP_S + STARTUP_S_PER_PIXEL * pixels) / (DECODE_S_PER_PIXEL * pixels)


def plan_runs(index: FrameIndex, targets: list[int], startup: float) -> list[SeekRun]:
    """Group sampled ordinals into runs, greedily: continue the current run when that decodes fewer frames than a
    new seek would (``startup`` frames plus the frames from the target's keyframe), else seek."""
    runs: list[SeekRun] = []
    seek_pts = first = -1
    members: list[int] = []
    for target in targets:
        key = index.keyframe_before(target)
        start = index.first_at_or_after(key)
        if members:
            same_gop = key == index.keyframe_before(members[-1])
            cheaper = target - members[-1] <= startup + (target - start)
            if (same_gop or cheaper) and len(members) < MAX_TARGETS_PER_RUN:
                members.append(target)
                continue
            runs.append(SeekRun(seek_pts, first, tuple(members)))
        seek_pts, first, members = key, start, [target]
    if members:
        runs.append(SeekRun(seek_pts, first, tuple(members)))
    return runs


def plan_cost(runs: list[SeekRun], startup: float) -> float:
    """Frames decoded by a plan, plus start-ups in frame units."""
    return sum(startup + run.targets[-1] - run.first + 1 for run in runs)


def worth_seeking(index: FrameIndex, runs: list[SeekRun], startup: float) -> bool:
    """True when the plan costs under :data:`SEEK_GAIN` of decoding every frame once."""
    return bool(runs) and plan_cost(runs, startup) < SEEK_GAIN * (len(index) + startup)
