"""Per-clip quality and motion metrics: a streaming per-frame pass, then aggregation over each clip's time span.

Shaped like a frame step (DESIGN §2): ``start(video_meta)``, ``push(frames, pts)`` for each chunk of decoded
frames in order (any resolution), ``finish()`` -> per-frame arrays; then :func:`aggregate` turns those arrays into
one float32 value per metric for a clip ``[start_s, end_s)``. Pure numpy/OpenCV, no paths, no HDF5.

Every frame is first scaled so its short side is :data:`ANALYSIS_SHORT_SIDE` pixels (``cv2.pyrDown`` halvings,
then ``INTER_LINEAR``; never upscaled), so the cost is a small constant per frame and the values do not depend
on the decode size. Decoded videos arrive already at that size: :class:`vidprep.engine.curation.DecodeMetrics` feeds
every decoded frame from a decode branch that ffmpeg scales (``flags=area``); larger frames come from shard
inputs. The per-frame measures run once per chunk on all its frames (one OpenCV call each).
Luma is BT.601 ``Y = 0.299 R + 0.587 G + 0.114 B`` on 0..255. The definitions, units, sources and default
thresholds are listed in docs/format.md ("Quality metrics") and in :data:`METRICS`.
"""

from __future__ import annotations

import math

import numpy as np

from vidprep.stages.phash import frame_hashes

ANALYSIS_SHORT_SIDE = 64
"""Short side of the analysis view in pixels (the decode's frames are scaled down to it, never up)."""
BLACK_PIXEL = 0.10 * 255
"""A pixel is dark when its luma is <= 10 % of full scale (ffmpeg ``blackdetect`` pix_th default 0.10)."""
BLACK_PICTURE = 0.98
"""A frame is black when >= 98 % of its pixels are dark (ffmpeg ``blackdetect`` pic_th default 0.98)."""
FROZEN_MAFD = 0.001 * 255
"""Consecutive frames are near-identical when their mean absolute luma difference is below -60 dB of full scale
(0.001 x 255 = 0.255 levels; ffmpeg ``freezedetect`` noise default)."""
BORDER_LUMA = 24.0
"""A border row/column is dark when its mean luma is <= 24 (ffmpeg ``cropdetect`` limit default 24/255)."""
BLUR_TAPS = 9
"""Length of the low-pass filter of the Crété-Roffet blur measure (9 taps in the paper)."""

#: Per-clip metrics: name -> one-line definition (unit). The --keep language accepts exactly these names.
METRICS: dict[str, str] = {
    "motion": "mean over frames of the mean absolute luma difference to the previous frame (levels 0-255)",
    "motion_std": "standard deviation over frames of that difference (levels): temporal spread of motion",
    "motion_max": "largest per-frame mean absolute luma difference in the clip (levels)",
    "si": "ITU-T P.910 spatial information: max over frames of std of the Sobel gradient magnitude (levels)",
    "ti": "ITU-T P.910 temporal information: max over frames of std of the luma frame difference (levels)",
    "sharpness": "mean over frames of the variance of the 3x3 Laplacian of luma (levels^2; Pech-Pacheco 2000)",
    "blur": "mean over frames of the Crete-Roffet 2007 no-reference blur measure (0 sharp .. 1 blurred)",
    "black_ratio": "fraction of frames that are black (>= 98% of pixels at luma <= 25.5; ffmpeg blackdetect)",
    "mean_luma": "mean luma over the clip's frames (levels 0-255)",
    "frozen_ratio": "fraction of frame pairs with mean absolute difference < 0.255 levels (ffmpeg freezedetect)",
    "letterbox": "median over frames of the area fraction taken by dark uniform borders (0..1; cropdetect rule)",
    "colorfulness": "mean over frames of the Hasler-Suesstrunk 2003 colourfulness M (0 grey .. >100)",
    "scene_max": "largest scene-content score in the clip (NaN without --scenes)",
    "scene_mean": "mean scene-content score in the clip (NaN without --scenes)",
}
#: Per-frame arrays returned by finish(); NaN where a frame has no previous frame to differ from.
PER_FRAME = ("mafd", "ti", "si", "sharpness", "blur", "black", "luma", "letterbox", "colorfulness")


