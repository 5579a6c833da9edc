"""Arrow arrays from Python/NumPy columns without pandas.

``pyarrow.array`` checks every input against pandas types, which imports pandas (about 1 s here) into a process
that never uses it; that import was the largest part of writing index.parquet at the end of a short run. The index
only needs flat numbers, strings and lists of strings, so this module builds those arrays straight from buffers:
the same values and nulls ``pa.array(values, type=t, from_pandas=True)`` gives (None and float NaN are null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_NUMERIC = {"int16": np.int16, "int32": np.int32, "int64": np.int64, "float": np.float32, "double": np.float64}


def column(values: Sequence[Any] | np.ndarray, typ: pa.DataType) -> pa.Array:
    """One Arrow array of type ``typ`` (a number type, string, or list of strings) holding ``values``."""
    if pa.types.is_list(typ):
        return _string_lists(list(values), typ)
    if pa.types.is_string(typ):
        return _strings(list(values))
    return _numbers(values, typ)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and value != value)


def _validity(null: np.ndarray) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (None when nothing is null) and the null count."""
    count = int(null.sum())
    if count == 0:
        return None, 0
    return pa.py_buffer(np.packbits(~null, bitorder="little")), count


def _numbers(values: Sequence[Any] | np.ndarray, typ: pa.DataType) -> pa.Array:
    dtype = np.dtype(_NUMERIC[str(typ)])
    source = np.asarray(values)
    if source.dtype == object:
        null = np.array([_is_null(v) for v in source], dtype=bool)
        source = np.array([0 if n else v for n, v in zip(null, source)])
    else:
        null = np.isnan(source) if source.dtype.kind == "f" else np.zeros(len(source), dtype=bool)
    data = np.where(null, 0, source).astype(dtype) if len(source) else np.zeros(0, dtype)
    if dtype.kind in "iu" and not np.array_equal(data, np.where(null, 0, source)):
        raise OverflowError(f"value out of range for {typ}")
    validity, nulls = _validity(null)
    return pa.Array.from_buffers(typ, len(data), [validity, pa.py_buffer(np.ascontiguousarray(data))],
                                 null_count=nulls)


def _strings(values: list[Any]) -> pa.Array:
    null = np.array([v is None for v in values], dtype=bool)
    encoded = [b"" if v is None else str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    validity, nulls = _validity(null)
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], null_count=nulls)


def _string_lists(values: list[Any], typ: pa.DataType) -> pa.Array:
    null = np.array([v is None for v in values], dtype=bool)
    lists = [[] if v is None else list(v) for v in values]
    offsets = np.zeros(len(lists) + 1, np.int32)
    np.cumsum([len(x) for x in lists], out=offsets[1:])
    child = _strings([s for x in lists for s in x])
    validity, nulls = _validity(null)
    return pa.Array.from_buffers(typ, len(values), [validity, pa.py_buffer(offsets)], null_count=nulls,
                                 children=[child])
