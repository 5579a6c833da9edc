"""Feature normalization: mergeable running statistics, then z-score, L2, PCA (optionally whitened) and 8-bit
quantization. Pure numpy.

Statistics are gathered in one pass as feature rows are produced (per worker, per shard) and merged afterwards
(:class:`RunningStats`, Chan et al.'s parallel update, float64), so fitting never needs all features in memory and
the result does not depend on how rows were split between workers. A :class:`NormStats` fitted from them is applied
to every row; its arrays are saved in ``normalization.h5`` so another run can reuse it (``--stats-from``).

Rules:

- ``zscore``: ``(x - mean) / std`` with the population std; dimensions whose std is below ``EPS`` (dead units) are
  centered but not scaled (scikit-learn's rule), so they stay 0 instead of exploding.
- ``l2``: ``x / max(||x||, EPS)`` over the last axis; needs no statistics.
- ``pca``: ``(x - mean) @ components.T`` onto the top ``pca_dim`` eigenvectors of the population covariance, in
  order of decreasing eigenvalue, each signed so its largest-magnitude coefficient is positive (deterministic);
  ``whiten`` divides by ``sqrt(eigenvalue + eps)`` with ``eps = EPS * largest eigenvalue``.
- ``uint8`` (after pca): per output dimension i, 256 evenly spaced levels over ``[-QUANT_STDS * s_i,
  +QUANT_STDS * s_i]``, where ``s_i`` is that dimension's std after the projection (``sqrt(eigenvalue)``, or ~1
  when whitened). ``q = clip(round((y - offset) / scale), 0, 255)``, ``y ~ offset + q * scale``. Within the range
  the dequantization error is at most half a step; values beyond 4 std (about 6e-5 of Gaussian data) saturate.
  This is YouTube-8M's scheme (whitened PCA features stored as bytes over [-2, 2]) with a per-dimension range
  fitted from the data instead of a fixed one, so unwhitened dimensions do not waste or clip levels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vidprep.errors import ConfigError, VidprepError

if TYPE_CHECKING:
    from vidprep.config import FeaturesConfig

log = logging.getLogger("vidprep.stages.normalize")

EPS = 1e-6
QUANT_STDS = 4.0
QUANT_LEVELS = 256
METHODS = ("none", "l2", "zscore", "pca")


def _rows(x: np.ndarray) -> np.ndarray:
    """(..., D) -> (N, D) float64 view/copy."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError("features must have at least one dimension (..., D)")
    return x.reshape(-1, x.shape[-1]).astype(np.float64, copy=False)


