"""Normalize a feature run after every shard is written: fit over the whole run, save, rewrite each shard.

Statistics are accumulated shard by shard with mergeable accumulators (so the fit is exact across shards and
workers), saved to OUT/normalization.h5 first, then each shard is rewritten atomically with normalized features and
a reference to the statistics (their content id, ``stats_digest``: the same statistics keep their id however often
the file is re-saved). The pass holds the output directory's lock and is idempotent: a shard already normalized
with the same statistics is skipped, one normalized with other statistics is refused (never normalized twice), so a crash mid-pass is repaired by re-running, and the last of
several array-job tasks to finish is the one that fits (earlier ones see missing shards and defer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from vidprep.config import FeaturesConfig
from vidprep.errors import UsageError

log = logging.getLogger("vidprep.normalize_run")

STATE_ATTR = "features_normalization"
LOCK_NAME = ".normalize.lock"


def normalize_output(out: Path, cfg: FeaturesConfig, expected_shards: int | None = None) -> bool:
    """Fit (or load with --stats-from) the normalization and apply it to every raw shard; False when deferred."""
    shards = sorted(out.glob("shard-*.h5"))
    if expected_shards is not None and len(shards) < expected_shards:
        log.info("normalization deferred: %d of %d shards present; the task that completes the run fits it",
                 len(shards), expected_shards)
        return False
    with _pass_lock(out):
        norm, digest = _statistics(out, cfg, shards)
        for path in shards:
            _rewrite(out, path, norm, digest, cfg)
    return True


@contextlib.contextmanager
def _pass_lock(out: Path) -> Iterator[None]:
    """One normalization pass at a time per output directory (separate from the manifest's lock)."""
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _statistics(out: Path, cfg: FeaturesConfig, shards: list[Path]) -> tuple[object, str]:
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
    from vidprep.normalize_setup import weights_id
    from vidprep.shards.format import META_CONFIG, read_json_attr

    with h5py.File(shards[0], "r") as f:
        info = (read_json_attr(f, META_CONFIG, default={}) or {}).get("features_model") or {}
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


def _accumulate(shards: list[Path]) -> object:
    """Merge per-shard running statistics of the raw features (rows of (N,D), or (N,T,D) flattened to frames)."""
    from vidprep.stages.normalize import RunningStats

    total = RunningStats()
    for path in shards:
        with h5py.File(path, "r") as f:
            if f.attrs.get(STATE_ATTR):
                raise UsageError("shards were normalized with statistics that are gone; re-run with --overwrite",
                                 path=str(path))
            feats = f["clips/features"]
            part = RunningStats()
            for a in range(0, feats.shape[0], 4096):
                block = feats[a:a + 4096].astype(np.float64)
                part.update(block.reshape(-1, block.shape[-1]))
        total = total.merge(part)
    return total


def _rewrite(out: Path, path: Path, norm: object, digest: str, cfg: FeaturesConfig) -> None:
    """Replace one shard by a copy whose features are normalized (temp file + rename); skip if already done."""
    from vidprep.shards import atomic
    from vidprep.shards.manifest import fsync_and_hash, record_shard

    with h5py.File(path, "r") as src:
        done = src.attrs.get(STATE_ATTR)
        if done == digest:
            return
        if done:
            raise UsageError(f"shard was normalized with other statistics (id {done}, this run's are {digest}); "
                             "re-run with --overwrite", path=str(path))
        tmp = atomic.temp_path_for(path)
        atomic.claim(tmp, lock=False)  # heartbeat: another task's cleanup keeps it; HDF5 locks it itself
        try:
            with h5py.File(tmp, "w") as dst:
                _copy_except_features(src, dst)
                _write_features(src["clips/features"], dst["clips"], norm, cfg)
                dst.attrs[STATE_ATTR] = digest
                dst["meta"].create_dataset("normalization_json", data=json.dumps(
                    {"file": "normalization.h5", "id": digest, **norm.meta()}), dtype=h5py.string_dtype("utf-8"))
            summary = _summary(src, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            atomic.release(tmp)
    sha, size = fsync_and_hash(tmp)
    atomic.publish(tmp, path, synced=True)
    record_shard(out, {**summary, "bytes": size, "sha256": sha})


def _copy_except_features(src: h5py.File, dst: h5py.File) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for name in src:
        if name not in ("clips", "meta"):
            src.copy(src[name], dst, name)
    meta = dst.create_group("meta")
    for name in src["meta"]:
        if name != "normalization_json":
            src.copy(src["meta"][name], meta, name)
    clips = dst.create_group("clips")
    for name in src["clips"]:
        if name != "features":
            src.copy(src["clips"][name], clips, name)


def _write_features(raw: h5py.Dataset, clips: h5py.Group, norm: object, cfg: FeaturesConfig) -> None:
    """Normalized features in blocks: uint8 codes when quantized, else the configured float dtype."""
    dtype = np.uint8 if norm.quantized else np.dtype(cfg.dtype)
    n = raw.shape[0]
    first = norm.apply(raw[:1].astype(np.float32)) if n else np.zeros((0, 1), np.float32)
    ds = clips.create_dataset("features", shape=(n, *first.shape[1:]), dtype=dtype)
    for a in range(0, n, 4096):
        ds[a:a + 4096] = norm.apply(raw[a:a + 4096].astype(np.float32)).astype(dtype)


def _summary(f: h5py.File, path: Path) -> dict:
    ids = f["videos/id"].asstr()[:].tolist()
    frames = sum(f[f"frames/{v}/pts_s"].shape[0] for v in range(len(ids)))
    return {"name": path.name, "path": str(path), "kind": str(f.attrs["kind"]), "videos": len(ids),
            "clips": int(f["clips/video_index"].shape[0]), "frames": int(frames), "video_ids": ids}
