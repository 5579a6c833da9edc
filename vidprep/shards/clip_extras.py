"""Optional per-clip curation columns of a shard: /clips/quality/<name> (N,) float32 and /clips/phash (N,K) uint64.

The writer collects them row by row (rows arrive in any order and are sorted by video at commit, like the other
clip columns) and writes them only when some row carried them; `problems` checks them in an untrusted shard.
"""

from __future__ import annotations

import h5py
import numpy as np

QUALITY_GROUP = "quality"
PHASH = "phash"
MAX_HASHES = 1024


class ClipExtras:
    """Row-aligned quality values and perceptual-hash signatures, kept until the shard is committed."""

    def __init__(self) -> None:
        self._quality: list[dict[str, float] | None] = []
        self._phash: list[np.ndarray | None] = []

    def add(self, quality: dict[str, float] | None, phash: np.ndarray | None) -> None:
        """Record the next row's values (None: the row has none)."""
        self._quality.append(None if quality is None else {str(k): float(v) for k, v in quality.items()})
        self._phash.append(None if phash is None else np.asarray(phash, np.uint64).reshape(-1))

    def write(self, clips: h5py.Group, order: np.ndarray) -> None:
        """Write the columns in ``order`` (added-row numbers); a row without a value gets NaN / hash 0."""
        picked_q = [self._quality[i] for i in order]
        names = sorted({k for q in picked_q if q for k in q})
        if names:
            group = clips.create_group(QUALITY_GROUP)
            for name in names:
                col = [q.get(name, np.nan) if q else np.nan for q in picked_q]
                group.create_dataset(name, data=np.asarray(col, np.float32).reshape(-1))
        picked_h = [self._phash[i] for i in order]
        width = max((len(h) for h in picked_h if h is not None), default=0)
        if width:
            data = np.zeros((len(order), width), np.uint64)
            for row, h in enumerate(picked_h):
                if h is not None:
                    data[row, : len(h)] = h
            clips.create_dataset(PHASH, data=data)


def problems(clips: h5py.Group, n: int) -> list[str]:
    """Layout problems of the optional curation columns of a shard with ``n`` clips."""
    out = []
    group = clips.get(QUALITY_GROUP)
    if group is not None:
        if not isinstance(group, h5py.Group):
            return [f"/clips/{QUALITY_GROUP} must be a group"]
        for name, ds in group.items():
            if not name.isidentifier() or not isinstance(ds, h5py.Dataset) or ds.shape != (n,) \
                    or ds.dtype != np.float32:
                out.append(f"/clips/{QUALITY_GROUP}/{name} must be a ({n},) float32 dataset named like an identifier")
    ds = clips.get(PHASH)
    if ds is not None and (not isinstance(ds, h5py.Dataset) or ds.dtype != np.uint64 or ds.ndim != 2
                           or ds.shape[0] != n or not 0 < ds.shape[1] <= MAX_HASHES):
        out.append(f"/clips/{PHASH} must be ({n},K) uint64 with 0 < K <= {MAX_HASHES}")
    return out


def read_quality(clips: h5py.Group) -> dict[str, np.ndarray]:
    """{name: (N,) float32} of a (validated) shard's quality columns; {} when it has none."""
    group = clips.get(QUALITY_GROUP)
    return {name: group[name][:] for name in group} if group is not None else {}


def clip_table(path: str, *, features: bool = False) -> dict[str, np.ndarray]:
    """The columns dedup needs of one untrusted shard: ids, sizes, durations, phash (and features when asked).

    Keys: video_id, clip_index, aug_index, row, pixels (video width x height), duration (end_s - start_s),
    phash ((N,K) uint64, absent when the shard has none), features ((N,...) float32, when asked and present).
    """
    from vidprep.shards.trust import open_shard

    with open_shard(path) as f:
        c, v = f["clips"], f["videos"]
        vid = c["video_index"][:]
        ids = v["id"].asstr()[:]
        out = {"video_id": np.asarray(ids, object)[vid] if len(ids) else np.zeros(0, object),
               "clip_index": c["clip_index"][:], "aug_index": c["aug_index"][:], "row": np.arange(len(vid)),
               "pixels": (v["width"][:].astype(np.int64) * v["height"][:])[vid] if len(ids) else np.zeros(0),
               "duration": c["end_s"][:] - c["start_s"][:]}
        if PHASH in c:
            out["phash"] = c[PHASH][:]
        if features and "features" in c:
            out["features"] = c["features"][:].astype(np.float32)
    return out
