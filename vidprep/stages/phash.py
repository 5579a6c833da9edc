"""64-bit DCT perceptual hashes of frames, and the fixed-length per-clip signature dedup matches on.

The hash is the classical pHash (Zauner 2010; the ``imagehash.phash`` recipe): luma scaled to 32x32
(``cv2.INTER_AREA``), 2-D DCT-II, the 8x8 lowest frequencies (DC included) compared with their median, one bit
each, packed big-endian into a uint64 (bit 63 = coefficient (0,0)). Low frequencies survive re-encoding,
rescaling and colour removal, so near-duplicates differ in a few bits.
"""

from __future__ import annotations

import numpy as np

HASH_SIZE = 8
IMAGE_SIZE = 32
CLIP_HASHES = 8
"""Hashes stored per clip (/clips/phash is (N, CLIP_HASHES) uint64): frames at evenly spaced times in the clip."""


def frame_hashes(luma: np.ndarray) -> np.ndarray:
    """(n,) uint64 pHashes of (n,H,W) float luma frames."""
    import cv2

    out = np.zeros(len(luma), np.uint64)
    for i, y in enumerate(luma):
        small = cv2.resize(np.asarray(y, np.float32), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        low = cv2.dct(small)[:HASH_SIZE, :HASH_SIZE]
        bits = (low > np.median(low)).reshape(-1)
        out[i] = np.packbits(bits).view(">u8")[0]
    return out


def clip_signature(hashes: np.ndarray, pts: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """(CLIP_HASHES,) uint64: the hash of the frame nearest each of CLIP_HASHES evenly spaced times in the clip.

    Times are ``start_s + (j + 0.5) * (end_s - start_s) / CLIP_HASHES``; only frames in [start_s, end_s) are
    candidates (the nearest frame of the video when the clip holds none). Repeats when the clip has fewer frames.
    """
    pts = np.asarray(pts, np.float64)
    rows = np.flatnonzero((pts >= start_s - 1e-6) & (pts < end_s - 1e-6))
    if len(rows) == 0:
        rows = np.array([int(np.argmin(np.abs(pts - start_s)))])
    times = start_s + (np.arange(CLIP_HASHES) + 0.5) * max(end_s - start_s, 0.0) / CLIP_HASHES
    nearest = np.abs(pts[rows][None, :] - times[:, None]).argmin(axis=1)
    return np.asarray(hashes, np.uint64)[rows[nearest]]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 arrays (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))).astype(np.int32)
