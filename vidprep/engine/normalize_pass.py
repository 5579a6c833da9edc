"""Normalize a feature run after every shard is written: fit over the whole run, save, rewrite each shard.

Statistics are accumulated shard by shard with mergeable accumulators (so the fit is exact across shards and
workers), saved to OUT/normalization.h5 first, then each shard is rewritten atomically with normalized features and
a reference to the statistics (their content id, ``stats_digest``: the same statistics keep their id however often
the file is re-saved). The pass holds the output directory's lock and is idempotent: a shard already normalized
with the same statistics is skipped, one normalized with other statistics is refused (never normalized twice), so
a crash mid-pass is repaired by re-running, and the last of
several array-job tasks to finish is the one that fits (earlier ones see missing shards and defer).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from vidprep.config import FeaturesConfig
from vidprep.errors import UsageError

log = logging.getLogger("vidprep.engine.normalize_pass")

LOCK_NAME = ".normalize.lock"


def normalize_output(out: Path, cfg: FeaturesConfig, expected_shards: int | None = None) -> bool:
    """Fit (or load with --stats-from) the normalization and apply it to every raw shard; False when deferred."""
    shards = sorted(out.glob("shard-*.h5"))
    if expected_shards is not None and len(shards) < expected_shards:
        log.info("normalization deferred: %d of %d shards present; the task that completes the run fits it",
                 len(shards), expected_shards)
        return False
    from vidprep.shards.atomic import file_lock

    with file_lock(out / LOCK_NAME):  # one pass at a time per output directory (not the manifest's lock)
        norm, digest = _statistics(out, cfg, shards)
        for path in shards:
            _rewrite(out, path, norm, digest, cfg)
    return True


def _statistics(out: Path, cfg: FeaturesConfig, shards: list[Path]) -> tuple[Any, str]:
    """The normalization to apply and its content id: from --stats-from, from an earlier pass, or fitted now.

    OUT/normalization.h5 is written once: a re-run finds it holding the same statistics (same id) and keeps it, so
    shards already normalized with them are recognised and never normalized twice.
    """
    from vidprep.shards.normalization import NAME, load_normalization, save_normalization, stats_digest
    from vidprep.stages.normalize import NormStats, fit_normalization

    target = out / NAME
    if cfg.stats_from:
        arrays, attrs = _load(Path(cfg.stats_from))
        digest = stats_digest(arrays, attrs)
        if not (target.is_file() and stats_digest(*load_normalization(target)) == digest):
            save_normalization(target, arrays, {**attrs, "digest": digest, "source": str(cfg.stats_from)})
        return NormStats.from_arrays(arrays, attrs), digest
    if target.exists() and _fitted_for(target, cfg):
        arrays, attrs = load_normalization(target)
        return NormStats.from_arrays(arrays, attrs), stats_digest(arrays, attrs)
    stats = _accumulate(shards)
    norm = fit_normalization(stats, cfg)
    digest = stats_digest(norm.to_arrays(), norm.meta())
    running = {f"running/{k}": v for k, v in stats.to_arrays().items()}
    attrs = {**norm.meta(), **_fitted_on(shards, stats.dim), "digest": digest, "config": _cfg_key(cfg)}
    save_normalization(target, {**norm.to_arrays(), **running}, attrs)
    return norm, digest


def _fitted_on(shards: list[Path], dim: int | None) -> dict:
    """Model, weights id and dimension of the features, from the first shard's record of its model."""
    from vidprep.engine.normalize_setup import weights_id
    from vidprep.shards.rewrite import shard_config

    info = shard_config(shards[0]).get("features_model") or {}
    return {"model": info.get("model"), "weights": weights_id(info) if info else None, "dim": dim}


def _load(path: Path) -> tuple[dict, dict]:
    from vidprep.shards.normalization import load_normalization

    if not path.is_file():
        raise UsageError("--stats-from: normalization file not found", path=str(path))
    arrays, attrs = load_normalization(path)
    keep = {k: v for k, v in attrs.items() if k not in ("digest", "source")}
    return {k: v for k, v in arrays.items() if not k.startswith("running/")}, keep


def _cfg_key(cfg: FeaturesConfig) -> str:
    return json.dumps({k: getattr(cfg, k) for k in ("normalize", "pca_dim", "whiten", "quantize")}, sort_keys=True)


def _fitted_for(path: Path, cfg: FeaturesConfig) -> bool:
    from vidprep.shards.normalization import load_normalization

    return load_normalization(path)[1].get("config") == _cfg_key(cfg)


def _accumulate(shards: list[Path]) -> Any:
    """Merge per-shard running statistics of the raw features (rows of (N,D), or (N,T,D) flattened to frames)."""
    from vidprep.stages.normalize import RunningStats

    total = RunningStats()
    from vidprep.shards.rewrite import raw_feature_blocks

    for path in shards:
        part = RunningStats()
        for block in raw_feature_blocks(path):
            part.update(block.reshape(-1, block.shape[-1]))
        total = total.merge(part)
    return total


def _rewrite(out: Path, path: Path, norm: Any, digest: str, cfg: FeaturesConfig) -> None:
    """Rewrite one shard with normalized features: uint8 codes when quantized, else the configured float dtype."""
    from vidprep.shards.rewrite import rewrite_normalized

    dtype = np.dtype(np.uint8) if norm.quantized else np.dtype(cfg.dtype)
    rewrite_normalized(out, path, norm.apply, dtype, digest, {"file": "normalization.h5", "id": digest, **norm.meta()})
