"""Running statistics, fitted normalizations and normalization.h5 round trips (numpy + h5py only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidprep.config import FeaturesConfig
from vidprep.errors import ConfigError, ShardError, VidprepError
from vidprep.shards.normalization import load_normalization, save_normalization
from vidprep.stages.normalize import QUANT_STDS, NormStats, RunningStats, fit_normalization


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    """Correlated, offset, unevenly scaled features (600, 24), like pooled CNN activations."""
    rng = np.random.default_rng(7)
    latent = rng.normal(size=(600, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])
    mix = rng.normal(size=(6, 24))
    return (latent @ mix + rng.normal(scale=0.05, size=(600, 24)) + 3.0).astype(np.float32)


def fitted(x: np.ndarray, **cfg: object) -> NormStats:
    return fit_normalization(RunningStats().update(x), FeaturesConfig(**cfg))


def test_running_stats_match_numpy(feats: np.ndarray) -> None:
    stats = RunningStats()
    for chunk in np.array_split(feats, 7):
        stats.update(chunk)
    x = feats.astype(np.float64)
    assert stats.count == len(x)
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.variance(), x.var(0), rtol=1e-10)
    np.testing.assert_allclose(stats.cov(), np.cov(x.T, bias=True), rtol=1e-9, atol=1e-9)


def test_merged_halves_equal_stats_at_once(feats: np.ndarray) -> None:
    whole = RunningStats().update(feats)
    a, b = RunningStats().update(feats[:217]), RunningStats().update(feats[217:])
    merged = a.merge(b)
    for key, value in whole.to_arrays().items():
        np.testing.assert_allclose(merged.to_arrays()[key], value, rtol=1e-10, atol=1e-9)
    assert RunningStats().merge(whole).count == whole.count
    assert whole.update(np.zeros((0, 24))).count == len(feats)


def test_running_stats_accept_clip_sequences_and_round_trip(feats: np.ndarray) -> None:
    seq = RunningStats().update(feats.reshape(100, 6, 24))
    again = RunningStats.from_arrays(seq.to_arrays())
    assert again.count == 600 and np.array_equal(again.comoment, seq.comoment)
    with pytest.raises(ValueError):
        seq.merge(RunningStats().update(np.ones((3, 5))))


def test_zscore_mean_zero_std_one(feats: np.ndarray) -> None:
    y = fitted(feats, normalize="zscore").apply(feats)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-4)


def test_zscore_constant_dimension_stays_finite() -> None:
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    x[:, 2] = 7.0
    y = fitted(x, normalize="zscore").apply(x)
    assert np.isfinite(y).all() and np.abs(y[:, 2]).max() < 1e-5


def test_l2_unit_norm(feats: np.ndarray) -> None:
    y = fitted(feats, normalize="l2").apply(feats.reshape(100, 6, 24))
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1, atol=1e-5)
    assert np.isfinite(NormStats(method="l2").apply(np.zeros((2, 3), np.float32))).all()


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_decorrelates(feats: np.ndarray, whiten: bool) -> None:
    norm = fitted(feats, normalize="pca", pca_dim=8, whiten=whiten)
    y = norm.apply(feats).astype(np.float64)
    assert y.shape == (600, 8)
    cov = np.cov(y.T, bias=True)
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-3 * np.diag(cov).max())
    variances = np.diag(cov)
    np.testing.assert_allclose(variances, norm.output_std() ** 2, rtol=1e-3, atol=1e-6)
    if whiten:
        np.testing.assert_allclose(variances[:5], 1, atol=1e-3)
    else:
        np.testing.assert_allclose(variances, norm.eigenvalues, rtol=1e-3, atol=1e-6)
        assert np.all(np.diff(variances) <= 1e-9)


def test_pca_dim_larger_than_features_is_a_usage_error(feats: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="--pca-dim 99"):
        fitted(feats, normalize="pca", pca_dim=99)
    with pytest.raises(VidprepError, match="from 1 feature rows"):
        fitted(feats[:1], normalize="pca")


@pytest.mark.parametrize("whiten", [False, True])
def test_uint8_dequantization_within_one_step(feats: np.ndarray, whiten: bool) -> None:
    norm = fitted(feats, normalize="pca", pca_dim=8, whiten=whiten, quantize="uint8")
    q = norm.apply(feats)
    assert q.dtype == np.uint8 and q.shape == (600, 8)
    y = norm.project(feats)
    inside = np.abs(y) <= QUANT_STDS * norm.output_std()
    assert inside.mean() > 0.999
    err = np.abs(norm.dequantize(q) - y)
    assert np.all(err[inside] <= (0.5 * norm.quant_scale * np.ones_like(y))[inside] + 1e-6)
    assert q.min() < 64 and q.max() > 192


def test_from_arrays_round_trip_gives_identical_transform(feats: np.ndarray) -> None:
    for cfg in ({"normalize": "zscore"}, {"normalize": "pca", "pca_dim": 5, "whiten": True, "quantize": "uint8"}):
        norm = fitted(feats, **cfg)
        again = NormStats.from_arrays(norm.to_arrays(), norm.meta())
        assert np.array_equal(again.apply(feats), norm.apply(feats))


def test_normalization_h5_round_trip(tmp_path: Path, feats: np.ndarray) -> None:
    running = RunningStats().update(feats)
    norm = fit_normalization(running, FeaturesConfig(normalize="pca", pca_dim=4, quantize="uint8"))
    arrays = {**norm.to_arrays(), **{f"running/{k}": v for k, v in running.to_arrays().items()}}
    path = save_normalization(tmp_path / "normalization.h5", arrays, {**norm.meta(), "model": {"name": "resnet18"}})
    assert [p.name for p in tmp_path.iterdir()] == ["normalization.h5"]
    loaded, attrs = load_normalization(path)
    assert attrs["format"] == "vidprep-normalization" and attrs["method"] == "pca" and attrs["whiten"] is False
    assert attrs["model"] == '{"name": "resnet18"}'
    reused = NormStats.from_arrays({k: v for k, v in loaded.items() if "/" not in k}, attrs)
    assert np.array_equal(reused.apply(feats), norm.apply(feats))
    restored = RunningStats.from_arrays({k.removeprefix("running/"): v for k, v in loaded.items() if "/" in k})
    assert restored.count == 600 and np.array_equal(restored.mean, running.mean)


def test_load_normalization_rejects_other_files(tmp_path: Path) -> None:
    import h5py

    with pytest.raises(ShardError, match="not found"):
        load_normalization(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ShardError, match="not a normalization.h5"):
        load_normalization(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ShardError, match="cannot read"):
        load_normalization(tmp_path / "junk.h5")
