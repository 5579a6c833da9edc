"""Clip planning: turn one video's sampled frame timestamps (and optional scene cuts) into ClipSpecs.

Pure and cheap: it sees only the presentation times of the frames the decoder kept (row r of the video's frame
datasets has time ``pts_s[r]``, 0 = first frame) and returns half-open row ranges (DESIGN §4). No pixels, no I/O.

Rules
-----
* **Segments.** Cut rows split the video into segments ``[0, c1), [c1, c2), ..., [cn, F)``; every segment is
  planned on its own, so no clip ever crosses a cut. ``clip_index`` counts the emitted clips 0, 1, ... over the
  whole video. Cuts are honoured whenever they are passed; the caller passes them when ``cfg.scenes`` is on.
* **Modes.** ``clip_frames`` -> fixed-length row windows; ``clip_seconds`` -> fixed-length time windows; otherwise
  ``scenes`` -> one clip per segment; otherwise one clip per frame.
* **clip_frames=T, stride=S** (S defaults to T), counted in sampled rows: clip k of a segment starting at row a
  holds rows ``[a + kS, a + kS + T)``. Full windows are always emitted.
* **clip_seconds=X, clip_stride=Y** (Y defaults to X), on real time so variable frame rate works: window k of a
  segment whose first frame is at t0 is ``[t0 + kY, t0 + kY + X)`` and holds the frames whose pts fall in it.
  Windows are tried for every start up to the segment's last frame; a window that holds no frame (a VFR gap, or
  sampling coarser than the window) is skipped and takes no clip_index. A window is *complete* when it ends no
  later than the segment does (the next segment's first pts, or the last pts + frame duration at the video's
  end). Boundaries are compared with a 1 µs tolerance so ``3 * 0.4`` still lands on the frame at 1.2 s.
* **tail** decides the *first* window that runs past its segment's end (later ones are subsets of it). It is
  emitted only when it adds frames, i.e. when the segment's last row is in no full window:
  ``drop`` (default) drops it; ``keep`` emits it shorter; ``pad`` emits it with ``padded`` = rows a reader must
  add by repeating the last real frame. For clip_frames that is ``T - real rows``; for clip_seconds it is
  ``round(X / frame_duration) - real rows`` (never negative), the count a full window holds at the nominal rate,
  so fixed-rate sampling (``--fps 8 --clip-seconds 2``) gives every clip the same length. With no usable frame
  duration (a single frame) seconds-mode padding is 0.
* **Short input.** A segment shorter than one window yields no clip under ``drop`` (not an error: there is no
  complete clip to give) and exactly one clip under ``keep``/``pad``. No frames -> no clips.
* **Times.** ``start_s`` is the pts of the first row; ``end_s`` the pts of the row after the last real row, or,
  for a clip that ends at the video's last frame, that frame's pts + the frame duration: ``frame_duration_s`` when
  given (for a sampled stream, the sampling interval), else the median interval between pts, else 0.
  Padding does not extend ``end_s``: it spans real frames only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from vidprep.types import ClipSpec

if TYPE_CHECKING:
    from vidprep.config import SplitConfig

TIME_EPS_S = 1e-6
"""Tolerance for comparing pts with window boundaries: far below any frame interval, far above float error."""

Range = tuple[int, int, int]
"""(frame_start, frame_stop, padded) of one planned clip."""

Planner = Callable[[np.ndarray, int, int, float], list[Range]]
"""Plans one segment: (pts, first row, stop row, frame duration) -> ranges."""


def plan_clips(
    pts_s: np.ndarray,
    cfg: SplitConfig,
    cuts: Sequence[int] = (),
    *,
    frame_duration_s: float | None = None,
) -> list[ClipSpec]:
    """Plan the clips of one video from its sampled frames' pts (seconds), honouring scene ``cuts``.

    Arguments:
        pts_s: (F,) presentation times of the sampled frames, non-decreasing; row r is frame r.
        cfg: the split options (clip_frames/stride, clip_seconds/clip_stride, tail, scenes).
        cuts: rows where a new scene starts, strictly increasing, each in ``1..F-1``.
        frame_duration_s: how long the last frame lasts; defaults to the median pts interval.

    Returns:
        ClipSpecs in row order, numbered 0.. within the video (see the module docstring for the rules).

    Raises:
        ValueError: pts not 1-D, not finite or decreasing; cuts unsorted or out of range; duration <= 0.
    """
    pts = _check_pts(pts_s)
    bounds = _segment_bounds(len(pts), cuts)
    dt = _frame_duration(pts, frame_duration_s)
    planner = planner_for(cfg)
    ranges = [r for a, b in zip(bounds[:-1], bounds[1:]) for r in planner(pts, a, b, dt)]
    return [_spec(k, r, pts, dt) for k, r in enumerate(ranges)]


def planner_for(cfg: SplitConfig) -> Planner:
    """The segment planner the config asks for (clip_frames, clip_seconds, whole scenes or single frames)."""
    if cfg.clip_frames:
        return partial(_frame_windows, cfg.clip_frames, cfg.stride or cfg.clip_frames, cfg.tail)
    if cfg.clip_seconds:
        return partial(_time_windows, cfg.clip_seconds, cfg.clip_stride or cfg.clip_seconds, cfg.tail)
    if cfg.scenes:
        return _whole_segment
    return _single_frames


def _frame_windows(size: int, stride: int, tail: str, pts: np.ndarray, a: int, b: int, dt: float) -> list[Range]:
    """Row windows [a + kS, a + kS + T) that fit in [a, b), plus the tail window per ``tail``."""
    n = b - a
    full = (n - size) // stride + 1 if n >= size else 0
    out = [(a + k * stride, a + k * stride + size, 0) for k in range(full)]
    covered = out[-1][1] if out else a
    nxt = a + full * stride
    if tail != "drop" and nxt < b and covered < b:
        out.append((nxt, b, size - (b - nxt) if tail == "pad" else 0))
    return out


def _time_windows(size_s: float, stride_s: float, tail: str, pts: np.ndarray, a: int, b: int, dt: float) -> list[Range]:
    """Time windows [t0 + kY, t0 + kY + X) over the segment's frames; empty windows are skipped."""
    rel = pts[a:b] - pts[a]
    seg_dur = _end_time(pts, b, dt) - pts[a]
    starts = np.arange(math.floor((rel[-1] + TIME_EPS_S) / stride_s) + 1) * stride_s
    lo = a + np.searchsorted(rel, starts - TIME_EPS_S, side="left")
    hi = a + np.searchsorted(rel, starts + size_s - TIME_EPS_S, side="left")
    complete = starts + size_s <= seg_dur + TIME_EPS_S
    keep = complete & (hi > lo)
    out = [(int(s), int(e), 0) for s, e in zip(lo[keep], hi[keep])]
    covered = out[-1][1] if out else a
    partial_idx = np.flatnonzero(~complete)
    if tail != "drop" and partial_idx.size and covered < b:
        first = int(lo[partial_idx[0]])
        out.append((first, b, _time_padding(size_s, dt, b - first) if tail == "pad" else 0))
    return out


