"""Library behind `vidprep shards info|verify|ls`: summaries, integrity checks and listings as plain data.

Nothing here prints; the CLI formats what these functions return.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from vidprep.errors import ShardError
from vidprep.shards import format as fmt
from vidprep.shards import manifest, trust

log = logging.getLogger("vidprep.shards.inspect")

Paths = str | Path | Iterable[str | Path]


def _as_list(paths: Paths) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def info(paths: Paths) -> dict[str, Any]:
    """Summary of a set of shards: kind, counts, frame/feature shapes and dtypes, labels, class names, model,
    weights and normalization from the stored config, vidprep versions and size on disk."""
    shards = fmt.find_shards(paths)
    acc: dict[str, Any] = {"kinds": set(), "versions": set(), "codecs": set(), "frame_shapes": set(),
                           "feature": set(), "labels": Counter(), "videos": 0, "clips": 0, "frames": 0}
    config: dict = {}
    class_names: list[str] = []
    for path in shards:
        with trust.open_shard(path) as f:  # untrusted: refused (ShardError) before any data is read
            _accumulate(f, acc)
            config = config or fmt.read_json_attr(f, fmt.META_CONFIG, default={}) or {}
            class_names = class_names or fmt.read_json_attr(f, fmt.META_CLASSES, default=[]) or []
    feats = sorted(acc["feature"])
    feat_cfg = config.get("features") or {}
    return {
        "paths": [str(p) for p in shards], "kind": _one(acc["kinds"]), "shards": len(shards),
        "videos": acc["videos"], "clips": acc["clips"], "frames": acc["frames"],
        "frame_codec": _one(acc["codecs"]), "frame_shapes": [list(s) for s in sorted(acc["frame_shapes"])],
        "frame_dtype": "uint8" if acc["frame_shapes"] else None,
        "feature_shape": list(feats[0][0]) if len(feats) == 1 else [list(s) for s, _ in feats] or None,
        "feature_dtype": _one({d for _, d in feats}),
        "labels": {str(k): v for k, v in sorted(acc["labels"].items())}, "class_names": class_names,
        "model": feat_cfg.get("model"), "weights": feat_cfg.get("weights"),
        "normalization": {k: feat_cfg.get(k) for k in ("normalize", "pca_dim", "whiten", "quantize", "stats_from")
                          if k in feat_cfg} or None,
        "vidprep_versions": sorted(acc["versions"]), "format_version": fmt.FORMAT_VERSION,
        "bytes": sum(p.stat().st_size for p in shards),
    }


def _accumulate(f: h5py.File, acc: dict[str, Any]) -> None:
    """Add one open shard's counts and shapes to the running summary."""
    acc["kinds"].add(str(f.attrs.get("kind")))
    acc["versions"].add(str(f.attrs.get("vidprep_version")))
    n_videos = f["videos/id"].shape[0]
    acc["videos"] += n_videos
    acc["clips"] += f["clips/video_index"].shape[0]
    acc["labels"].update(f["clips/label"][:].tolist())
    for v in range(n_videos):
        g = f["frames"][str(v)]
        acc["frames"] += g["pts_s"].shape[0]
        if "rgb" in g:
            acc["codecs"].add("raw")
            acc["frame_shapes"].add(tuple(g["rgb"].shape[1:3]))
        elif "jpeg" in g:
            acc["codecs"].add("jpeg")
    if "features" in f["clips"]:
        ds = f["clips/features"]
        acc["feature"].add((tuple(ds.shape[1:]), ds.dtype.name))


def _one(values: set) -> Any:
    """The single value of a set, a sorted list when several, None when empty."""
    if not values:
        return None
    return next(iter(values)) if len(values) == 1 else sorted(values)


def verify(paths: Paths, inputs: list[str] | None = None) -> list[str]:
    """Check integrity; one problem per item (empty = all good).

    Opens every shard and validates it, compares size and sha256 with manifest.json, finds videos stored in two
    shards, shards missing from the manifest (or on disk) and temp leftovers of crashed writers; with ``inputs``,
    checks that each input is in a shard or recorded in errors.jsonl.
    """
    problems: list[str] = []
    refused: list[Path] = []
    try:
        shards = fmt.find_shards(paths, refused=refused)
    except ShardError as err:
        return [str(err)]
    problems += [f"{p}: {fmt.SYMLINK_OUTSIDE}" for p in refused]
    dirs = sorted({p.parent for p in shards} | {p for p in _as_list(paths) if p.is_dir()})
    for path in shards:
        problems += [f"{path}: {msg}" for msg in fmt.validate(path)]
    for d in dirs:  # a refused shard counts as present but is never hashed (its target is outside d)
        problems += manifest.check_listed(d, [p for p in shards + refused if p.parent == d],
                                          required=d in _as_list(paths), hash_symlinks=False)
        problems += [f"{p}: leftover temp file of an interrupted writer (remove with cleanup_temp)"
                     for p in manifest.find_temp(d)]
    sources = _video_sources(shards, problems)
    if inputs is not None:
        problems += _check_inputs(inputs, sources, dirs)
    return problems


