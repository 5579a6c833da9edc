"""Scene-cut detection with PySceneDetect's adaptive detector: a content score per decoded frame, then the
adaptive (rolling-ratio) cut rule, both reproducing ``scenedetect detect-adaptive`` (0.7.2) with its defaults.

Two steps, so cuts can be re-thresholded without decoding again (DESIGN §3):

1. :class:`SceneScorer` sees every decoded frame once, in order, at the source resolution (a low-resolution
   branch of the same ffmpeg decode, before sampling and enhancement: :mod:`vidprep.media.branches`, only the rows
   the resize reads: :func:`scorer_rows`), and
   keeps one float per frame: the content score against the previous frame. Memory holds one small HSV frame
   plus 4 bytes per frame, whatever the video length.
2. :func:`find_cuts` is a pure function of the stored scores: the decoded-frame ordinals where a new scene
   starts. :func:`cuts_to_rows` maps them onto the sampled rows (a scene starts at the first kept frame at or
   after its cut).

The score (what PySceneDetect's stats file calls ``content_val``):

* **Downscale.** A frame whose larger side ``M`` is at least 256 px is resized by the factor ``M / 256`` to
  ``(max(1, round(W / f)), max(1, round(H / f)))`` with ``cv2.INTER_LINEAR``; smaller frames are used as they are
  (PySceneDetect's ``compute_downscale_factor`` on the larger side, and its default interpolation).
* **Colour.** ``cv2.cvtColor(BGR2HSV)`` on 8-bit BGR (H in 0..179, S and V in 0..255); hue is compared as a plain
  number, without wrap-around.
* **Score.** The mean over pixels of ``|h - h'|``, ``|s - s'|`` and ``|v - v'|`` against the previous frame,
  averaged with weights 1, 1, 1 (edges weight 0); frame 0 scores 0.

The cut rule (:func:`adaptive_ratio`, :func:`find_cuts`), as ``AdaptiveDetector``:

* frame ``i`` gets a ratio only when ``window`` frames exist on each side (the first and last ``window`` frames
  never cut); the ratio is ``score[i] / mean(score of the 2*window neighbours)`` (frame 0's score 0 counts as a
  neighbour), capped at 255; when that mean is below 1e-5 the ratio is 255 if ``score[i] >= min_content`` else 0;
* frame ``i`` is a cut when ``ratio >= threshold`` and ``score[i] >= min_content`` and it is at least
  ``min_scene_frames`` decoded frames after the previous cut (or frame 0). ``min_scene_frames`` is
  ``round(min_scene_s * fps)`` with the stream's average frame rate, as PySceneDetect converts ``0.6s``.

Deliberate differences (documented, tested where they matter): frames come from ffmpeg's ``bgr24`` conversion
(swscale) rather than OpenCV's capture (a different chroma interpolation; scores agree within 1%, cut lists
exactly on the reference footage); rotation metadata and deinterlacing are applied as in vidprep's decode; the
minimum scene length is counted in decoded frames, so on variable-frame-rate video it is an ordinal distance,
where PySceneDetect rounds timestamps times the average rate.
"""

from __future__ import annotations

import array
import math
from collections import deque
from collections.abc import Sequence

import numpy as np

SCORER_MIN_WIDTH = 256
"""PySceneDetect's ``DEFAULT_MIN_WIDTH``: frames are downscaled towards this size on their larger side."""
RATIO_CAP = 255.0
"""Upper bound of the adaptive ratio; also the ratio given when the neighbours' mean is ~0."""
ZERO_MEAN = 1e-5
"""A neighbours' mean below this counts as a perfectly still picture (the ratio would divide by ~0)."""
FLASH_FRAMES = 3
"""Longest flash (frames) the flash filter recognises."""
FLASH_RATIO = 0.5
"""A candidate cut is a flash when the picture after it is this close (relative to the cut's score) to before it."""


