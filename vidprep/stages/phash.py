"""64-bit DCT perceptual hashes of frames, and the fixed-length per-clip signature dedup matches on.

The hash is the classical pHash (Zauner 2010; the ``imagehash.phash`` recipe): luma scaled to 32x32
(``cv2.INTER_AREA``), 2-D DCT-II, the 8x8 lowest frequencies (DC included) compared with their median, one bit
each, packed big-endian into a uint64 (bit 63 = coefficient (0,0)). Low frequencies survive re-encoding,
rescaling and colour removal, so near-duplicates differ in a few bits.

A crop changes every low frequency at once, so each frame gets a second hash of its centre (:data:`CENTER`
of each side): the full-frame hash of a copy cropped that much equals the centre hash of the original, and
matching compares every hash of one clip with every hash of the other (multi-crop hashing, as copy detectors do).
"""

from __future__ import annotations

import numpy as np

HASH_SIZE = 8
IMAGE_SIZE = 32
CLIP_HASHES = 8
"""Frames hashed per clip, at evenly spaced times; /clips/phash is (N, VIEWS * CLIP_HASHES) uint64."""
CENTER = 0.9
"""Side fraction of the centre view (a copy cropped by 10% of each side hashes like the original's centre)."""
VIEWS = 2
"""Hashes per frame: the full frame, then its centre."""


def frame_hashes(luma: np.ndarray) -> np.ndarray:
    """(n, VIEWS) uint64 pHashes of (n,H,W) float luma frames: full frame, centre (CENTER of each side)."""
    luma = np.asarray(luma, np.float32)
    n, h, w = luma.shape
    dh, dw = round(h * (1 - CENTER) / 2), round(w * (1 - CENTER) / 2)
    low = np.empty((n, VIEWS, HASH_SIZE * HASH_SIZE), np.float32)
    for i, y in enumerate(luma):
        low[i, 0] = _low_frequencies(y)
        low[i, 1] = _low_frequencies(y[dh:h - dh, dw:w - dw])
    return _pack(low > np.median(low, axis=2, keepdims=True))


def phash(y: np.ndarray) -> np.uint64:
    """The 64-bit DCT pHash of one float32 luma image."""
    low = _low_frequencies(np.asarray(y, np.float32))
    return _pack((low > np.median(low))[None])[0]


def _low_frequencies(y: np.ndarray) -> np.ndarray:
    """The 8x8 lowest DCT-II coefficients of the image scaled to 32x32, flattened row by row."""
    import cv2

    small = cv2.resize(np.ascontiguousarray(y), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.dct(small)[:HASH_SIZE, :HASH_SIZE].reshape(-1)


def _pack(bits: np.ndarray) -> np.ndarray:
    """(..., 64) bools -> (...) uint64, big-endian (the first bit is bit 63)."""
    return np.packbits(bits, axis=-1).view(">u8")[..., 0].astype(np.uint64)


def clip_signature(hashes: np.ndarray, pts: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """(VIEWS * CLIP_HASHES,) uint64: the hashes of the frames nearest CLIP_HASHES evenly spaced times in the clip.

    ``hashes`` is (F,) or (F, VIEWS); the result lists every frame's first view, then every frame's second, ...

    Times are ``start_s + (j + 0.5) * (end_s - start_s) / CLIP_HASHES``; only frames in [start_s, end_s) are
    candidates (the nearest frame of the video when the clip holds none). Repeats when the clip has fewer frames.
    """
    pts = np.asarray(pts, np.float64)
    rows = np.flatnonzero((pts >= start_s - 1e-6) & (pts < end_s - 1e-6))
    if len(rows) == 0:
        rows = np.array([int(np.argmin(np.abs(pts - start_s)))])
    times = start_s + (np.arange(CLIP_HASHES) + 0.5) * max(end_s - start_s, 0.0) / CLIP_HASHES
    nearest = np.abs(pts[rows][None, :] - times[:, None]).argmin(axis=1)
    picked = np.asarray(hashes, np.uint64)[rows[nearest]]
    return picked.T.reshape(-1) if picked.ndim == 2 else picked


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 arrays (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int32)
    x = np.ascontiguousarray(x)  # numpy 1.x: popcount of each byte by table
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.int32)