def _video_sources(shards: list[Path], problems: list[str]) -> dict[str, tuple[str, Path]]:
    """video id -> (source, shard) over all readable shards; reports a video stored in two shards and shards
    that disagree on kind or class names (they cannot be read as one set)."""
    seen: dict[str, tuple[str, Path]] = {}
    layouts: dict[tuple[str, str], Path] = {}
    for path in shards:
        try:
            with trust.open_shard(path) as f:
                layouts.setdefault((str(f.attrs.get("kind")), f[fmt.META_CLASSES].asstr()[()]), path)
                pairs = zip(f["videos/id"].asstr()[:], f["videos/source"].asstr()[:])
                for vid, source in pairs:
                    if vid in seen:
                        problems.append(f"video {vid!r} is in two shards: {seen[vid][1]} and {path}")
                    else:
                        seen[vid] = (source, path)
        except (ShardError, OSError, KeyError) as err:  # validate() already reported why
            log.debug("skipping unreadable %s: %s", path, err)
    if len(layouts) > 1:
        problems.append(f"shards differ in kind or class names: {', '.join(str(p) for p in layouts.values())}")
    return seen


def _check_inputs(inputs: list[str], sources: dict[str, tuple[str, Path]], dirs: list[Path]) -> list[str]:
    """Each input must be a shard's video (by source path or id) or a recorded failure in errors.jsonl."""
    done = set(sources) | {os.path.abspath(s) for s, _ in sources.values()}
    refused: list[str] = []
    for d in dirs:
        try:
            records = manifest.read_errors(d, succeeded=set())
        except ShardError as err:  # a crafted errors.jsonl (symlink, FIFO): reported, never followed
            refused.append(str(err))
            continue
        for rec in records:
            done |= {str(rec[k]) for k in ("video_id", "path") if rec.get(k)}
            done |= {os.path.abspath(str(rec["path"]))} if rec.get("path") else set()
    return refused + [f"input {x}: not in any shard nor in {manifest.ERRORS_NAME}"
                      for x in inputs if x not in done and os.path.abspath(x) not in done]


def ls(paths: Paths, clips: bool = False, top_labels: int = 0) -> Iterator[dict[str, Any]]:
    """One dict per video (shard, v, video_id, source, meta, frames, clips, frame_shape), or with ``clips``
    one per clip (shard, row, video_id, clip_index, aug_index, start_s, end_s, frames, label, label_name), plus
    with ``top_labels`` K the K best zero-shot labels of each clip (``top_labels``: [[label, score], ...])."""
    for path in fmt.find_shards(paths):
        with trust.open_shard(path) as f:
            if not clips:
                yield from _video_rows(f, path)
                continue
            top = _top_labels(f, path, top_labels) if top_labels else None
            for row in _clip_rows(f, path):
                yield row if top is None else {**row, "top_labels": top[row["row"]]}


def _top_labels(f: h5py.File, path: Path, k: int) -> list[list[list[Any]]]:
    """Per clip row, its ``k`` best (label, score) pairs from /clips/text_scores."""
    if "text_scores" not in f["clips"] or "text_labels_json" not in f["meta"]:
        raise ShardError("no zero-shot scores in this shard (made without --text-labels)", path=str(path))
    labels = (fmt.read_json_attr(f, "meta/text_labels_json", default={}) or {}).get("labels", [])
    scores = f["clips/text_scores"][:]
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[[labels[j], round(float(scores[r, j]), 4)] for j in best[r]] for r in range(len(scores))]


def _video_rows(f: h5py.File, path: Path) -> Iterator[dict[str, Any]]:
    cols = {k: f["videos"][k].asstr()[:] if t == "str" else f["videos"][k][:] for k, t in fmt.VIDEO_FIELDS.items()}
    off = f["videos/clip_offset"][:]
    for v in range(len(cols["id"])):
        g = f["frames"][str(v)]
        row = {"shard": str(path), "v": v, "video_id": cols["id"][v]}
        row.update({k: _py(cols[k][v]) for k in fmt.VIDEO_FIELDS if k != "id"})
        row.update(frames=g["pts_s"].shape[0], clips=int(off[v + 1] - off[v]),
                   frame_shape=list(g["rgb"].shape[1:3]) if "rgb" in g else None)
        yield row


def _clip_rows(f: h5py.File, path: Path) -> Iterator[dict[str, Any]]:
    c = {k: f["clips"][k][:] for k in fmt.CLIP_FIELDS if k != "aug_params"}
    ids = f["videos/id"].asstr()[:]
    names = fmt.read_json_attr(f, fmt.META_CLASSES, default=[]) or []
    for r in range(len(c["video_index"])):
        label = int(c["label"][r])
        yield {"shard": str(path), "row": r, "video_id": ids[c["video_index"][r]],
               "clip_index": int(c["clip_index"][r]), "aug_index": int(c["aug_index"][r]),
               "start_s": float(c["start_s"][r]), "end_s": float(c["end_s"][r]),
               "frames": int(c["frame_stop"][r] - c["frame_start"][r] + c["padded"][r]),
               "label": label, "label_name": names[label] if 0 <= label < len(names) else None}


def _py(value: Any) -> Any:
    """Plain Python value; NaN (unknown duration or fps) becomes None so the row is valid JSON."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and value != value else value
