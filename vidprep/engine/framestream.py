"""Decoded frames in chunks, and the per-video metadata a shard stores: the glue between the decoder and stages.

Stages work on (n,H,W,3) chunks rather than single frames (vectorized OpenCV/torch calls), and sinks append
chunks; 16 frames keep memory small while amortizing per-call overhead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from vidprep.types import FRAME_CHUNK as CHUNK  # noqa: F401 - the one chunk size, named for the worker
from vidprep.types import DecodedFrame, VideoInfo


def chunked(frames: Iterable[DecodedFrame], size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Group decoded frames into (rgb (n,H,W,3), pts (n,), index (n,)) chunks."""
    batch: list[DecodedFrame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield _stack(batch)
            batch = []
    if batch:
        yield _stack(batch)


def _stack(batch: list[DecodedFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = np.stack([f.rgb for f in batch])
    pts = np.array([f.pts_s for f in batch], dtype=np.float64)
    idx = np.array([f.index for f in batch], dtype=np.int64)
    return rgb, pts, idx


def video_meta(info: VideoInfo) -> dict:
    """Per-video fields stored in /videos/*."""
    return {
        "duration_s": float(info.duration_s or 0.0),
        "fps": float(info.avg_fps or 0.0),
        "width": int(info.width),
        "height": int(info.height),
        "rotation": int(info.rotation),
        "sar": float(info.sar),
        "codec": str(info.codec),
    }
