"""Near-duplicate clip groups from per-clip pHash signatures (tier 1) and, optionally, features (tier 2).

Tier 1. Every clip has K frame hashes (64-bit pHash, see `phash`). Candidates come from banded LSH: each hash is
cut into :data:`BANDS` bands of 16 bits; two clips are candidates when any of their hashes agree exactly on any
band (near-identical frames differ in a few bits, so some band survives). Each candidate pair is then scored:
a frame *matches* when some frame of the other clip is within ``max_distance`` bits; the similarity is the mean
of the two clips' matched fractions. Matching any frame of the other clip (not the same position) tolerates a
temporal offset, so a copy trimmed by up to a second still matches most frames. Pairs at or above
``min_similarity`` are duplicates; groups are the connected components.

Tier 2 (features given). Clips whose L2-normalized features have cosine similarity >= ``cosine`` are also
duplicates (blocked matrix products); this confirms tier-1 pairs and adds those the hashes missed.

Which clip of a group is kept: highest resolution (width x height), then longest (end_s - start_s, to the
millisecond), then the smallest id (shard order, then row) — deterministic whatever the order clips were made in.
"""

from __future__ import annotations

import logging

import numpy as np

from vidprep.stages.phash import hamming

log = logging.getLogger("vidprep.stages.dedup")

BANDS = 4
BAND_BITS = 16
MAX_BUCKET = 2000
"""A band value shared by more clips than this (e.g. all-black frames) yields no candidates: it says nothing."""
PAIR_CHUNK = 200_000


def candidate_pairs(sigs: np.ndarray) -> np.ndarray:
    """(P,2) int64 clip pairs (a < b) sharing at least one 16-bit band value of any of their frame hashes."""
    n, k = sigs.shape
    found = []
    for band in range(BANDS):
        values = ((sigs >> np.uint64(band * BAND_BITS)) & np.uint64(0xFFFF)).astype(np.int64)
        keys = np.unique(values * n + np.arange(n)[:, None])  # (value, clip) once per clip
        val, clip = keys // n, keys % n
        found.append(_bucket_pairs(val, clip))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    if not len(pairs):
        return pairs
    code = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([code // n, code % n], axis=1)


def _bucket_pairs(val: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """All pairs of clips within runs of equal ``val`` (sorted), skipping runs longer than MAX_BUCKET."""
    starts = np.flatnonzero(np.r_[True, val[1:] != val[:-1]])
    sizes = np.diff(np.r_[starts, len(val)])
    ok = np.repeat(sizes <= MAX_BUCKET, sizes)
    val, clip = val[ok], clip[ok]
    out = []
    for d in range(1, int(sizes[sizes <= MAX_BUCKET].max(initial=1))):
        same = np.flatnonzero(val[d:] == val[:-d])
        if not len(same):
            break
        out.append(np.stack([clip[same], clip[same + d]], axis=1))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    return np.sort(pairs, axis=1)


def pair_similarity(sigs: np.ndarray, pairs: np.ndarray, max_distance: int, views: int = 1) -> np.ndarray:
    """(P,) float32: mean over both clips of the fraction of their frames matched within ``max_distance`` bits.

    A signature row holds ``views`` blocks of K frame hashes (all frames' full view, then their centre view...);
    a frame matches when any of its views is near any hash of the other clip.
    """
    out = np.zeros(len(pairs), np.float32)
    k = sigs.shape[1] // views
    for a in range(0, len(pairs), PAIR_CHUNK):
        p = pairs[a:a + PAIR_CHUNK]
        near = hamming(sigs[p[:, 0]][:, :, None], sigs[p[:, 1]][:, None, :]) <= max_distance
        frames_a = near.any(axis=2).reshape(len(p), views, k).any(axis=1)
        frames_b = near.any(axis=1).reshape(len(p), views, k).any(axis=1)
        out[a:a + len(p)] = 0.5 * (frames_a.mean(axis=1) + frames_b.mean(axis=1))
    return out


def feature_pairs(feats: np.ndarray, cosine: float, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) of rows whose L2-normalized features have cosine >= ``cosine``, and their cosines."""
    x = feats.reshape(len(feats), -1, feats.shape[-1]).mean(axis=1).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pairs, sims = [], []
    for a in range(0, len(x), block):
        s = x[a:a + block] @ x.T
        i, j = np.nonzero(s >= cosine)
        i = i + a
        upper = j > i
        pairs.append(np.stack([i[upper], j[upper]], axis=1))
        sims.append(s[i[upper] - a, j[upper]])
    if not pairs:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    return np.concatenate(pairs).astype(np.int64), np.concatenate(sims).astype(np.float32)


def groups(n: int, pairs: np.ndarray) -> np.ndarray:
    """(n,) int64 component label per clip (the smallest member index) from undirected ``pairs``."""
    parent = np.arange(n)
    for a, b in pairs:
        ra, rb = _root(parent, int(a)), _root(parent, int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([_root(parent, i) for i in range(n)], np.int64)


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return i


def keeper_order(pixels: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Rank of each clip as the one to keep (0 best): most pixels, then longest, then smallest index."""
    order = np.lexsort((np.arange(len(pixels)), -duration, -pixels))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank
