"""`vidprep dedup OUT`: near-duplicate clip groups over a shard directory, written to OUT/duplicates.jsonl.

Reads each shard's /clips/phash signatures (stored at split time with --metrics), groups them with
`stages.dedup` (tier 1), optionally adds feature-similar pairs from ``--features`` shards of the same clips
(tier 2, matched by video_id, clip_index, aug_index), and writes one JSON line per clip that has a duplicate:
``{"id": "shard-00000.h5:12", "shard", "row", "video_id", "clip_index", "aug_index", "group", "kept",
"similarity", "tier"}``. ``similarity`` is the clip's best pair score inside its group (1.0 for the kept clip).
A frame shard split with --no-metrics is hashed from its stored frames (same result, slower); a shard that
cannot be read, or a feature shard without hashes, is one error record in OUT/errors.jsonl (exit 3).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from vidprep.errors import ShardError, UsageError
from vidprep.shards.format import SYMLINK_OUTSIDE
from vidprep.shards.manifest import append_shard_error

log = logging.getLogger("vidprep.engine.dedup_run")

TABLE = "duplicates.jsonl"


def run_dedup(out: Path, features: Path | None = None, *, max_distance: int = 12, min_similarity: float = 0.5,
              cosine: float = 0.95) -> dict:
    """Group near-duplicate clips of the shards in ``out``; returns a summary dict (table path, counts)."""
    from vidprep.shards.format import find_shards

    if not 0 <= max_distance <= 64:
        raise UsageError(f"--max-distance must be in [0, 64], got {max_distance}")
    if not 0 < min_similarity <= 1 or not -1 <= cosine <= 1:
        raise UsageError("--min-similarity must be in (0, 1] and --cosine in [-1, 1]")
    if not out.is_dir():
        raise UsageError("OUT must be a directory of shards", path=str(out))
    started = time.monotonic()
    refused: list[Path] = []
    table, failed = _load(find_shards(out, refused=refused), out)
    for path in refused:  # a symlink leading out of OUT: one error record, never read
        append_shard_error(out, path, "dedup", ShardError(SYMLINK_OUTSIDE, path=str(path)))
    failed += len(refused)
    pairs, sims, tiers = _tier1(table, max_distance, min_similarity)
    if features is not None:
        pairs, sims, tiers = _tier2(table, features, cosine, pairs, sims, tiers)
    records = _records(table, pairs, sims, tiers)
    from vidprep.shards.atomic import atomic_write_text

    atomic_write_text(out / TABLE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    groups = len({r["group"] for r in records})
    log.info("dedup: %d clips, %d in %d duplicate groups, %d to drop (%.1f s)", len(table["row"]), len(records),
             groups, sum(not r["kept"] for r in records), time.monotonic() - started)
    return {"table": str(out / TABLE), "clips": int(len(table["row"])), "groups": groups,
            "duplicates": sum(not r["kept"] for r in records), "failed": failed}


def _load(shards: list[Path], out: Path) -> tuple[dict[str, np.ndarray], int]:
    from vidprep.shards.clip_extras import clip_table

    parts, failed = [], 0
    for path in shards:
        try:
            part = clip_table(str(path))
            if "phash" not in part:
                part["phash"] = signatures_from_frames(path)
        except Exception as err:  # noqa: BLE001 - one bad shard is one error record
            append_shard_error(out, path, "dedup", err)
            failed += 1
            continue
        part["shard"] = np.full(len(part["row"]), path.name, object)
        parts.append(part)
    keys = ("video_id", "clip_index", "aug_index", "row", "pixels", "duration", "shard")
    table = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in keys}
    width = max((p["phash"].shape[1] for p in parts), default=1)
    table["phash"] = np.concatenate([_widen(p["phash"], width) for p in parts]) if parts \
        else np.zeros((0, 1), np.uint64)
    return table, failed


def signatures_from_frames(path: Path) -> np.ndarray:
    """(N, VIEWS*K) hashes of a frame shard split with --no-metrics, computed from its stored frames.

    The same computation as at split time over the stored frames (which are the frames the split kept), so the
    result equals what --metrics would have stored. Reads one video's frames at a time.
    """
    from vidprep.shards.reader import ShardSet
    from vidprep.stages.phash import CLIP_HASHES, VIEWS, clip_signature
    from vidprep.stages.quality import QualityMetrics

    with ShardSet(path) as shards:
        if shards.kind != "frames":
            raise UsageError("shard has no /clips/phash and no frames to hash (split it with --metrics)")
        out = np.zeros((len(shards), VIEWS * CLIP_HASHES), np.uint64)
        for video_id in shards.videos():
            video = shards.video(video_id)
            step = QualityMetrics()
            for a in range(0, len(video["pts_s"]), 64):
                step.push(video["frames"][a:a + 64], video["pts_s"][a:a + 64])
            per_frame = step.finish()
            for row, start, end in zip(video["rows"], video["clips"]["start_s"], video["clips"]["end_s"]):
                out[row] = clip_signature(per_frame["phash"], per_frame["pts_s"], float(start), float(end))
    return out


def _widen(h: np.ndarray, width: int) -> np.ndarray:
    """Signatures of another K repeat their last hash up to ``width`` (matching uses any frame)."""
    return h if h.shape[1] == width else np.concatenate([h, np.repeat(h[:, -1:], width - h.shape[1], 1)], 1)


def _tier1(table: dict, max_distance: int, min_similarity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from vidprep.stages.dedup import candidate_pairs, pair_similarity

    from vidprep.stages.phash import CLIP_HASHES

    width = table["phash"].shape[1]
    views = width // CLIP_HASHES if width % CLIP_HASHES == 0 and width >= CLIP_HASHES else 1
    cand = candidate_pairs(table["phash"])
    sims = pair_similarity(table["phash"], cand, max_distance, views)
    ok = sims >= min_similarity
    return cand[ok], sims[ok], np.ones(int(ok.sum()), np.int8)


def _tier2(table: dict, features: Path, cosine: float, pairs: np.ndarray, sims: np.ndarray,
           tiers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add pairs of clips whose features are cosine-similar (clips matched to feature rows by their ids)."""
    from vidprep.shards.clip_extras import clip_table
    from vidprep.shards.format import find_shards
    from vidprep.stages.dedup import feature_pairs

    where = {(str(v), int(c), int(a)): i for i, (v, c, a) in
             enumerate(zip(table["video_id"], table["clip_index"], table["aug_index"]))}
    rows, feats = [], []
    for path in find_shards(features):
        part = clip_table(str(path), features=True)
        if "features" not in part:
            raise UsageError("--features: not a feature shard", path=str(path))
        for j, key in enumerate(zip(part["video_id"], part["clip_index"], part["aug_index"])):
            i = where.get((str(key[0]), int(key[1]), int(key[2])))
            if i is not None:
                rows.append(i)
                feats.append(part["features"][j])
    if not feats:
        log.warning("--features: no feature row matches a clip of the frame shards")
        return pairs, sims, tiers
    fp, fs = feature_pairs(np.stack(feats), cosine)
    rows_arr = np.asarray(rows, np.int64)
    fp = np.sort(rows_arr[fp], axis=1)
    tiers = np.concatenate([tiers, np.full(len(fp), 2, np.int8)])
    return np.concatenate([pairs, fp]), np.concatenate([sims, fs]), tiers


