"""Glue between clip rows and a feature model: batching frames or clips, pooling per-frame features into clips.

2D models see every stored frame once (overlapping clips reuse the per-frame features); 3D models see each clip.
Feature statistics for normalization are accumulated here as rows are produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vidprep.config import RunConfig
from vidprep.stages.features import pool_frames
from vidprep.types import ClipRow
from vidprep.types import pad_tail as pad_rows


@dataclass
class FrameFeatures:
    """Per-frame features of a 2D model, computed in batches while frames stream in."""

    extract: Callable[[np.ndarray], np.ndarray]
    batch_size: int
    _pending: list[np.ndarray] = field(default_factory=list)
    _done: list[np.ndarray] = field(default_factory=list)

    def add(self, rgb: np.ndarray) -> None:
        """Queue (n,H,W,3) frames; run the model whenever a full batch is ready."""
        self._pending.extend(rgb)
        while len(self._pending) >= self.batch_size:
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            self._done.append(self.extract(np.stack(batch)))

    def result(self) -> np.ndarray:
        """(F,D) features of every frame added so far (flushes the last partial batch)."""
        if self._pending:
            self._done.append(self.extract(np.stack(self._pending)))
            self._pending = []
        return np.concatenate(self._done, axis=0) if self._done else np.zeros((0, 0), np.float32)


def clip_features_2d(per_frame: np.ndarray, rows: list[ClipRow], run_offset: int, how: str) -> None:
    """Attach pooled 2D features to clip rows whose frames are rows of ``per_frame`` (offset by the run start)."""
    for row in rows:
        feats = per_frame[row.frame_start - run_offset : row.frame_stop - run_offset]
        row.features = pool_frames(pad_rows(feats, row.padded), how).astype(np.float32)


def clip_features_3d(
    extract: Callable[[np.ndarray], np.ndarray],
    rows: list[ClipRow],
    read: Callable[[int, int], np.ndarray],
    batch_size: int,
    clip_len: int,
) -> None:
    """Attach 3D-model features to clip rows, reading each clip's frames and batching clips of equal shape."""
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        clips = [fit_length(pad_rows(read(r.frame_start, r.frame_stop), r.padded), clip_len) for r in chunk]
        feats = extract(np.stack(clips))
        for row, feat in zip(chunk, feats):
            row.features = feat.astype(np.float32)


def fit_length(frames: np.ndarray, length: int) -> np.ndarray:
    """Resample a clip to exactly ``length`` frames by nearest index (3D models need a fixed T)."""
    if len(frames) == length:
        return frames
    idx = np.minimum((np.arange(length) * len(frames)) // length, len(frames) - 1)
    return frames[idx]


def row_kwargs(row: ClipRow) -> dict:
    """Keyword arguments of ShardWriter.add_clip for a row."""
    return {
        "frame_start": row.frame_start,
        "frame_stop": row.frame_stop,
        "start_s": row.start_s,
        "end_s": row.end_s,
        "clip_index": row.clip_index,
        "aug_index": row.aug_index,
        "label": row.label,
        "padded": row.padded,
        "aug_params": row.aug_params,
        "features": row.features,
        "quality": row.quality,
        "phash": row.phash,
    }


def stored_feature_dtype(cfg: RunConfig) -> np.dtype:
    """Features are kept float32 until a normalization pass rewrites them; otherwise stored as --dtype."""
    feats = cfg.features
    if feats is None or feats.normalize != "none" or feats.stats_from:
        return np.dtype(np.float32)
    return np.dtype(feats.dtype)