class RunningStats:
    """Count, mean, sum of squared deviations (M2) and, optionally, the centered co-moment matrix of feature rows.

    ``update`` with any number of rows (N,D) or (N,T,D); ``merge`` two accumulators (order and split do not
    matter, up to float rounding). The co-moment (D,D) is what PCA needs; skip it (``covariance=False``) for z-score.
    """

    def __init__(self, dim: int | None = None, *, covariance: bool = True) -> None:
        self.covariance = covariance
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.comoment: np.ndarray | None = None
        if dim is not None:
            self._init(dim)

    @property
    def dim(self) -> int | None:
        """Feature dimension D (None until the first update)."""
        return None if self.mean is None else len(self.mean)

    def _init(self, dim: int) -> None:
        self.mean, self.m2 = np.zeros(dim), np.zeros(dim)
        self.comoment = np.zeros((dim, dim)) if self.covariance else None

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, m2); they exist once a dimension is known (callers check ``count`` first)."""
        if self.mean is None or self.m2 is None:
            raise ValueError("these running stats hold no feature rows yet")
        return self.mean, self.m2

    def update(self, x: np.ndarray) -> RunningStats:
        """Add feature rows (..., D); returns self."""
        rows = _rows(x)
        if not len(rows):
            return self
        batch = RunningStats(rows.shape[1], covariance=self.covariance)
        centered = rows - rows.mean(axis=0)
        batch.count, batch.mean = len(rows), rows.mean(axis=0)
        batch.m2 = np.einsum("ij,ij->j", centered, centered)
        if self.covariance:
            batch.comoment = centered.T @ centered
        return self.merge(batch)

    def merge(self, other: RunningStats) -> RunningStats:
        """Fold ``other`` into this accumulator (Chan, Golub & LeVeque's pairwise update); returns self."""
        if other.count == 0:
            return self
        if self.covariance and other.comoment is None:
            raise ValueError("cannot merge stats without covariance into stats that track it")
        if self.dim is not None and other.dim != self.dim:
            raise ValueError(f"cannot merge stats of dimension {other.dim} into {self.dim}")
        other_mean, other_m2 = other._moments()
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other_mean.copy(), other_m2.copy()
            # other.comoment is set whenever self tracks covariance (checked above)
            self.comoment = other.comoment.copy() if self.covariance and other.comoment is not None else None
            return self
        mean, m2 = self._moments()
        n = self.count + other.count
        delta = other_mean - mean
        weight = self.count * other.count / n
        self.mean = mean + delta * (other.count / n)
        self.m2 = m2 + other_m2 + delta**2 * weight
        if self.covariance:
            if self.comoment is None or other.comoment is None:
                raise ValueError("these running stats do not track covariance")
            self.comoment = self.comoment + other.comoment + np.outer(delta, delta) * weight
        self.count = n
        return self

    def variance(self) -> np.ndarray:
        """Population variance per dimension."""
        return self._moments()[1] / max(self.count, 1)

    def cov(self) -> np.ndarray:
        """Population covariance (D,D)."""
        if self.comoment is None:
            raise ValueError("these running stats do not track covariance")
        return self.comoment / max(self.count, 1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays that :meth:`from_arrays` restores exactly (for saving and for sending between processes)."""
        if self.mean is None:
            return {"count": np.asarray(np.int64(0))}
        mean, m2 = self._moments()
        out: dict[str, np.ndarray | np.int64] = {"count": np.int64(self.count), "mean": mean, "m2": m2}
        if self.comoment is not None:
            out["comoment"] = self.comoment
        return {k: np.asarray(v) for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RunningStats:
        """Inverse of :meth:`to_arrays`."""
        stats = cls(covariance="comoment" in arrays or int(arrays["count"]) == 0)
        stats.count = int(arrays["count"])
        if stats.count:
            stats.mean, stats.m2 = np.asarray(arrays["mean"], np.float64), np.asarray(arrays["m2"], np.float64)
            stats.comoment = np.asarray(arrays["comoment"], np.float64) if stats.covariance else None
        return stats


@dataclass
class NormStats:
    """A fitted normalization. Arrays are float64; ``apply`` returns float32 (or uint8 when quantized)."""

    method: str = "none"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    components: np.ndarray | None = None
    eigenvalues: np.ndarray | None = None
    whiten: bool = False
    quant_offset: np.ndarray | None = None
    quant_scale: np.ndarray | None = None
    count: int = 0

    @classmethod
    def fit(cls, stats: RunningStats, method: str, *, pca_dim: int | None = None, whiten: bool = False,
            quantize: str = "none") -> NormStats:
        """Fit ``method`` (none|l2|zscore|pca) from running stats; ``quantize="uint8"`` needs pca."""
        if method not in METHODS:
            raise ConfigError(f"--normalize: unknown method {method!r} (use {', '.join(METHODS)})")
        if quantize not in ("none", "uint8") or (quantize == "uint8" and method != "pca"):
            raise ConfigError("--quantize uint8 needs --normalize pca")
        if method in ("none", "l2"):
            return cls(method=method, count=stats.count)
        if stats.count < 2:
            raise VidprepError(f"cannot fit --normalize {method} from {stats.count} feature rows (need >= 2)")
        if method == "zscore":
            mean = stats._moments()[0]
            return cls(method=method, mean=mean.copy(), std=_safe_std(stats.variance()), count=stats.count)
        norm = _fit_pca(stats, pca_dim, whiten)
        if quantize == "uint8":
            norm.quant_offset, norm.quant_scale = _quant_range(norm.output_std())
        return norm

    @property
    def quantized(self) -> bool:
        """True when ``apply`` returns uint8 codes."""
        return self.quant_scale is not None

    @property
    def dim_out(self) -> int | None:
        """Output dimension (K for pca, D otherwise; None when unknown, as for l2/none)."""
        if self.components is not None:
            return len(self.components)
        return None if self.mean is None else len(self.mean)

    def output_std(self) -> np.ndarray:
        """Std of each output dimension of the projection (before quantization)."""
        eig = np.clip(_fitted(self.eigenvalues, "eigenvalues"), 0, None)
        return np.sqrt(eig / (eig + self._whiten_eps())) if self.whiten else np.sqrt(eig)

    def _whiten_eps(self) -> float:
        return EPS * float(max(_fitted(self.eigenvalues, "eigenvalues").max(initial=0.0), EPS))

    def project(self, x: np.ndarray) -> np.ndarray:
        """Float32 result of the method on (..., D) features, before any quantization."""
        x = np.asarray(x, np.float32)
        if self.method == "l2":
            return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(EPS))
        if self.method == "zscore":
            mean, std = _fitted(self.mean, "mean"), _fitted(self.std, "std")
            return ((x - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32)
        if self.method == "pca":
            mean, components = _fitted(self.mean, "mean"), _fitted(self.components, "components")
            y = (x - mean.astype(np.float32)) @ components.T.astype(np.float32)
            if self.whiten:
                y /= np.sqrt(_fitted(self.eigenvalues, "eigenvalues") + self._whiten_eps()).astype(np.float32)
            return y.astype(np.float32, copy=False)
        return x

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalize (..., D) features: float32 (..., K), or uint8 codes when quantized."""
        y = self.project(x)
        if self.quant_scale is None:  # not quantized
            return y
        offset = _fitted(self.quant_offset, "quant_offset")
        q = np.rint((y - offset.astype(np.float32)) / self.quant_scale.astype(np.float32))
        return np.clip(q, 0, QUANT_LEVELS - 1).astype(np.uint8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """uint8 codes -> float32 values of their levels (``offset + q * scale``)."""
        if self.quant_scale is None:
            raise ValueError("this normalization is not quantized")
        offset = _fitted(self.quant_offset, "quant_offset")
        return (offset + np.asarray(q, np.float64) * self.quant_scale).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays by name (``mean``, ``std``, ``components``, ``eigenvalues``, ``quant_*``)."""
        names = ("mean", "std", "components", "eigenvalues", "quant_offset", "quant_scale")
        return {n: np.asarray(getattr(self, n)) for n in names if getattr(self, n) is not None}

    def meta(self) -> dict[str, Any]:
        """Scalar settings that go with :meth:`to_arrays` (HDF5 attributes)."""
        return {"method": self.method, "whiten": self.whiten, "quantize": "uint8" if self.quantized else "none",
                "count": self.count, "dim_out": self.dim_out or 0, "eps": EPS, "quant_stds": QUANT_STDS,
                "quant_levels": QUANT_LEVELS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> NormStats:
        """Inverse of :meth:`to_arrays` + :meth:`meta`; gives the identical transform."""
        meta = meta or {}
        method = str(meta.get("method") or _guess_method(arrays))
        kwargs = {n: np.asarray(arrays[n], np.float64) for n in
                  ("mean", "std", "components", "eigenvalues", "quant_offset", "quant_scale") if n in arrays}
        return cls(method=method, whiten=bool(meta.get("whiten", False)), count=int(meta.get("count", 0)), **kwargs)


def fit_normalization(stats: RunningStats, cfg: FeaturesConfig) -> NormStats:
    """Fit the normalization a FeaturesConfig asks for (``normalize``, ``pca_dim``, ``whiten``, ``quantize``)."""
    return NormStats.fit(stats, cfg.normalize, pca_dim=cfg.pca_dim, whiten=cfg.whiten, quantize=cfg.quantize)


def _fitted(value: np.ndarray | None, name: str) -> np.ndarray:
    """A fitted array the method needs: ``fit`` always sets it, ``from_arrays`` of an incomplete file may not."""
    if value is None:
        raise ValueError(f"this normalization has no fitted {name} array")
    return value


def _guess_method(arrays: dict[str, np.ndarray]) -> str:
    if "components" in arrays:
        return "pca"
    return "zscore" if "std" in arrays else "l2"


def _safe_std(variance: np.ndarray) -> np.ndarray:
    std = np.sqrt(np.clip(variance, 0, None))
    std[std < EPS] = 1.0
    return std


def _fit_pca(stats: RunningStats, pca_dim: int | None, whiten: bool) -> NormStats:
    """Eigen-decompose the population covariance; keep the top ``pca_dim`` axes with a deterministic sign."""
    mean, _ = stats._moments()
    dim = len(mean)
    k = pca_dim or dim
    if k > dim:
        raise ConfigError(f"--pca-dim {k} is larger than the feature dimension {dim}")
    eigenvalues, vectors = np.linalg.eigh(stats.cov())
    order = np.argsort(eigenvalues)[::-1][:k]
    components = vectors[:, order].T
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    if k > stats.count - 1:
        log.warning("pca: %d components from %d rows: the last ones carry no variance", k, stats.count)
    return NormStats(method="pca", mean=mean.copy(), components=components,
                     eigenvalues=np.clip(eigenvalues[order], 0, None), whiten=whiten, count=stats.count)


def _quant_range(std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (offset, scale) of 256 levels over +-QUANT_STDS std (a tiny floor keeps dead dims valid)."""
    half = QUANT_STDS * np.maximum(std, EPS)
    return -half, 2 * half / (QUANT_LEVELS - 1)
