"""Enhancer on synthetic clips: color balance, contrast, hue safety, temporal smoothing, streaming, catalog."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vidprep.config import EnhanceConfig
from vidprep.stages.enhance import Enhancer, equalize_lut, hist_quantiles, luma, luma_histogram
from vidprep.stages.enhance import EQUALIZE_FRACTIONS

H, W = 45, 61  # odd and non-square, so H/W swaps fail loudly

CATALOG: list[dict] = [
    {},
    {"white_balance": "grayworld"},
    {"white_balance": "whitepatch"},
    {"white_balance": "percentile", "wb_percentile": 2.0},
    {"white_balance": "percentile", "wb_percentile": 0.0},
    {"contrast": "clahe"},
    {"contrast": "clahe", "clahe_clip": 4.0, "clahe_grid": 3},
    {"contrast": "equalize"},
    {"contrast": "autolevels"},
    {"contrast": "gamma", "gamma": 0.6},
    {"contrast": "gamma", "gamma": 1.8},
    {"white_balance": "grayworld", "contrast": "autolevels", "temporal_smoothing": 0.0},
    {"white_balance": "whitepatch", "contrast": "equalize", "temporal_smoothing": 0.5},
    {"white_balance": "percentile", "contrast": "clahe"},
    {"white_balance": "grayworld", "contrast": "gamma", "gamma": 2.2},
]


def _ids(rows: list[dict]) -> list[str]:
    return [",".join(f"{k}={v}" for k, v in row.items()) or "identity" for row in rows]


def textured(h: int = H, w: int = W, *, seed: int = 0) -> np.ndarray:
    """A float (h,w) gray texture around 0.5 with range about +-0.3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    return 0.5 + 0.25 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 0.02, (h, w))


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def moving_clip(t: int = 12, h: int = H, w: int = W) -> np.ndarray:
    """A colorful clip whose content moves, so statistics change from frame to frame."""
    base = textured(h, w + t)
    frames = [np.stack([200 * base[:, i : i + w], 150 * base[:, i : i + w] + 20, 90 * base[:, i : i + w] + 60], -1)
              for i in range(t)]
    return to_u8(np.stack(frames))


def low_contrast_clip(t: int = 3) -> np.ndarray:
    gray = 100 + 40 * (textured() - 0.5)
    return to_u8(np.repeat(np.stack([gray] * 3, -1)[None], t, axis=0))


def luma_std(frames: np.ndarray) -> float:
    return float(np.mean([luma(f).std() for f in frames]))


def mean_hue_deg(patch: np.ndarray) -> float:
    """Circular mean hue (degrees) of an RGB patch."""
    hsv = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
    angles = hsv[..., 0] * 2 * np.pi / 256
    return float(np.degrees(np.angle(np.exp(1j * angles).mean())))


def test_grayworld_equalizes_channel_means() -> None:
    scene = textured()
    cast = to_u8(np.stack([230 * scene, 140 * scene, 60 * scene], -1))[None].repeat(2, axis=0)
    out = Enhancer(EnhanceConfig(white_balance="grayworld")).apply(cast)
    means = out.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) / means.mean() < 0.02, means


def test_percentile_stretch_maps_percentiles_to_range() -> None:
    scene = textured(150, 217)  # larger than the statistics sample: subsampling must not bias percentiles
    frames = to_u8(np.stack([120 * scene + 40, 60 * scene + 90, 90 * scene], -1))[None]
    out = Enhancer(EnhanceConfig(white_balance="percentile", wb_percentile=1.0)).apply(frames)[0]
    for c in range(3):
        lo, hi = np.percentile(out[..., c], [1, 99])
        assert lo <= 6 and hi >= 249, (c, lo, hi)


@pytest.mark.parametrize("contrast", ["clahe", "autolevels", "equalize"])
def test_contrast_raises_luma_std(contrast: str) -> None:
    frames = low_contrast_clip()
    out = Enhancer(EnhanceConfig(contrast=contrast)).apply(frames)
    assert luma_std(out) > 1.5 * luma_std(frames)


@pytest.mark.parametrize("contrast", ["clahe", "equalize"])
def test_luma_contrast_keeps_hue(contrast: str) -> None:
    frames = low_contrast_clip(2)
    frames[:, 10:22, 20:36] = (160, 90, 50)  # saturated orange, luma mid-range: no channel clips after the change
    out = Enhancer(EnhanceConfig(contrast=contrast)).apply(frames)
    assert not np.array_equal(out[:, 10:22, 20:36], frames[:, 10:22, 20:36])
    before, after = mean_hue_deg(frames[0, 12:20, 22:34]), mean_hue_deg(out[0, 12:20, 22:34])
    assert abs(after - before) < 3.0


def test_gamma_above_one_brightens() -> None:
    frames = low_contrast_clip(1)
    assert Enhancer(EnhanceConfig(contrast="gamma", gamma=2.0)).apply(frames).mean() > frames.mean() + 10


