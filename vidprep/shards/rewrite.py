"""The in-place normalization rewrite of feature shards: read raw feature blocks, write a normalized copy atomically.

The maths (fit, apply) lives in stages/normalize.py and the pass in the engine; this module is the HDF5 side. A
rewritten shard carries ``features_normalization`` = the statistics' content id, so a re-run skips it and a run
with other statistics refuses it (never normalized twice).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np

from vidprep.errors import UsageError
from vidprep.shards.trust import open_shard

STATE_ATTR = "features_normalization"
BLOCK = 4096


def shard_config(path: Path) -> dict:
    """The shard's recorded config (``/meta/config_json``), {} when absent."""
    from vidprep.shards.format import META_CONFIG, read_json_attr

    with open_shard(path) as f:
        return read_json_attr(f, META_CONFIG, default={}) or {}


def raw_feature_blocks(path: Path) -> Iterator[np.ndarray]:
    """The shard's raw features in blocks of rows, as float64; refuses a shard that is already normalized."""
    with open_shard(path) as f:
        if f.attrs.get(STATE_ATTR):
            raise UsageError("shards were normalized with statistics that are gone; re-run with --overwrite",
                             path=str(path))
        feats = f["clips/features"]
        for a in range(0, feats.shape[0], BLOCK):
            yield feats[a:a + BLOCK].astype(np.float64)


def rewrite_normalized(out: Path, path: Path, apply: Callable[[np.ndarray], np.ndarray], dtype: np.dtype,
                       digest: str, record: dict) -> None:
    """Replace one shard by a copy whose features are ``apply(raw)`` as ``dtype`` (temp file + rename) and record
    it in the manifest; skipped when already normalized with ``digest``, refused when normalized with others."""
    from vidprep.shards import atomic
    from vidprep.shards.manifest import fsync_and_hash, record_shard
    from vidprep.shards.summary import shard_entry

    with open_shard(path) as src:
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
                _write_features(src["clips/features"], dst["clips"], apply, dtype)
                dst.attrs[STATE_ATTR] = digest
                dst["meta"].create_dataset("normalization_json", data=json.dumps(record),
                                           dtype=h5py.string_dtype("utf-8"))
            summary = shard_entry(src, path)
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


def _write_features(raw: h5py.Dataset, clips: h5py.Group, apply: Callable[[np.ndarray], np.ndarray],
                    dtype: np.dtype) -> None:
    """Normalized features in blocks of rows."""
    n = raw.shape[0]
    first = apply(raw[:1].astype(np.float32)) if n else np.zeros((0, 1), np.float32)
    ds = clips.create_dataset("features", shape=(n, *first.shape[1:]), dtype=dtype)
    for a in range(0, n, BLOCK):
        ds[a:a + BLOCK] = apply(raw[a:a + BLOCK].astype(np.float32)).astype(dtype)
