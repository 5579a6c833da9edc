"""Color balance and contrast for streams of RGB frames, with temporally smoothed parameters.

An :class:`Enhancer` processes one video at a time, chunk by chunk, and gives the same result whatever the chunk
sizes are. Each frame goes through two steps:

1. **White balance** (``white_balance``), a per-channel affine map (gain, offset) applied with one
   ``cv2.transform``:

   - ``grayworld``: gains that make the three channel means equal to their average.
   - ``whitepatch``: gains that map the ``WHITEPATCH_PERCENTILE``-th percentile (99th, not the maximum, so a few
     hot pixels don't decide) of each channel to 255.
   - ``percentile``: per channel, the ``wb_percentile``-th and ``(100 - wb_percentile)``-th percentiles map to 0 and
     255.

2. **Contrast** (``contrast``):

   - ``autolevels``: one stretch of luma percentiles (``wb_percentile`` clipped at each end) applied to all three
     channels alike, so hues keep; folded into the white-balance map (still one ``cv2.transform`` per frame).
   - ``gamma``: ``out = 255 * (in / 255) ** (1 / gamma)``, so ``gamma > 1`` brightens shadows (the GIMP/ImageMagick
     convention); one static ``cv2.LUT``.
   - ``clahe`` and ``equalize`` act on luma only (the Y of YCrCb, BT.601). Changing Y with Cr/Cb kept moves R, G
     and B by the same amount, so that is how it is applied (no round trip through YCrCb, no chroma rounding), and
     hues don't shift except where a channel clips. Y rather than LAB's L because it is several times cheaper
     and the hue guarantee is the same.

Statistics (channel means, channel and luma percentiles) are computed per frame on every n-th pixel, about
``STATS_SIDE`` pixels on the long side: subsampling (not area averaging) keeps the value distribution unbiased, so
percentiles stay honest, and costs almost nothing. Percentiles are interpolated within a level, so they move
smoothly rather than in whole-level jumps.

Temporal smoothing: each statistic is divided by the frame's mean level (a nearly noise-free average over all
sampled pixels), that ratio is averaged over time with an exponential moving average whose past weight is
``temporal_smoothing`` (0 = per-frame parameters), and multiplied back by the current mean. So the noisy part
(where a percentile falls when sensor noise or a small moving object nudges it) is smoothed and a static scene
doesn't pulse, while a global brightness change (exposure or mains flicker, which is a gain, or a cut) is
followed at once instead of lagging and being passed on amplified by the stretch. ``equalize`` smooths, the same
way, the luma quantiles at ``EQUALIZE_KNOTS`` + 1 evenly spaced fractions, i.e. the inverse of its CDF, and builds
its LUT from them (a piecewise-linear ``cv2.equalizeHist``). CLAHE is deterministic per frame and is not smoothed:
its tiles see full-resolution pixels and adapt locally by design. Everything runs frame by frame, in order, so
the chunking of a video does not change the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from vidprep.config import EnhanceConfig

log = logging.getLogger("vidprep.stages.enhance")

STATS_SIDE = 128
"""Long side (pixels) of the subsample that statistics are computed on."""
WHITEPATCH_PERCENTILE = 99.0
"""Percentile of each channel that white-patch balance maps to 255."""
MAX_GAIN = 4.0
"""Largest (and, inverted, smallest) per-channel white-balance gain: a missing channel must not explode."""
MIN_SPREAD = 16.0
"""Smallest percentile spread (levels) a stretch divides by, so a flat frame isn't blown up into noise."""

EQUALIZE_KNOTS = 64
"""Quantile knots of the equalization curve (the curve is piecewise linear between them)."""

_LEVELS = np.arange(256, dtype=np.float64)
EQUALIZE_FRACTIONS = np.linspace(0.0, 1.0, EQUALIZE_KNOTS + 1)


