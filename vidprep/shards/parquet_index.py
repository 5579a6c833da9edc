"""OUT/index.parquet: one row per clip of a run, for dataframes, SQL engines and dataset catalogues.

Written at the end of every run (`write_index`, called by the pipeline's finish step) and by
`vidprep shards ls --parquet OUT` for existing outputs. The same shards give the same bytes, whatever executor or
worker count made them: rows are sorted by shard then row, the shard column holds file names (not absolute
paths), the schema and writer options are fixed, and Parquet files carry no timestamp (only the writer's
``created_by`` version string).

Columns (docs/format.md has the table): shard, row, video_id, source, clip_index, aug_index, start_s, end_s,
frame_first, frame_last (source frame ordinals of the clip's first and last frame), frames, padded, label,
label_name, then ``quality_<name>`` (float32) for each ``/clips/quality/<name>`` dataset and ``dup_group`` (int64,
-1 = in no group) from ``/clips/dup_group`` when any shard stores them. Image/mp4 outputs (files plus
index.jsonl) get the same clip columns from index.jsonl, with ``files`` (paths relative to OUT) in place of
shard and row. WebDataset outputs (``shard-*.tar``) get them from each sample's ``.json``: ``shard`` is the tar,
``row`` the sample's position in it and ``key`` (after ``row``) its sample key.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidprep.errors import DependencyError
from vidprep.shards import format as fmt
from vidprep.shards import trust
from vidprep.shards.atomic import writing
from vidprep.shards.manifest import read_own_text

log = logging.getLogger("vidprep.shards.parquet_index")

INDEX_NAME = "index.parquet"
INDEX_VERSION = "1"
QUALITY_GROUP = "clips/quality"
DUP_GROUP = "clips/dup_group"
_CLIP_TYPES = {"video_id": "string", "source": "string", "clip_index": "int32", "aug_index": "int16",
               "start_s": "float64", "end_s": "float64", "frame_first": "int64", "frame_last": "int64",
               "frames": "int64", "padded": "int32", "label": "int64", "label_name": "string"}


def write_index(out_dir: str | Path) -> Path | None:
    """Write ``OUT/index.parquet`` (atomically) from the shards in ``out_dir``, else from its index.jsonl.

    Returns the path written, or None when ``out_dir`` holds neither shards nor an index.jsonl.
    Raises:
        DependencyError: pyarrow is not installed.
    """
    out = Path(out_dir)
    shards = fmt.find_shards(out) if any(out.glob("shard-*.h5")) else []
    columns: dict[str, np.ndarray] | dict[str, list[Any]]
    tars = sorted(out.glob("shard-*.tar")) if not shards else []
    if shards:
        columns = _concat([_shard_columns(p) for p in shards])
    elif tars:  # --format wds: the same columns from each sample's .json, plus the sample's key
        from vidprep.shards.wds_inspect import index_columns
        from vidprep.shards.wds_read import find_tars

        columns = _concat([index_columns(p) for p in find_tars(out)])
    elif (out / "index.jsonl").is_file():
        columns = _jsonl_columns(out / "index.jsonl")
    else:
        return None
    _write(columns, out / INDEX_NAME)
    log.info("wrote %s (%d clips)", out / INDEX_NAME, len(columns["video_id"]))
    return out / INDEX_NAME


def _shard_columns(path: Path) -> dict[str, np.ndarray]:
    """The index columns of one shard, in row order (opened as untrusted: `shards ls --parquet DIR` takes any DIR)."""
    with trust.open_shard(path) as f:
        c = {k: f["clips"][k][:] for k in fmt.CLIP_FIELDS if k != "aug_params"}
        n = len(c["video_index"])
        ids = f["videos/id"].asstr()[:]
        sources = f["videos/source"].asstr()[:]
        names = fmt.read_json_attr(f, fmt.META_CLASSES, default=[]) or []
        first, last = _ordinals(f, c)
        cols: dict[str, np.ndarray] = {
            "shard": np.array([path.name] * n, dtype=object), "row": np.arange(n, dtype=np.int64),
            "video_id": ids[c["video_index"]].astype(object), "source": sources[c["video_index"]].astype(object),
            "clip_index": c["clip_index"], "aug_index": c["aug_index"], "start_s": c["start_s"],
            "end_s": c["end_s"], "frame_first": first, "frame_last": last,
            "frames": c["frame_stop"] - c["frame_start"] + c["padded"], "padded": c["padded"], "label": c["label"],
            "label_name": np.array([_name(names, y) for y in c["label"]], dtype=object),
        }
        if isinstance(f.get(QUALITY_GROUP), h5py.Group):
            for name in sorted(f[QUALITY_GROUP]):
                cols[f"quality_{name}"] = f[QUALITY_GROUP][name][:].astype(np.float32)
        if isinstance(f.get(DUP_GROUP), h5py.Dataset):
            cols["dup_group"] = f[DUP_GROUP][:].astype(np.int64)
    return cols


def _ordinals(f: h5py.File, c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Source ordinals (/frames/<v>/index) of each clip's first and last stored frame."""
    first = np.zeros(len(c["video_index"]), np.int64)
    last = np.zeros_like(first)
    for v in np.unique(c["video_index"]).tolist():
        rows = np.flatnonzero(c["video_index"] == v)
        index = f["frames"][str(v)]["index"][:]
        first[rows] = index[c["frame_start"][rows]]
        last[rows] = index[c["frame_stop"][rows] - 1]
    return first, last


