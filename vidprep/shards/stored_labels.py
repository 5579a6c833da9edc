"""Read the labels an input shard already holds: class names and, per stored video id, its clips' label numbers.

The driver reads these from every shard given as input before any work starts, so that a labels CSV can be checked
against them (a CSV may label unlabeled videos, never give a labelled one another meaning) and the run's class list
can be merged by name. Only plain datasets of bounded size are read: a shard is untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from vidprep.errors import ShardError
from vidprep.shards.format import META_CLASSES, read_json_attr
from vidprep.shards.trust import open_shard

MAX_ROWS = 100_000_000  # more clip rows or videos than any real shard holds: refuse before allocating


@dataclass(frozen=True)
class StoredLabels:
    """One input shard's class names and the set of label numbers of each stored video's clips."""

    path: str
    class_names: list[str] = field(default_factory=list)
    by_video: dict[str, set[int]] = field(default_factory=dict)

    def names_of(self, video_id: str) -> set[str]:
        """Class names the video's clips carry (``#N`` for a number the shard gives no name)."""
        return {self.class_names[n] if n < len(self.class_names) else f"#{n}" for n in self.by_video.get(video_id, ())
                if n >= 0}


def read_stored_labels(path: str | Path) -> StoredLabels:
    """Class names and per-video clip labels of a frame shard; ShardError when they cannot be read safely."""
    try:
        with open_shard(path, layout=False) as f:  # untrusted input: no links, external or virtual data
            ids = _plain_dataset(f, "videos/id").asstr()[:].tolist()
            offsets = _plain_dataset(f, "videos/clip_offset")[:]
            labels = _plain_dataset(f, "clips/label")[:]
            if META_CLASSES in f:
                _plain_dataset(f, META_CLASSES)
            names = read_json_attr(f, META_CLASSES, default=[]) or []
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise ShardError(f"cannot read the shard's labels: {err}", path=str(path)) from None
    if len(offsets) != len(ids) + 1 or not isinstance(names, list):
        raise ShardError("videos/clip_offset or meta/class_names do not match the stored videos", path=str(path))
    offsets = np.clip(offsets.astype(np.int64), 0, len(labels))
    by_video = {vid: {int(n) for n in labels[offsets[v]:offsets[v + 1]]} for v, vid in enumerate(ids)}
    return StoredLabels(str(path), [str(n) for n in names], by_video)


def _plain_dataset(f: h5py.File, name: str) -> h5py.Dataset:
    """The dataset ``name`` if it is stored in this file (no link, external storage or virtual layout) and bounded."""
    parts = name.split("/")
    for depth in range(1, len(parts) + 1):
        parent, leaf = "/".join(parts[:depth - 1]) or "/", parts[depth - 1]
        if not isinstance(f[parent].get(leaf, getlink=True), h5py.HardLink):
            raise ShardError(f"/{'/'.join(parts[:depth])} is missing or a link")
    ds = f[name]
    if not isinstance(ds, h5py.Dataset) or ds.external or ds.is_virtual:
        raise ShardError(f"/{name} is not a dataset stored in the shard")
    if ds.shape and ds.shape[0] > MAX_ROWS:
        raise ShardError(f"/{name} claims {ds.shape[0]} rows")
    return ds
