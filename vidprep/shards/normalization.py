"""Read and write ``normalization.h5``: the feature normalization fitted over a whole run (h5py + numpy only).

Layout (``format="vidprep-normalization"``, ``format_version=1``)::

    / attrs   format, format_version, created_utc, vidprep_version
              method         "none" | "l2" | "zscore" | "pca"
              whiten         bool (pca)
              quantize       "none" | "uint8"
              count          feature rows the statistics were fitted on
              dim_out        output dimension (K for pca, D for zscore; 0 when it needs no statistics)
              eps, quant_stds, quant_levels   constants of the rules below
              digest         content id of the statistics (see ``stats_digest``); shards record it when normalized
              model, weights, dim   what the statistics were fitted on: model name, weights id (``none(seed=S)``,
                             a torchvision weights name, or ``sha256:HEX`` of a weights file) and feature dimension D
              source         (--stats-from copies) the file the statistics were taken from
              ...            whatever else the writer adds; JSON text for dicts/lists
    /mean          (D,)   float64   zscore, pca: subtracted first
    /std           (D,)   float64   zscore: divided by (1.0 where a dimension is constant)
    /components    (K,D)  float64   pca: principal axes, rows by decreasing eigenvalue; y = (x - mean) @ components.T
    /eigenvalues   (K,)   float64   pca: variance along each axis; whiten: y /= sqrt(eigenvalues + eps * max)
    /quant_offset  (K,)   float64   uint8: value of level 0 of each output dimension
    /quant_scale   (K,)   float64   uint8: step between levels; x ~ quant_offset + q * quant_scale
    /running/count, /running/mean (D,), /running/m2 (D,), /running/comoment (D,D)   optional: the merged running
                   statistics the above were fitted from (population moments, float64), so runs can be combined

Reading recipe (plain h5py)::

    with h5py.File("normalization.h5") as f:
        y = (x - f["mean"][:]) @ f["components"][:].T                       # pca
        x_approx = f["quant_offset"][:] + q.astype("f8") * f["quant_scale"][:]  # dequantize uint8 features

The file is written to a hidden temp name next to the final one, fsynced and renamed, so it exists under its final
name only when complete.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidprep import __version__
from vidprep.errors import ShardError
from vidprep.shards import atomic

FORMAT = "vidprep-normalization"
FORMAT_VERSION = 1
NAME = "normalization.h5"
RESERVED_ATTRS = ("format", "format_version", "created_utc", "vidprep_version")
#: Most values all arrays of a file may hold together (1 GiB as float64): the (D,D) co-moment PCA needs fits for
#: D up to 11,585, past any feature model's dimension; a crafted file claiming more is refused before any read.
MAX_VALUES = 2**27
DIGEST_ATTRS = {"method": "none", "whiten": False, "quantize": "none"}


def stats_digest(arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> str:
    """Content id of a normalization: its method settings and fitted arrays (not the file's bytes).

    Re-saving the same statistics (another ``created_utc``, another source path) keeps the id, so a shard that
    records it is recognised as normalized with these statistics however often the file is copied; the optional
    ``running/*`` accumulators are not part of the transform and are left out.
    """
    h = hashlib.sha256()
    for key, default in DIGEST_ATTRS.items():
        value = attrs.get(key, default)
        h.update(f"{key}={bool(value) if key == 'whiten' else str(value)};".encode())
    for name in sorted(n for n in arrays if not n.startswith("running/")):
        a = np.ascontiguousarray(np.asarray(arrays[name], dtype="<f8"))
        h.update(f"{name}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def save_normalization(path: str | Path, stats: dict[str, np.ndarray], attrs: dict[str, Any]) -> Path:
    """Write arrays (names may hold ``/`` for groups, e.g. ``running/mean``) and attributes atomically."""
    final = Path(path)
    with atomic.writing(final, lock=False) as tmp:  # HDF5 locks a file it opens by name itself
        with h5py.File(tmp, "w") as f:
            _write_attrs(f, attrs)
            for name, value in stats.items():
                f.create_dataset(name, data=np.asarray(value))
    return final


def _write_attrs(f: h5py.File, attrs: dict[str, Any]) -> None:
    f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "vidprep_version": __version__,
                    "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    for key, value in attrs.items():
        if key not in RESERVED_ATTRS and value is not None:
            f.attrs[key] = _attr_value(value)


def _attr_value(value: Any) -> Any:
    """HDF5-storable form: numbers, bools and strings as they are; anything else as JSON text."""
    if isinstance(value, (str, bool, int, float, np.number, np.bool_)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def load_normalization(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """All datasets (by path, e.g. ``mean``, ``running/m2``) and root attributes as plain Python values."""
    from vidprep.shards.trust import check_file

    p = Path(path)
    problems = check_file(p) if p.exists() else []  # untrusted like a shard: no links, external or virtual data
    if problems:
        raise ShardError(f"cannot read normalization file: {'; '.join(problems[:3])}", path=str(p))
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ShardError(f"not a {NAME} file (format attribute {f.attrs.get('format')!r})", path=str(p))
            version = int(f.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise ShardError(f"{NAME} format_version {version} is newer than this vidprep reads "
                                 f"({FORMAT_VERSION})", path=str(p))
            sizes: list[int] = []
            f.visititems(lambda name, obj: sizes.append(obj.size) if isinstance(obj, h5py.Dataset) else None)
            if sum(sizes) > MAX_VALUES:  # before any read: gzip lets a small file claim ~1000x its size
                raise ShardError(f"{NAME} claims {sum(sizes)} values (at most {MAX_VALUES})", path=str(p))
            arrays: dict[str, np.ndarray] = {}
            f.visititems(lambda name, obj: _collect(arrays, name, obj))
            return arrays, {k: _plain(v) for k, v in f.attrs.items()}
    except FileNotFoundError:
        raise ShardError("normalization file not found", path=str(p)) from None
    except OSError as err:
        raise ShardError(f"cannot read normalization file: {err}", path=str(p)) from None


def _collect(arrays: dict[str, np.ndarray], name: str, obj: Any) -> None:
    if isinstance(obj, h5py.Dataset):
        arrays[name] = obj[()]


def _plain(value: Any) -> Any:
    """numpy scalars and bytes -> Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value