def _name(names: list[str], label: int) -> str | None:
    return names[label] if 0 <= label < len(names) else None


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join per-shard columns; an optional column missing from a shard is null (NaN / -1 dup group) there."""
    optional = {k for part in parts for k in part if k.startswith("quality_") or k == "dup_group"}
    keys = [k for k in parts[0] if k not in optional]  # fixed order: base, quality_* by name, dup_group
    keys += sorted(k for k in optional if k != "dup_group") + (["dup_group"] if "dup_group" in optional else [])
    out = {}
    for key in keys:
        out[key] = np.concatenate([p[key] if key in p else _missing(key, len(p["row"])) for p in parts])
    return out


def _missing(key: str, n: int) -> np.ndarray:
    return np.full(n, -1, np.int64) if key == "dup_group" else np.full(n, np.nan, np.float32)


def _jsonl_columns(path: Path) -> dict[str, list[Any]]:
    """Index columns from an image/mp4 output's index.jsonl (already in unit order, the same in every run)."""
    rows = [json.loads(line) for line in read_own_text(path).splitlines() if line.strip()]  # regular file only
    cols: dict[str, Any] = {k: [] for k in ("files", *_CLIP_TYPES)}
    for r in rows:
        ordinals = r.get("ordinals") or [-1]
        values = {**r, "frame_first": ordinals[0], "frame_last": ordinals[-1],
                  "frames": len(r.get("ordinals") or []) + int(r.get("padded", 0))}
        for key in cols:
            cols[key].append(values.get(key))
    return cols


def _write(columns: dict[str, Any], target: Path) -> None:
    """Write the columns with fixed types and writer options, atomically."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from vidprep.shards.arrow_columns import column
    except ImportError:
        raise DependencyError("writing index.parquet needs pyarrow: pip install pyarrow") from None
    types = {**_CLIP_TYPES, "shard": "string", "row": "int64", "key": "string", "dup_group": "int64"}
    arrays, fields = [], []
    for key, values in columns.items():
        if key == "files":
            typ = pa.list_(pa.string())
        else:
            typ = pa.float32() if key.startswith("quality_") else pa.type_for_alias(types[key])
        arrays.append(column(values, typ))  # not pa.array: that imports pandas (about 1 s) for nothing
        fields.append(pa.field(key, typ))
    schema = pa.schema(fields, metadata={"vidprep_index_version": INDEX_VERSION})
    table = pa.Table.from_arrays(arrays, schema=schema)
    with writing(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, use_dictionary=True,
                       write_statistics=True, row_group_size=1 << 20, version="2.6")
