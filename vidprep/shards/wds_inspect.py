"""`vidprep shards info|verify|ls` and the Parquet index for WebDataset outputs (``shard-*.tar``).

The same checks as for HDF5 shards, on tars read through `vidprep.shards.wds_read` (untrusted input: refused
members stop that tar's reading and become one problem line each): every tar valid, sizes and sha256 equal to
manifest.json, no tar missing from it or from disk, no video in two tars, no temp leftovers of crashed writers, and
with ``inputs`` each input in a tar or in errors.jsonl.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vidprep.errors import ShardError
from vidprep.shards import manifest
from vidprep.shards.wds_read import find_tars, list_clips, read_tar, validate_tar

log = logging.getLogger("vidprep.shards.wds_inspect")


def _dirs(paths: list[str | Path], tars: list[Path]) -> list[Path]:
    return sorted({p.parent for p in tars} | {Path(p) for p in paths if Path(p).is_dir()})


def verify(paths: list[str | Path], inputs: list[str] | None = None) -> list[str]:
    """Problems of a wds output (empty = clean), one line each."""
    try:
        tars = find_tars(paths)
    except ShardError as err:
        return [str(err)]
    problems: list[str] = []
    seen: dict[str, tuple[str, Path]] = {}
    for path in tars:
        found = validate_tar(path)
        problems += [msg if str(path) in msg else f"{path}: {msg}" for msg in found]
        if not found:
            _collect_videos(path, seen, problems)
    given = {Path(p) for p in paths}
    for d in _dirs(list(paths), tars):
        problems += manifest.check_listed(d, [p for p in tars if p.parent == d], required=d in given,
                                          suffix=".tar", hash_symlinks=False)  # validate_tar refuses symlinks
        problems += [f"{p}: leftover temp file of an interrupted writer (remove with cleanup_temp)"
                     for p in manifest.find_temp(d)]
    if inputs is not None:
        done = set(seen) | {os.path.abspath(s) for s, _ in seen.values()}
        for d in _dirs(list(paths), tars):
            for rec in manifest.read_errors(d, succeeded=set()):
                done |= {str(rec[k]) for k in ("video_id", "path") if rec.get(k)}
        problems += [f"input {x}: not in any tar nor in {manifest.ERRORS_NAME}"
                     for x in inputs if x not in done and os.path.abspath(x) not in done]
    return problems


def _collect_videos(path: Path, seen: dict[str, tuple[str, Path]], problems: list[str]) -> None:
    sources = {m["video_id"]: m.get("source", "") for m in (s.meta for s in read_tar(path, keep=("json",))[0])}
    for vid, source in sorted(sources.items()):
        if vid in seen:
            problems.append(f"video {vid!r} is in two tars: {seen[vid][1]} and {path}")
        else:
            seen[vid] = (str(source), path)


def info(paths: list[str | Path]) -> dict[str, Any]:
    """Summary of wds tars: kind, media, counts, labels, class names, model, size on disk."""
    tars = find_tars(paths)
    labels: Counter = Counter()
    kinds, media, videos, clips, frames = set(), set(), set(), 0, 0
    unit: dict[str, Any] = {}
    for path in tars:
        samples, unit, _ = read_tar(path, keep=("json",))
        kinds.add(unit.get("kind"))
        media.add(unit.get("media"))
        videos |= set(unit.get("video_ids", []))
        clips += len(samples)
        frames += int(unit.get("frames", 0))
        labels.update(int(s.meta.get("label", -1)) for s in samples)
    feats = (unit.get("config") or {}).get("features") or {}
    return {"paths": [str(p) for p in tars], "format": "wds", "kind": _one(kinds), "media": _one(media),
            "shards": len(tars), "videos": len(videos), "clips": clips, "frames": frames,
            "labels": {str(k): v for k, v in sorted(labels.items())}, "class_names": unit.get("class_names", []),
            "model": feats.get("model"), "bytes": sum(p.stat().st_size for p in tars)}


def _one(values: set) -> Any:
    return next(iter(values)) if len(values) == 1 else sorted(values, key=str) or None


def ls(paths: list[str | Path], clips: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per clip (``clips``) or per video (shard, video_id, source, clips, frames)."""
    for path in find_tars(paths):
        rows = list(list_clips(path))
        if clips:
            yield from rows
            continue
        per: dict[str, dict[str, Any]] = {}
        for r in rows:
            v = per.setdefault(r["video_id"], {"shard": path.name, "video_id": r["video_id"], "clips": 0, "frames": 0})
            v["clips"] += 1
            v["frames"] += int(r["frames"] or 0)
        yield from per.values()


def index_columns(path: Path) -> dict[str, np.ndarray]:
    """The index.parquet columns of one tar, in sample order (``key`` names the sample; ``row`` is its position)."""
    samples = read_tar(path, keep=("json",))[0]
    metas = [s.meta for s in samples]
    n = len(metas)
    ordinals = [m.get("ordinals") or [-1] for m in metas]
    cols: dict[str, np.ndarray] = {
        "shard": np.array([path.name] * n, dtype=object), "row": np.arange(n, dtype=np.int64),
        "key": np.array([s.key for s in samples], dtype=object),
        "video_id": np.array([m["video_id"] for m in metas], dtype=object),
        "source": np.array([m.get("source") for m in metas], dtype=object),
        "clip_index": np.array([m["clip_index"] for m in metas], np.int32),
        "aug_index": np.array([m["aug_index"] for m in metas], np.int16),
        "start_s": np.array([m["start_s"] for m in metas], np.float64),
        "end_s": np.array([m["end_s"] for m in metas], np.float64),
        "frame_first": np.array([o[0] for o in ordinals], np.int64),
        "frame_last": np.array([o[-1] for o in ordinals], np.int64),
        "frames": np.array([m["frames"] for m in metas], np.int64),
        "padded": np.array([m["padded"] for m in metas], np.int32),
        "label": np.array([m["label"] for m in metas], np.int64),
        "label_name": np.array([m.get("label_name") or None for m in metas], dtype=object),
    }
    names = sorted({k for m in metas for k in (m.get("quality") or {})})
    for name in names:
        cols[f"quality_{name}"] = np.array([(m.get("quality") or {}).get(name, np.nan) for m in metas], np.float32)
    return cols