def scorer_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the scorer works at for a source of this size (PySceneDetect's downscale rule)."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    factor = max(width, height) / float(SCORER_MIN_WIDTH)
    if factor <= 1.0:
        return width, height
    return max(1, round(width / factor)), max(1, round(height / factor))


def scorer_rows(width: int, height: int) -> list[int]:
    """The source rows the scorer's resize reads with a non-zero weight (all rows when it does not resize).

    ``cv2.resize(INTER_LINEAR)`` makes output row ``y`` from source rows ``floor(fy)`` and ``floor(fy) + 1`` with
    ``fy = (y + 0.5) * H / h - 0.5`` computed in float32 (clamped at the edges), weighting the second by the
    fraction of ``fy`` -- 0 when ``fy`` is a whole number (e.g. every row of a 720p frame: factor 5). The other
    rows never reach the score, so the decode branch sends only these (:class:`RowScatter`); the result is
    bit-identical to resizing the whole frame (tested with random data in the other rows).
    """
    w, h = scorer_size(width, height)
    if (w, h) == (width, height):
        return list(range(height))
    scale = 1.0 / (h / float(height))  # cv2 keeps the inverse scale and inverts it
    rows: set[int] = set()
    for y in range(h):
        fy = np.float32((y + 0.5) * scale - 0.5)
        sy = math.floor(fy)
        frac = float(fy) - sy
        if sy < 0:
            sy, frac = 0, 0.0
        if sy >= height - 1:
            sy, frac = height - 1, 0.0
        rows.add(sy)
        if frac > 0.0:
            rows.add(sy + 1)
    return sorted(rows)


class RowScatter:
    """A decode-branch consumer that receives only :func:`scorer_rows` of each frame (stacked) and hands the
    scorer a full-size frame with those rows in place (the others stay zero: they get weight 0)."""

    def __init__(self, scorer: SceneScorer, rows: Sequence[int], width: int, height: int) -> None:
        self.scorer, self.rows = scorer, np.asarray(rows, dtype=np.intp)
        self.frame = np.zeros((height, width, 3), np.uint8)

    def push_rows(self, part: np.ndarray) -> None:
        self.frame[self.rows] = part
        self.scorer.push_bgr(self.frame)


class SceneScorer:
    """Streaming content score (``content_val``) of consecutive frames, at PySceneDetect's processing size.

    Frames are pushed in decode order with :meth:`push_bgr` (8-bit BGR, any size: each is resized by the rule
    of :func:`scorer_size` applied to its own size) or :meth:`push` (RGB). See the module docstring.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every frame pushed so far (the decode starts again from the first frame)."""
        self._prev: np.ndarray | None = None
        self._scores = array.array("d")
        self._recent: deque[np.ndarray] = deque(maxlen=FLASH_FRAMES + 1)
        self._back = array.array("d")  # per frame: differences to the frames 2..FLASH_FRAMES+1 before it

    def push_bgr(self, bgr: np.ndarray) -> None:
        """Score the next decoded frame, an (H, W, 3) uint8 BGR array, against the one pushed before it."""
        hsv = _to_hsv(bgr)
        if self._prev is None or self._prev.shape != hsv.shape:
            score = 0.0 if self._prev is None else RATIO_CAP  # a size change is a new picture: maximal change
        else:
            score = _mean_abs_diff(hsv, self._prev)
        self._scores.append(score)
        older = list(self._recent)[:-1][::-1]  # 2, 3, ... frames back
        for k in range(FLASH_FRAMES):
            ok = k < len(older) and older[k].shape == hsv.shape
            self._back.append(_mean_abs_diff(hsv, older[k]) if ok else math.inf)
        self._recent.append(hsv)
        self._prev = hsv

    def push(self, rgb: np.ndarray) -> None:
        """Score the next frame given as (H, W, 3) uint8 RGB (frames read back from a shard)."""
        _check_frame(rgb)
        self.push_bgr(np.ascontiguousarray(rgb[..., ::-1]))

    def flash_mask(self) -> np.ndarray:
        """(F,) bool: a cut at this frame would be a flash (the flash filter, :func:`flash_mask`)."""
        back = np.array(self._back, dtype=np.float64).reshape(-1, FLASH_FRAMES)
        return flash_mask(self.scores, back)

    @property
    def scores(self) -> np.ndarray:
        """(F,) float64 content scores of the frames pushed so far (a copy)."""
        return np.array(self._scores, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._scores)


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")


def _to_hsv(bgr: np.ndarray) -> np.ndarray:
    import cv2

    _check_frame(bgr)
    size = scorer_size(bgr.shape[1], bgr.shape[0])
    if size != (bgr.shape[1], bgr.shape[0]):
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of |a - b| over pixels of each channel, averaged over the 3 channels (weights 1, 1, 1).

    One L1 norm over all channels equals the sum of the three per-channel sums, so this is one pass in OpenCV."""
    import cv2

    return cv2.norm(a, b, cv2.NORM_L1) / a.size


def flash_mask(scores: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Frames where a cut would only be a flash: the picture comes back within :data:`FLASH_FRAMES` frames.

    ``back[j, k-2]`` is the content difference between frame j and frame j-k (k = 2..FLASH_FRAMES+1). Frame c is
    flagged when a pair (j, j-k) straddling it (``j-k < c <= j``, ``j <= c + FLASH_FRAMES``) differs by less than
    :data:`FLASH_RATIO` times ``scores[c]``: a frame after c looks like a frame before it, so whatever changed at c
    (a flash, a 1-3-frame insert) went away again. A real cut never comes back.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.size
    mask = np.zeros(n, bool)
    for after in range(FLASH_FRAMES + 1):  # j = c + after
        for k in range(max(2, after + 1), FLASH_FRAMES + 2):
            shifted = np.full(n, np.inf)
            shifted[:n - after] = back[after:, k - 2]  # shifted[c] = back[c + after, k - 2]
            mask |= shifted < FLASH_RATIO * s
    return mask


def adaptive_ratio(scores: np.ndarray, window: int = 2, min_content: float = 15.0) -> np.ndarray:
    """Each frame's score over the mean of the ``window`` frames on each side; NaN where the window does not fit.

    Returns:
        (F,) float64 ratios (module docstring: cap 255, still-picture case decided by ``min_content``).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    n = s.size
    ratio = np.full(n, np.nan)
    if n < 2 * window + 1:
        return ratio
    centre = np.arange(window, n - window)
    total = np.zeros(centre.size)
    for k in range(-window, window + 1):  # the reference's summation order, left to right
        if k != 0:
            total = total + s[centre + k]
    mean = total / (2.0 * window)
    target = s[centre]
    still = np.abs(mean) < ZERO_MEAN
    safe = np.where(still, 1.0, mean)
    r = np.where(still, np.where(target >= min_content, RATIO_CAP, 0.0), np.minimum(target / safe, RATIO_CAP))
    ratio[centre] = r
    return ratio


def min_scene_frames(min_scene_s: float, fps: float) -> int:
    """The minimum scene length in decoded frames, as PySceneDetect converts a length in seconds."""
    if not (fps > 0 and math.isfinite(fps)):
        return 0
    return round(min_scene_s * fps)


def find_cuts(
    scores: np.ndarray,
    *,
    threshold: float = 3.0,
    window: int = 2,
    min_content: float = 15.0,
    min_frames: int = 15,
    flashes: np.ndarray | None = None,
) -> list[int]:
    """Decoded-frame ordinals where a new scene starts, by the adaptive content rule over full-rate scores.

    Arguments:
        scores: (F,) content scores of every decoded frame (:attr:`SceneScorer.scores`).
        threshold: minimum ratio of a frame's score to its neighbours' mean.
        window: neighbours on each side in that mean.
        min_content: minimum absolute score for a cut.
        min_frames: minimum distance in decoded frames from the previous cut (or frame 0); see
            :func:`min_scene_frames`.
        flashes: optional (F,) bool from :meth:`SceneScorer.flash_mask`: those frames are never candidates
            (vidprep's flash filter; None = PySceneDetect's rule exactly).

    Returns:
        Strictly increasing ordinals in 1..F-1.
    """
    s = np.asarray(scores, dtype=np.float64)
    ratio = adaptive_ratio(s, window, min_content)
    with np.errstate(invalid="ignore"):
        hit = (ratio >= threshold) & (s >= min_content)
    if flashes is not None:
        hit &= ~np.asarray(flashes, dtype=bool)
    candidates = np.flatnonzero(hit)
    cuts: list[int] = []
    last = 0
    for i in candidates.tolist():
        if i - last >= min_frames:
            cuts.append(int(i))
            last = i
    return cuts


def cuts_to_rows(cuts: Sequence[int], ordinals: np.ndarray) -> list[int]:
    """Map decoded-frame cuts onto sampled rows: a scene starts at the first kept frame at or after its cut.

    ``ordinals`` are the kept frames' decoded ordinals (increasing). Cuts that land on row 0, past the last
    row, or on the same row as an earlier cut (two cuts between two kept frames) collapse, so the result is
    strictly increasing in 1..len(ordinals)-1, ready for ``plan_clips(cuts=...)``.
    """
    idx = np.asarray(ordinals, dtype=np.int64)
    rows = np.searchsorted(idx, np.asarray(list(cuts), dtype=np.int64), side="left")
    out: list[int] = []
    for r in rows.tolist():
        if 0 < r < len(idx) and (not out or r > out[-1]):
            out.append(int(r))
    return out
