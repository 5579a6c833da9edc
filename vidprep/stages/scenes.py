"""Scene-cut detection: a streaming HSV content score per frame, then an adaptive (rolling-ratio) cut rule.

Two steps, so cuts can be re-thresholded without decoding again (DESIGN §3):

1. :class:`SceneScorer` sees every decoded frame once, in order (the same decode the split uses), scales it to a
   fixed 256 px width and keeps one float per frame: the content score against the previous frame. Memory holds
   one small HSV frame plus 4 bytes per frame, whatever the video length.
2. :func:`find_cuts` is a pure function of the stored scores and pts: a cut is a frame whose score stands out
   from its neighbours (ratio) and is large in absolute terms (min content), at least ``min_scene_s`` after the
   previous cut.

The score and rule follow the classical content / adaptive detectors (PySceneDetect's ``ContentDetector`` and
``AdaptiveDetector``) so their published defaults (threshold 3.0, window 2, min content 15, min scene 0.6 s)
carry over.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np

DEFAULT_WIDTH = 256
RATIO_CAP = 255.0
"""Upper bound of the adaptive ratio; also the ratio given when the neighbours' mean is ~0."""
ZERO_MEAN = 1e-5
"""A neighbours' mean below this counts as a perfectly still picture (the ratio would divide by ~0)."""
TIME_EPS_S = 1e-9


class SceneScorer:
    """Streaming content score: mean absolute difference of consecutive frames in HSV, at a fixed width.

    The score of frame i is the mean over pixels and the H, S, V channels of ``|hsv_i - hsv_{i-1}|``, on
    OpenCV's 8-bit HSV (H in 0..179, S and V in 0..255). As in the classical content detector, hue is compared as
    a plain number, without wrap-around, so scores and thresholds stay comparable with published values.
    ``score[0] = 0``: the first frame has nothing to differ from.

    Every frame is resized (``cv2.INTER_AREA``) to ``width`` pixels wide, keeping the first frame's aspect, so
    scores do not depend on the decode size and a frame of a different size cannot break the comparison.
    """

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.width = width
        self._size: tuple[int, int] | None = None
        self._prev: np.ndarray | None = None
        self._scores = array.array("f")

    def push(self, rgb: np.ndarray) -> None:
        """Score the next decoded frame, an (H, W, 3) uint8 RGB array, against the one pushed before it."""
        hsv = self._to_hsv(rgb)
        self._scores.append(0.0 if self._prev is None else _mean_abs_diff(hsv, self._prev))
        self._prev = hsv

    @property
    def scores(self) -> np.ndarray:
        """(F,) float32 content scores of the frames pushed so far (a copy)."""
        return np.array(self._scores, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._scores)

    def _to_hsv(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        if self._size is None:
            h, w = rgb.shape[:2]
            self._size = (self.width, max(1, round(h * self.width / w)))
        if (rgb.shape[1], rgb.shape[0]) != self._size:
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of |a - b| over all pixels and channels (one pass in OpenCV, no int32 temporaries)."""
    import cv2

    return cv2.norm(a, b, cv2.NORM_L1) / a.size


def adaptive_ratio(scores: np.ndarray, window: int = 2) -> np.ndarray:
    """Each frame's score divided by the mean score of up to ``window`` frames on each side (itself excluded).

    Near the ends of the video the window is truncated to the frames that exist, and ``score[0]`` (a
    placeholder, not a difference) is never a neighbour. Ratios are capped at 255. **Degenerate case:** when the
    neighbours' mean is below 1e-5 (a perfectly still picture around the frame, e.g. a static title card and
    then a cut) the ratio is undefined; it is set to the cap when the frame's own score is > 0 and to 0 when it is
    0, so the decision then rests on ``min_content`` alone. Frame 0 always gets 0.

    Returns:
        (F,) float32 ratios.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    s = np.asarray(scores, dtype=np.float64).copy()
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if s.size == 0:
        return np.zeros(0, np.float32)
    valid = np.ones_like(s)
    s[0], valid[0] = 0.0, 0.0
    mean = _neighbour_mean(s, valid, window)
    still = mean < ZERO_MEAN
    ratio = np.where(still, np.where(s > 0, RATIO_CAP, 0.0), s / np.where(still, 1.0, mean))
    ratio = np.minimum(ratio, RATIO_CAP)
    ratio[0] = 0.0
    return ratio.astype(np.float32)


def _neighbour_mean(s: np.ndarray, valid: np.ndarray, window: int) -> np.ndarray:
    """Mean of the valid entries within ``window`` of each index, the index itself excluded (0 if none)."""
    width = 2 * window + 1
    sv = np.lib.stride_tricks.sliding_window_view(np.pad(s * valid, window), width)
    vv = np.lib.stride_tricks.sliding_window_view(np.pad(valid, window), width)
    total = sv.sum(axis=1) - s * valid
    count = vv.sum(axis=1) - valid
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def find_cuts(
    scores: np.ndarray,
    pts_s: np.ndarray,
    *,
    threshold: float = 3.0,
    window: int = 2,
    min_content: float = 15.0,
    min_scene_s: float = 0.6,
) -> list[int]:
    """Rows where a new scene starts, by the adaptive content rule over stored scores.

    Frame i is a cut when ``adaptive_ratio[i] >= threshold`` and ``scores[i] >= min_content`` and
    ``pts[i] - pts[previous cut, or row 0] >= min_scene_s``. Candidates are taken in order; one that comes too
    soon after the previous cut is dropped (it does not move the previous cut). Row 0 is never a cut.

    Arguments:
        scores: (F,) content scores from :attr:`SceneScorer.scores`.
        pts_s: (F,) presentation times in seconds of the same frames.
        threshold: minimum ratio of a frame's score to its neighbours' mean.
        window: neighbours on each side in that mean.
        min_content: minimum absolute score for a cut.
        min_scene_s: minimum time between a scene's first frame and the next cut.

    Returns:
        Strictly increasing row indices in 1..F-1, ready for ``plan_clips(cuts=...)``.

    Raises:
        ValueError: scores and pts differ in length, or window < 1.
    """
    s = np.asarray(scores, dtype=np.float64)
    pts = np.asarray(pts_s, dtype=np.float64)
    if s.shape != pts.shape:
        raise ValueError(f"scores {s.shape} and pts_s {pts.shape} must have the same shape")
    ratio = adaptive_ratio(s, window)
    candidates = np.flatnonzero((ratio >= threshold) & (s >= min_content))
    return _space_cuts(candidates[candidates > 0].tolist(), pts, min_scene_s)


def _space_cuts(candidates: Sequence[int], pts: np.ndarray, min_scene_s: float) -> list[int]:
    """Keep candidates at least ``min_scene_s`` after the previous kept cut (or row 0)."""
    cuts: list[int] = []
    last = 0
    for i in candidates:
        if pts[i] - pts[last] >= min_scene_s - TIME_EPS_S:
            cuts.append(int(i))
            last = i
    return cuts