def _time_padding(size_s: float, dt: float, real: int) -> int:
    """Rows to add so a partial time window holds as many frames as a full one at the nominal rate."""
    if dt <= 0:
        return 0
    return max(0, round(size_s / dt) - real)


def _whole_segment(pts: np.ndarray, a: int, b: int, dt: float) -> list[Range]:
    """One clip for the whole segment (scene mode)."""
    return [(a, b, 0)]


def _single_frames(pts: np.ndarray, a: int, b: int, dt: float) -> list[Range]:
    """One clip per frame (frame mode)."""
    return [(r, r + 1, 0) for r in range(a, b)]


def _spec(k: int, rng: Range, pts: np.ndarray, dt: float) -> ClipSpec:
    start, stop, padded = rng
    return ClipSpec(k, start, stop, float(pts[start]), _end_time(pts, stop, dt), padded)


def _end_time(pts: np.ndarray, stop: int, dt: float) -> float:
    """When row ``stop - 1`` stops showing: the next row's pts, or last pts + frame duration at the end."""
    return float(pts[stop]) if stop < len(pts) else float(pts[-1]) + dt


def _frame_duration(pts: np.ndarray, given: float | None) -> float:
    """The duration of the last frame: the caller's value, else the median interval, else 0."""
    if given is not None:
        if not (given > 0 and math.isfinite(given)):
            raise ValueError(f"frame_duration_s must be a positive number, got {given!r}")
        return float(given)
    return float(np.median(np.diff(pts))) if len(pts) >= 2 else 0.0


def _check_pts(pts_s: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts_s, dtype=np.float64)
    if pts.ndim != 1:
        raise ValueError(f"pts_s must be 1-D, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("pts_s must be finite")
    if np.any(np.diff(pts) < 0):
        raise ValueError("pts_s must be non-decreasing")
    return pts


def _segment_bounds(num_frames: int, cuts: Sequence[int]) -> list[int]:
    """[0, *cuts, F] after checking the cuts; [] when there are no frames."""
    cut_list = [int(c) for c in cuts]
    if num_frames == 0:
        if cut_list:
            raise ValueError("cuts given for a video with no frames")
        return []
    if any(c <= 0 or c >= num_frames for c in cut_list):
        raise ValueError(f"cuts must lie in 1..{num_frames - 1}, got {cut_list}")
    if any(x >= y for x, y in zip(cut_list, cut_list[1:])):
        raise ValueError(f"cuts must be strictly increasing, got {cut_list}")
    return [0, *cut_list, num_frames]