def flickering_clip(t: int = 40, *, seed: int = 1) -> np.ndarray:
    """A static low-contrast scene with sensor noise and small exposure (gain) flicker on every frame.

    Flicker is a gain because exposure and mains flicker scale linear light, which gamma encoding keeps a scale.
    """
    rng = np.random.default_rng(seed)
    scene = textured()
    base = np.stack([160 * scene + 20, 120 * scene + 40, 80 * scene + 30], -1)
    frames = [base * (1 + rng.normal(0, 0.02)) + rng.normal(0, 2.0, base.shape) for _ in range(t)]
    return to_u8(np.stack(frames))


def luma_jitter(frames: np.ndarray) -> float:
    """Mean absolute frame-to-frame change of mean luma."""
    return float(np.abs(np.diff([luma(f).mean() for f in frames])).mean())


def test_smoothing_reduces_flicker() -> None:
    frames = flickering_clip()
    jitter = {}
    for alpha in (0.0, 0.9):
        cfg = EnhanceConfig(white_balance="grayworld", contrast="autolevels", temporal_smoothing=alpha)
        jitter[alpha] = luma_jitter(Enhancer(cfg).apply(frames))
    assert jitter[0.9] < jitter[0.0]
    assert jitter[0.9] <= luma_jitter(frames)


def test_smoothing_follows_a_global_gain_change_at_once() -> None:
    # Smoothed statistics are relative to the frame's mean level, so an exposure step is not passed on as a
    # slow drift of the output.
    frames = flickering_clip(20)
    frames[10:] = to_u8(frames[10:].astype(np.float64) * 1.3)
    out = Enhancer(EnhanceConfig(contrast="autolevels", temporal_smoothing=0.9)).apply(frames)
    means = [luma(f).mean() for f in out]
    assert abs(means[10] - means[9]) < 3.0


def test_quantiles_match_numpy_percentiles() -> None:
    values = to_u8(np.random.default_rng(5).normal(120, 30, (64, 64)))
    got = hist_quantiles(luma_histogram(values), np.array([0.01, 0.25, 0.5, 0.99]))[0]
    np.testing.assert_allclose(got, np.percentile(values, [1, 25, 50, 99]), atol=1.0)


def test_equalize_lut_flattens_the_histogram() -> None:
    y = to_u8(100 + 60 * (textured() - 0.5))
    out = equalize_lut(hist_quantiles(luma_histogram(y), EQUALIZE_FRACTIONS)[0])[y]
    pcts = np.arange(10, 100, 10)
    np.testing.assert_allclose(np.percentile(out, pcts), 2.55 * pcts, atol=8)
    # cv2.equalizeHist maps a level to the CDF at its bin's top edge, we use the bin's middle: close, not equal
    assert np.abs(out.astype(int) - cv2.equalizeHist(y).astype(int)).mean() < 6


@pytest.mark.parametrize("row", CATALOG, ids=_ids(CATALOG))
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_chunked_equals_one_shot(row: dict, chunk: int) -> None:
    frames = moving_clip()
    whole = Enhancer(EnhanceConfig(**row)).apply(frames)
    streaming = Enhancer(EnhanceConfig(**row))
    parts = [streaming.apply(frames[i : i + chunk]) for i in range(0, len(frames), chunk)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("row", CATALOG, ids=_ids(CATALOG))
def test_catalog_shape_dtype_determinism(row: dict) -> None:
    frames = moving_clip(5)
    before = frames.copy()
    out = Enhancer(EnhanceConfig(**row)).apply(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frames, before)  # input untouched
    np.testing.assert_array_equal(Enhancer(EnhanceConfig(**row)).apply(frames), out)
    json.dumps(Enhancer(EnhanceConfig(**row)).describe())


def test_identity_config_returns_copy() -> None:
    frames = moving_clip(3)
    out = Enhancer(EnhanceConfig()).apply(frames)
    np.testing.assert_array_equal(out, frames)
    assert out is not frames


def test_reset_starts_a_new_video() -> None:
    cfg = EnhanceConfig(white_balance="grayworld", contrast="autolevels")
    first, second = moving_clip(6), moving_clip(6)[:, :, ::-1].copy()
    enhancer = Enhancer(cfg)
    enhancer.apply(first)
    enhancer.reset()
    np.testing.assert_array_equal(enhancer.apply(second), Enhancer(cfg).apply(second))


def test_single_frame_and_tiny_frames() -> None:
    tiny = to_u8(np.random.default_rng(3).uniform(0, 255, (1, 3, 2, 3)))
    for row in CATALOG:
        assert Enhancer(EnhanceConfig(**row)).apply(tiny).shape == (1, 3, 2, 3)


def test_flat_frame_is_not_blown_up() -> None:
    flat = np.full((2, H, W, 3), 120, dtype=np.uint8)
    out = Enhancer(EnhanceConfig(white_balance="percentile", contrast="autolevels")).apply(flat)
    assert np.ptp(out) == 0


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 5, 3), np.uint8), np.zeros((1, 4, 5, 3), np.float32), np.zeros((1, 4, 5, 4), np.uint8)]
)
def test_rejects_bad_frames(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        Enhancer(EnhanceConfig(contrast="clahe")).apply(bad)