class QualityMetrics:
    """Streaming per-frame measurements of one video (one instance per video; not thread-safe)."""

    def __init__(self, short_side: int = ANALYSIS_SHORT_SIDE) -> None:
        if short_side < 8:
            raise ValueError(f"analysis short side must be >= 8 pixels, got {short_side}")
        self.short_side = short_side
        self.start({})

    def start(self, video_meta: dict) -> None:
        """Reset for a new video (``video_meta`` is accepted for the frame-step interface; unused)."""
        self._prev: np.ndarray | None = None
        self._cols: dict[str, list[np.ndarray]] = {k: [] for k in (*PER_FRAME, "phash")}
        self._pts: list[np.ndarray] = []

    def push(self, frames: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Measure a chunk of (n,H,W,3) uint8 RGB frames in decode order; returns the frames unchanged."""
        if len(frames) == 0:
            return frames
        small = np.stack([self._small(f) for f in frames]).astype(np.float32)
        luma = np.ascontiguousarray(small @ np.array([0.299, 0.587, 0.114], np.float32))
        prev = luma[:1] if self._prev is None else self._prev[None]
        diff = luma - np.concatenate([prev, luma[:-1]])
        mafd, ti = np.abs(diff).mean(axis=(1, 2)), diff.std(axis=(1, 2))
        if self._prev is None:
            mafd[0] = ti[0] = np.nan
        self._prev = luma[-1].copy()
        cols = {"mafd": mafd, "ti": ti, "luma": luma.mean(axis=(1, 2)),
                "black": ((luma <= BLACK_PIXEL).mean(axis=(1, 2)) >= BLACK_PICTURE).astype(np.float32),
                "colorfulness": colorfulness(small), "phash": frame_hashes(luma)}
        for name, fn in (("si", spatial_information), ("sharpness", laplacian_variance), ("blur", crete_blur),
                         ("letterbox", border_fraction)):
            cols[name] = fn(luma)
        for name, values in cols.items():
            self._cols[name].append(np.asarray(values))
        self._pts.append(np.asarray(pts, np.float64))
        return frames

    def finish(self) -> dict[str, np.ndarray]:
        """Per-frame arrays (F,) float32 for :data:`PER_FRAME`, ``phash`` (F, VIEWS) uint64, ``pts_s`` (F,) float64."""
        out = {k: (np.concatenate(v) if v else np.zeros(0)).astype(np.uint64 if k == "phash" else np.float32)
               for k, v in self._cols.items()}
        out["pts_s"] = np.concatenate(self._pts) if self._pts else np.zeros(0, np.float64)
        return out

    def _small(self, rgb: np.ndarray) -> np.ndarray:
        """The analysis view: halved by ``cv2.pyrDown`` (Gaussian 5x5, exact 2:1) while the short side stays at
        least twice the target, then ``INTER_LINEAR`` for the last factor (< 2, so it barely aliases); 6x faster
        than one ``INTER_AREA`` resize by a fractional factor, which dominated the metrics' cost."""
        import cv2

        while min(rgb.shape[:2]) >= 2 * self.short_side:
            rgb = cv2.pyrDown(rgb)
        h, w = rgb.shape[:2]
        scale = self.short_side / min(h, w)
        if scale >= 1:
            return rgb
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def spatial_information(y: np.ndarray) -> np.ndarray | float:
    """P.910 SI: std of the Sobel gradient magnitude over the interior pixels, of (H,W) or per frame of (n,H,W)."""
    import cv2

    stack = _stack(y)
    gx = _interior(cv2.Sobel(_tall(stack), cv2.CV_32F, 1, 0, ksize=3), stack)
    gy = _interior(cv2.Sobel(_tall(stack), cv2.CV_32F, 0, 1, ksize=3), stack)
    out = np.sqrt(gx * gx + gy * gy).std(axis=(1, 2)) if gx[0].size else np.zeros(len(stack))
    return _like(y, out)


def laplacian_variance(y: np.ndarray) -> np.ndarray | float:
    """Variance of the 3x3 Laplacian over the interior pixels (Pech-Pacheco et al. 2000): low means blurred."""
    import cv2

    stack = _stack(y)
    lap = _interior(cv2.Laplacian(_tall(stack), cv2.CV_32F, ksize=1), stack)
    return _like(y, lap.var(axis=(1, 2)) if lap[0].size else np.zeros(len(stack)))


def crete_blur(y: np.ndarray) -> np.ndarray | float:
    """Crété-Roffet et al. 2007 blur: how much a strong low-pass removes of the frame's own variation (0..1)."""
    import cv2

    stack = _stack(y)
    n, h, w = stack.shape
    if min(h, w) < 2:
        return _like(y, np.zeros(n))
    out = np.zeros(n)
    # each direction on a tall image of rows (exact per frame: the filter runs along rows only)
    for frames in (stack, np.ascontiguousarray(stack.transpose(0, 2, 1))):
        blurred = cv2.blur(_tall(frames), (BLUR_TAPS, 1), borderType=cv2.BORDER_REFLECT).reshape(frames.shape)
        d_f = np.abs(np.diff(frames, axis=2))
        d_b = np.abs(np.diff(blurred, axis=2))
        s_f = d_f.sum(axis=(1, 2), dtype=np.float64)
        s_v = np.maximum(0.0, d_f - d_b).sum(axis=(1, 2), dtype=np.float64)
        # a flat picture has no detail at all: maximally blurred
        out = np.maximum(out, np.where(s_f > 0, (s_f - s_v) / np.maximum(s_f, 1e-12), 1.0))
    return _like(y, out)


def border_fraction(y: np.ndarray) -> np.ndarray | float:
    """Area fraction of dark borders: rows (top/bottom) and columns (left/right) with mean luma <= BORDER_LUMA."""
    stack = _stack(y)
    n, h, w = stack.shape
    rows = stack.mean(axis=2) <= BORDER_LUMA
    cols = stack.mean(axis=1) <= BORDER_LUMA
    top, bottom, left, right = _run(rows), _run(rows[:, ::-1]), _run(cols), _run(cols[:, ::-1])
    inner = np.clip(h - top - bottom, 0, None) * np.clip(w - left - right, 0, None)
    out = np.where(rows.all(axis=1), 1.0, 1.0 - inner / float(h * w))
    return _like(y, out)


def _run(flags: np.ndarray) -> np.ndarray:
    """Per row of (n,L) flags, the length of its leading run of True values."""
    return np.where(flags.all(axis=1), flags.shape[1], np.argmin(flags, axis=1))


def _stack(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float32)
    return np.ascontiguousarray(y[None] if y.ndim == 2 else y)


def _tall(stack: np.ndarray) -> np.ndarray:
    """(n,H,W) -> (n*H,W): one OpenCV call for every frame of a chunk."""
    return stack.reshape(-1, stack.shape[2])


def _interior(out: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Back to (n,H,W) without each frame's outer rows and columns (where neighbouring frames touch)."""
    return out.reshape(stack.shape)[:, 1:-1, 1:-1]


def _like(y: np.ndarray, values: np.ndarray) -> np.ndarray | float:
    """A float for one (H,W) frame, a float32 array for (n,H,W)."""
    return float(values[0]) if np.ndim(y) == 2 else np.asarray(values, np.float32)


def colorfulness(rgb: np.ndarray) -> np.ndarray:
    """Hasler & Süsstrunk 2003 colourfulness M of (n,H,W,3) float RGB frames: sigma_rgyb + 0.3 mu_rgyb."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    sigma = np.sqrt(rg.var(axis=(1, 2)) + yb.var(axis=(1, 2)))
    mu = np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2)
    return (sigma + 0.3 * mu).astype(np.float32)


def clip_rows(pts: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Per-frame rows whose pts fall in [start_s, end_s) (1 µs tolerance); the nearest frame when none does."""
    eps = 1e-6
    rows = np.flatnonzero((pts >= start_s - eps) & (pts < end_s - eps))
    if len(rows) == 0 and len(pts):
        rows = np.array([int(np.argmin(np.abs(pts - start_s)))])
    return rows


def aggregate(per_frame: dict[str, np.ndarray], pts: np.ndarray, clip_start_s: float,
              clip_end_s: float) -> dict[str, np.float32]:
    """One float32 per name of :data:`METRICS` for the clip [clip_start_s, clip_end_s) (NaN when undefined).

    ``per_frame`` is what :meth:`QualityMetrics.finish` returned, optionally with ``scene_score`` (F,) added;
    ``pts`` are its frames' times. Difference-based values of a frame compare it with the frame decoded before it.
    """
    rows = clip_rows(np.asarray(pts, np.float64), clip_start_s, clip_end_s)
    col = {k: np.asarray(v, np.float64)[rows] for k, v in per_frame.items() if k not in ("phash", "pts_s")}
    mafd = col["mafd"][~np.isnan(col["mafd"])]
    values = {
        "motion": _mean(mafd), "motion_std": float(mafd.std()) if len(mafd) else math.nan,
        "motion_max": float(mafd.max()) if len(mafd) else math.nan, "si": _max(col["si"]), "ti": _max(col["ti"]),
        "sharpness": _mean(col["sharpness"]), "blur": _mean(col["blur"]), "black_ratio": _mean(col["black"]),
        "mean_luma": _mean(col["luma"]), "frozen_ratio": _mean((mafd < FROZEN_MAFD).astype(np.float64)),
        "letterbox": float(np.median(col["letterbox"])) if len(rows) else math.nan,
        "colorfulness": _mean(col["colorfulness"]),
        "scene_max": _max(col["scene_score"]) if "scene_score" in col else math.nan,
        "scene_mean": _mean(col["scene_score"]) if "scene_score" in col else math.nan,
    }
    return {k: np.float32(values[k]) for k in METRICS}


def _mean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else math.nan


def _max(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.max()) if len(x) else math.nan