def _records(table: dict, pairs: np.ndarray, sims: np.ndarray, tiers: np.ndarray) -> list[dict]:
    from vidprep.stages.dedup import groups, keeper_order

    n = len(table["row"])
    if not len(pairs):
        return []
    label = groups(n, pairs)
    rank = keeper_order(table["pixels"].astype(np.int64), np.round(table["duration"].astype(np.float64), 3))
    best = np.zeros(n, np.float32)
    tier = np.zeros(n, np.int8)
    for (a, b), s, t in zip(pairs, sims, tiers):
        for i in (a, b):
            if s > best[i]:
                best[i], tier[i] = s, t
    members = np.flatnonzero(np.bincount(label, minlength=n)[label] > 1)
    keeper: dict[int, int] = {}
    for i in members:
        g = int(label[i])
        if g not in keeper or rank[i] < rank[keeper[g]]:
            keeper[g] = int(i)
    number = {g: k for k, g in enumerate(sorted(keeper, key=lambda g: rank_key(table, keeper[g])))}
    out = []
    for i in sorted(members, key=lambda i: (number[int(label[i])], rank[i])):
        kept = keeper[int(label[i])] == i
        out.append({"id": f"{table['shard'][i]}:{int(table['row'][i])}", "shard": str(table["shard"][i]),
                    "row": int(table["row"][i]), "video_id": str(table["video_id"][i]),
                    "clip_index": int(table["clip_index"][i]), "aug_index": int(table["aug_index"][i]),
                    "group": number[int(label[i])], "kept": bool(kept),
                    "similarity": 1.0 if kept else round(float(best[i]), 4), "tier": int(tier[i])})
    return out


def rank_key(table: dict, i: int) -> tuple[str, int]:
    """Groups are numbered in the order of their kept clip's id (shard name, row)."""
    return str(table["shard"][i]), int(table["row"][i])