@dataclass(frozen=True)
class Affine:
    """A per-channel affine map ``out_c = gain_c * in_c + offset_c`` (saturated to uint8 when applied)."""

    gain: np.ndarray = field(default_factory=lambda: np.ones(3))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def then(self, gain: np.ndarray | float, offset: np.ndarray | float) -> Affine:
        """This map followed by ``out = gain * in + offset``."""
        return Affine(self.gain * gain, self.offset * gain + offset)

    def is_identity(self) -> bool:
        """Whether applying this map would change nothing."""
        return bool(np.all(self.gain == 1.0) and np.all(self.offset == 0.0))

    def apply(self, rgb: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
        """Apply to an (H,W,3) uint8 image with one ``cv2.transform`` (rounded, saturated)."""
        if self.is_identity():
            if dst is None:
                return rgb
            dst[...] = rgb
            return dst
        matrix = np.concatenate([np.diag(self.gain), self.offset[:, None]], axis=1)
        return cv2.transform(rgb, matrix, dst=dst)


class _Ema:
    """Exponential moving averages of named statistics, kept relative to an anchor (the frame's mean level).

    A statistic is stored as ``value / anchor``, averaged, and multiplied back by the current anchor. The anchor
    (a mean over all sampled pixels) is nearly noise-free and follows global brightness changes at once, so
    exposure flicker and cuts are tracked frame by frame while the noisy part of the statistic (where a
    percentile falls, how the histogram is shaped) is smoothed. The first value after a reset is taken as is.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.state: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        """Forget the past (a new video starts)."""
        self.state.clear()

    def update(self, name: str, value: np.ndarray, anchor: float) -> np.ndarray:
        """Blend ``value`` (relative to ``anchor``) into the average ``name``; return it at the current anchor."""
        anchor = max(float(anchor), 1.0)
        rel = np.asarray(value, dtype=np.float64) / anchor
        prev = self.state.get(name)
        cur = rel if prev is None else self.alpha * prev + (1.0 - self.alpha) * rel
        self.state[name] = cur
        return cur * anchor


def stats_sample(rgb: np.ndarray, side: int = STATS_SIDE) -> np.ndarray:
    """Every n-th pixel of ``rgb`` (H,W,C) in both directions, so the long side is at most about ``side``."""
    h, w = rgb.shape[:2]
    step = -(-max(h, w) // side)
    if step <= 1:
        return rgb
    return cv2.resize(rgb, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_NEAREST)


def _histogram(image: np.ndarray, channel: int) -> np.ndarray:
    """Normalized 256-bin histogram of one channel."""
    hist = cv2.calcHist([image], [channel], None, [256], [0, 256]).reshape(-1).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def luma_histogram(y: np.ndarray) -> np.ndarray:
    """Normalized 256-bin histogram (1,256) of a luma image, in the (rows, levels) layout of hist_quantiles."""
    return _histogram(y, 0)[None]


def channel_histograms(rgb: np.ndarray) -> np.ndarray:
    """Per-channel normalized histograms (3,256) of an RGB image."""
    return np.stack([_histogram(rgb, c) for c in range(3)])


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (the Y of YCrCb) of an RGB image, uint8."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def hist_quantiles(hist: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Quantiles (levels, float) of histograms (R,256) at ``fractions`` in [0,1] -> (R, len(fractions)).

    Each level's pixels are taken as spread evenly over [level - 0.5, level + 0.5], so quantiles move smoothly
    instead of jumping a whole level; 0 gives the minimum and 1 the maximum (clipped to [0, 255]).
    """
    fractions = np.clip(np.asarray(fractions, dtype=np.float64), 1e-9, 1.0 - 1e-9)
    out = np.empty((hist.shape[0], fractions.size))
    for r, row in enumerate(hist):
        cdf = np.cumsum(row)
        target = fractions * cdf[-1]
        idx = np.minimum(np.searchsorted(cdf, target, side="left"), 255)
        before = np.where(idx > 0, cdf[idx - 1], 0.0)
        out[r] = idx - 0.5 + (target - before) / np.maximum(row[idx], 1e-12)
    return np.clip(out, 0.0, 255.0)


def percentile_pair(p: float) -> np.ndarray:
    """The fractions of the ``p``-th and ``(100 - p)``-th percentiles."""
    return np.array([p, 100.0 - p]) / 100.0


def stretch(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) mapping ``lo`` to 0 and ``hi`` to 255, the spread floored at ``MIN_SPREAD``."""
    gain = 255.0 / np.maximum(hi - lo, MIN_SPREAD)
    return gain, -lo * gain


def gamma_lut(gamma: float) -> np.ndarray:
    """uint8 LUT (256,) for ``255 * (in / 255) ** (1 / gamma)``."""
    return np.clip(np.rint(255.0 * (_LEVELS / 255.0) ** (1.0 / gamma)), 0, 255).astype(np.uint8)


def equalize_lut(quantiles: np.ndarray) -> np.ndarray:
    """Histogram-equalization uint8 LUT (256,) from luma quantiles at ``EQUALIZE_FRACTIONS``.

    Mapping the quantile at fraction p to 255 p is what equalization does; through ``EQUALIZE_KNOTS`` + 1 knots it
    is a piecewise-linear version of ``cv2.equalizeHist`` whose knots can be smoothed over time. A level maps to the
    CDF at the middle of its bin (``cv2.equalizeHist`` uses the bin's top edge, half a bin's share brighter).
    """
    q = np.maximum.accumulate(quantiles) + np.arange(quantiles.size) * 1e-6
    return np.clip(np.rint(255.0 * np.interp(_LEVELS, q, EQUALIZE_FRACTIONS)), 0, 255).astype(np.uint8)


def shift_luma(rgb: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
    """Change the luma of ``rgb`` (in place) from ``old`` to ``new`` by adding the change to all three channels.

    This is what replacing Y in YCrCb and converting back does (R, G and B are Y plus chroma terms), without the
    two color conversions and their rounding: hue is kept wherever no channel clips.
    """
    up, down = cv2.subtract(new, old), cv2.subtract(old, new)
    cv2.add(rgb, cv2.merge([up, up, up]), dst=rgb)
    cv2.subtract(rgb, cv2.merge([down, down, down]), dst=rgb)


class Enhancer:
    """Streaming color balance + contrast for one video at a time (see the module docstring for the methods).

    Call :meth:`apply` with consecutive chunks of a video (any size, even one frame); call :meth:`reset` before
    the next video so its smoothing starts fresh.
    """

    def __init__(self, cfg: EnhanceConfig) -> None:
        self.cfg = cfg
        self._ema = _Ema(cfg.temporal_smoothing)
        grid = (cfg.clahe_grid, cfg.clahe_grid)
        self._clahe = cv2.createCLAHE(clipLimit=cfg.clahe_clip, tileGridSize=grid) if cfg.contrast == "clahe" else None
        self._gamma = gamma_lut(cfg.gamma) if cfg.contrast == "gamma" else None
        log.debug("enhancer: white_balance=%s contrast=%s", cfg.white_balance, cfg.contrast)

    @property
    def active(self) -> bool:
        """Whether this enhancer changes pixels at all."""
        return self.cfg.white_balance != "none" or self.cfg.contrast != "none"

    def reset(self) -> None:
        """Start a new video: forget the smoothed statistics."""
        self._ema.reset()

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Enhance uint8 RGB frames (T,H,W,3), the next chunk of the current video; returns a new array."""
        _check_frames(frames)
        out = np.empty_like(frames)
        if not self.active:
            out[...] = frames
            return out
        for i in range(frames.shape[0]):
            self._frame(np.ascontiguousarray(frames[i]), out[i])
        return out

    def describe(self) -> dict[str, Any]:
        """The parameters and fixed rules of this enhancer, for the shard's config record."""
        return {
            **self.cfg.model_dump(mode="json"),
            "luma": "BT.601 Y (YCrCb); clahe/equalize add the luma change to R, G and B",
            "whitepatch_percentile": WHITEPATCH_PERCENTILE,
            "autolevels_percentile": self.cfg.wb_percentile,
            "gamma_rule": "out = 255 * (in / 255) ** (1 / gamma)",
            "stats": f"every n-th pixel, long side <= {STATS_SIDE}",
            "smoothing": "EMA of per-frame statistics (equalize: of the luma histogram); CLAHE per frame",
            "max_gain": MAX_GAIN,
            "min_spread": MIN_SPREAD,
        }

    def _frame(self, rgb: np.ndarray, dst: np.ndarray) -> None:
        """Enhance one frame into ``dst``: one per-channel affine map, then the luma or gamma step."""
        sample = stats_sample(rgb)
        affine = self._white_balance(sample)
        contrast = self.cfg.contrast
        if contrast in ("autolevels", "equalize"):
            sample = affine.apply(sample)
        if contrast == "autolevels":
            affine = self._autolevels(sample, affine)
        affine.apply(rgb, dst)
        if self._gamma is not None:  # contrast == "gamma"
            cv2.LUT(dst, self._gamma, dst=dst)
        elif contrast in ("clahe", "equalize"):
            y = luma(dst)
            new = self._clahe.apply(y) if self._clahe is not None else cv2.LUT(y, self._equalize_lut(sample))
            shift_luma(dst, y, new)

    def _white_balance(self, sample: np.ndarray) -> Affine:
        """The per-channel map of the configured white balance, from smoothed statistics."""
        method = self.cfg.white_balance
        if method == "none":
            return Affine()
        hist = channel_histograms(sample)
        anchor = float(sample.mean())
        if method == "grayworld":
            means = self._ema.update("wb_means", hist @ _LEVELS, anchor)
            return Affine(_clamp_gain(means.mean() / np.maximum(means, 1e-3)), np.zeros(3))
        if method == "whitepatch":
            top = hist_quantiles(hist, np.array([WHITEPATCH_PERCENTILE / 100.0]))[:, 0]
            top = self._ema.update("wb_top", top, anchor)
            return Affine(_clamp_gain(255.0 / np.maximum(top, 1.0)), np.zeros(3))
        lohi = self._ema.update("wb_lohi", hist_quantiles(hist, percentile_pair(self.cfg.wb_percentile)), anchor)
        return Affine(*stretch(lohi[:, 0], lohi[:, 1]))

    def _autolevels(self, balanced: np.ndarray, affine: Affine) -> Affine:
        """``affine`` followed by one luma percentile stretch shared by the three channels."""
        y = luma(balanced)
        lohi = hist_quantiles(luma_histogram(y), percentile_pair(self.cfg.wb_percentile))[0]
        lo, hi = self._ema.update("luma_lohi", lohi, float(y.mean()))
        return affine.then(*stretch(lo, hi))

    def _equalize_lut(self, balanced: np.ndarray) -> np.ndarray:
        """The equalization LUT of the (white-balanced) sample's luma, from smoothed quantiles."""
        y = luma(balanced)
        quantiles = hist_quantiles(luma_histogram(y), EQUALIZE_FRACTIONS)[0]
        return equalize_lut(self._ema.update("luma_quantiles", quantiles, float(y.mean())))


def _clamp_gain(gain: np.ndarray) -> np.ndarray:
    """Keep white-balance gains within [1/MAX_GAIN, MAX_GAIN]."""
    return np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)


def _check_frames(frames: np.ndarray) -> None:
    """Reject anything but uint8 (T,H,W,3): a wrong layout here would silently corrupt colors."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", None)
        raise ValueError(f"expected uint8 RGB frames (T,H,W,3), got shape {shape} dtype {dtype}")
