"""Copy a shard keeping only some clip rows, and only the frames those rows point at (``vidprep filter``).

No decoding: pixels (raw or JPEG bytes), pts, ordinals, per-frame extras, clip columns, features, quality columns
and hashes are copied row for row. Frames of a video are re-indexed (the kept frame rows, in order, become rows
0..F'-1 and every kept clip's ``frame_start``/``frame_stop`` is remapped); a video left without clips is dropped.
The copy is written under a temp name, validated, fsynced and renamed into place (`atomic.writing`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from vidprep.errors import ShardError
from vidprep.shards import atomic
from vidprep.shards import format as fmt
from vidprep.shards.manifest import ShardSummary, fsync_and_hash

log = logging.getLogger("vidprep.shards.filter_copy")

BLOCK_ROWS = 256
Selector = Callable[[h5py.File], np.ndarray]
"""Given the open (validated) source shard, a (N,) bool mask of the clip rows to keep."""


def filter_shard(src_path: str | Path, dst_path: str | Path, select: Selector, record: dict) -> ShardSummary:
    """Write ``dst_path``: the source shard's clips where ``select`` is True; ``record`` joins /meta/config_json."""
    from vidprep.shards.trust import open_shard

    dst_path = Path(dst_path)
    with open_shard(src_path) as src:
        keep = np.asarray(select(src), bool)
        n = src["clips/video_index"].shape[0]
        if keep.shape != (n,):
            raise ShardError(f"selection has shape {keep.shape}, expected ({n},)", path=str(src_path))
        with atomic.writing(dst_path, lock=False) as tmp:
            with h5py.File(tmp, "w") as dst:
                kept_videos, frames = _copy(src, dst, keep, record)
            problems = fmt.validate(tmp)
            if problems:
                raise ShardError("filtered copy is invalid: " + "; ".join(problems[:3]), path=str(dst_path))
            digest, size = fsync_and_hash(tmp)
        ids = tuple(str(x) for x in src["videos/id"].asstr()[:][kept_videos])
        kind = str(src.attrs["kind"])
    summary = ShardSummary(dst_path, kind, len(ids), int(keep.sum()), frames, size, digest, ids)
    log.info("wrote %s: %d of %d clips kept", dst_path.name, int(keep.sum()), n)
    return summary


def _copy(src: h5py.File, dst: h5py.File, keep: np.ndarray, record: dict) -> tuple[np.ndarray, int]:
    """Everything of ``src`` restricted to the kept clips; returns the kept source video numbers and frame count."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    _copy_meta(src, dst, record)
    vid = src["clips/video_index"][:]
    kept_videos = np.unique(vid[keep])
    for group in ("videos", "clips", "frames"):
        dst.create_group(group)
    new_start, new_stop = src["clips/frame_start"][:].copy(), src["clips/frame_stop"][:].copy()
    frames = 0
    for new_v, v in enumerate(kept_videos):
        rows = np.flatnonzero(keep & (vid == v))
        frames += _copy_frames(src["frames"][str(v)], dst["frames"].create_group(str(new_v)), rows,
                               new_start, new_stop)
    _copy_videos(src["videos"], dst["videos"], kept_videos, vid[keep])
    _copy_clips(src["clips"], dst["clips"], keep, new_start, new_stop, kept_videos)
    return kept_videos, frames


def _copy_meta(src: h5py.File, dst: h5py.File, record: dict) -> None:
    meta = dst.create_group("meta")
    for name in src["meta"]:
        if name != "config_json":
            src.copy(src["meta"][name], meta, name)
    config = fmt.read_json_attr(src, fmt.META_CONFIG, default={}) or {}
    text = json.dumps({**config, **record}, sort_keys=True, ensure_ascii=False, default=str)
    meta.create_dataset("config_json", data=text, dtype=fmt.STR)


def _copy_frames(g: h5py.Group, out: h5py.Group, rows: np.ndarray, new_start: np.ndarray,
                 new_stop: np.ndarray) -> int:
    """Copy the frame rows the clips ``rows`` point at; rewrite those clips' frame ranges. Returns frames kept."""
    n_frames = g["pts_s"].shape[0]
    used = np.zeros(n_frames, bool)
    for r in rows:
        used[new_start[r]:new_stop[r]] = True
    frame_rows = np.flatnonzero(used)
    remap = np.cumsum(used) - 1
    for r in rows:
        new_start[r], new_stop[r] = remap[new_start[r]], remap[new_stop[r] - 1] + 1
    for name, ds in g.items():
        if ds.shape and ds.shape[0] == n_frames:
            _copy_rows(ds, out, name, frame_rows)
        else:
            g.copy(ds, out, name)
    return len(frame_rows)


def _copy_rows(ds: h5py.Dataset, out: h5py.Group, name: str, rows: np.ndarray) -> None:
    """``ds[rows]`` into a new dataset of the same dtype, chunking and compression, in blocks."""
    chunks = (max(1, min(ds.chunks[0], len(rows))), *ds.chunks[1:]) if ds.chunks and len(rows) else None
    new = out.create_dataset(name, shape=(len(rows), *ds.shape[1:]), dtype=ds.dtype, chunks=chunks,
                             compression=ds.compression, maxshape=(None, *ds.shape[1:]) if chunks else None)
    for name_attr, value in ds.attrs.items():
        new.attrs[name_attr] = value
    vlen = h5py.check_vlen_dtype(ds.dtype) is not None
    for a in range(0, len(rows), BLOCK_ROWS):
        block = rows[a:a + BLOCK_ROWS]
        data = ds[block]
        if vlen:  # one by one: h5py reads equal-length vlen buffers back as a 2-D array
            for i, item in enumerate(data):
                new[a + i] = item
        else:
            new[a:a + len(block)] = data


def _copy_videos(src: h5py.Group, dst: h5py.Group, kept_videos: np.ndarray, kept_vid: np.ndarray) -> None:
    for name, ds in src.items():
        if name != "clip_offset":
            dst.create_dataset(name, data=ds[:][kept_videos], dtype=ds.dtype)
    counts = np.array([np.count_nonzero(kept_vid == v) for v in kept_videos], np.int64)
    dst.create_dataset("clip_offset", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _copy_clips(src: h5py.Group, dst: h5py.Group, keep: np.ndarray, new_start: np.ndarray, new_stop: np.ndarray,
                kept_videos: np.ndarray) -> None:
    rows = np.flatnonzero(keep)
    new_of_old = np.full(int(kept_videos.max()) + 1 if len(kept_videos) else 1, -1, np.int64)
    new_of_old[kept_videos] = np.arange(len(kept_videos))
    fixed = {"frame_start": new_start[rows], "frame_stop": new_stop[rows],
             "video_index": new_of_old[src["video_index"][:][rows]].astype(np.int32)}
    for name, obj in src.items():
        if isinstance(obj, h5py.Group):
            group = dst.create_group(name)
            for sub, ds in obj.items():
                group.create_dataset(sub, data=ds[:][rows], dtype=ds.dtype)
        elif name in fixed:
            dst.create_dataset(name, data=fixed[name], dtype=obj.dtype)
        elif obj.ndim == 1:
            dst.create_dataset(name, data=obj[:][rows], dtype=obj.dtype)
        else:
            _copy_rows(obj, dst, name, rows)
