"""Low-level storage for ShardWriter: the temp file handed to HDF5, and bounded feature-row buffering.

Kept apart from the writer so each stays small; nothing here knows the shard layout beyond /clips/features.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from vidprep.shards import testhooks
from vidprep.errors import ShardError
from vidprep.shards import format as fmt

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

log = logging.getLogger("vidprep.shards.storage")


class DiscardableFile(io.RawIOBase):
    """The shard's temp file, given to h5py as a file object so an aborted shard can be let go cleanly.

    When a write fails inside HDF5 (a full disk), HDF5 cannot close its objects and its clean-up at interpreter
    exit crashes the process. So a failed write is recorded in ``error`` instead of raised, and from then on (or
    after `discard()`) every write succeeds without touching the disk; the writer checks ``error`` and aborts the
    shard, HDF5 releases everything normally, and the temp file is simply removed.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "w+b")  # noqa: SIM115 - closed by close()
        self._discarding = False
        self.error: OSError | None = None

    def check(self) -> None:
        """Raise the first write error, if any happened."""
        if self.error is not None:
            raise OSError(self.error.errno, self.error.strerror)

    def discard(self) -> None:
        """From now on, accept and drop every write."""
        self._discarding = True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer) -> int:
        return self._file.readinto(buf)

    def write(self, data: ReadableBuffer) -> int:
        size = memoryview(data).nbytes  # HDF5 hands over byte buffers, so this is len(data)
        if self._discarding:
            return size
        try:
            testhooks.before_shard_write(size)  # TEST-ONLY: inert unless VIDPREP_TEST_FAIL_WRITE_AFTER is set
            return self._file.write(data)
        except OSError as err:
            self.error = err  # reported by ShardWriter; HDF5 itself never sees the failure, so it stays consistent
            self._discarding = True
            return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: int | None = None) -> int:
        return self._file.tell() if self._discarding else self._file.truncate(size)

    def flush(self) -> None:
        if not self._discarding and not self._file.closed:
            try:
                self._file.flush()
            except OSError as err:
                self.error, self._discarding = err, True

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError as err:
                log.debug("closing temp shard failed: %s", err)
        super().close()


def extend_rows(ds: h5py.Dataset, data: np.ndarray) -> None:
    """Append rows to a resizable dataset."""
    n0 = ds.shape[0]
    ds.resize(n0 + len(data), axis=0)
    if len(data):
        ds[n0:] = data


class FeatureStore:
    """Feature rows in the order they were added: in RAM up to ``budget_bytes``, then spilled to /clips/features.

    Keeps memory bounded for large shards. At `finish()` rows must be in clip order (sorted by video); when they
    already are (the usual case: clips added video by video), spilled rows stay where they are. Otherwise they are
    copied in blocks to a new dataset, and the space of the old one is not reclaimed by HDF5 (logged).
    """

    BLOCK_ROWS = 4096

    def __init__(self, clips: h5py.Group, budget_bytes: int) -> None:
        self._clips, self._budget = clips, budget_bytes
        self._pending: list[np.ndarray] = []
        self._pending_bytes = 0
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None

    def add(self, row: np.ndarray) -> None:
        """Queue one clip's features, (D,) or (T,D), float32|float16|uint8; all rows must agree."""
        row = np.array(row, copy=True)
        if self._shape is None:
            if row.ndim not in (1, 2) or row.dtype.name not in fmt.FEATURE_DTYPES:
                raise ShardError(f"features must be (D,) or (T,D) of {fmt.FEATURE_DTYPES}, got {row.shape} {row.dtype}")
            self._shape, self._dtype = row.shape, row.dtype
        elif row.shape != self._shape or row.dtype != self._dtype:
            raise ShardError(f"features {row.shape} {row.dtype} differ from earlier rows {self._shape} {self._dtype}")
        self._pending.append(row)
        self._pending_bytes += row.nbytes
        if self._pending_bytes >= self._budget:
            self._flush()

    def _flush(self) -> None:
        if "features" not in self._clips:
            if self._shape is None or self._dtype is None:
                raise ShardError("no feature rows to spill")  # _flush runs only after add() set the row layout
            row_bytes = int(np.prod(self._shape)) * self._dtype.itemsize
            rows = int(np.clip(2**20 // max(1, row_bytes), 1, self.BLOCK_ROWS))
            self._clips.create_dataset("features", shape=(0, *self._shape), maxshape=(None, *self._shape),
                                       dtype=self._dtype, chunks=(rows, *self._shape))
        if self._pending:
            extend_rows(self._clips["features"], np.stack(self._pending))
        self._pending, self._pending_bytes = [], 0

    def finish(self, order: np.ndarray) -> None:
        """Write /clips/features holding the added rows ``order`` (kept clips in final order)."""
        if self._shape is None:
            self._clips.create_dataset("features", shape=(0, 0), dtype=np.float32)
            return
        if "features" not in self._clips:
            data = np.stack(self._pending)[order] if len(order) else np.zeros((0, *self._shape), self._dtype)
            self._clips.create_dataset("features", data=data)
            return
        self._flush()
        ds = self._clips["features"]
        if np.array_equal(order, np.arange(len(order))):
            ds.resize(len(order), axis=0)
            return
        log.info("reordering %d spilled feature rows; their old space stays in the file", ds.shape[0])
        new = self._clips.create_dataset("features_sorted", shape=(len(order), *self._shape), dtype=self._dtype,
                                         maxshape=(None, *self._shape), chunks=ds.chunks)
        for a in range(0, len(order), self.BLOCK_ROWS):
            idx = order[a:a + self.BLOCK_ROWS]
            s = np.argsort(idx)
            block = np.empty((len(idx), *self._shape), self._dtype)
            block[s] = ds[idx[s]]
            new[a:a + len(idx)] = block
        del self._clips["features"]
        self._clips.move("features_sorted", "features")
