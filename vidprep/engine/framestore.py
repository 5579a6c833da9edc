"""Append-only frame storage on local disk, so one video's frames never have to fit in memory.

Feature runs and image/mp4 outputs do not keep frames in a shard, but clips (and augmented copies) need random
access to them after the video is decoded and the clips are planned. `ScratchFrames` spills them to a temp file.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


class ScratchFrames:
    """Frames of one video appended to an anonymous temp file; rows read back by range.

    The file never has a name (``O_TMPFILE`` through ``tempfile.TemporaryFile``; where the kernel or filesystem
    lacks it, it is unlinked right after it is created), only the open descriptor is kept, so its space is returned
    when the process ends in any way (SIGKILL, out of memory included) and no name is left behind.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._file = tempfile.TemporaryFile("w+b", prefix=".vidprep-frames-", suffix=".raw", dir=directory)
        self._shape: tuple[int, ...] | None = None
        self.rows = 0

    def append(self, rgb: np.ndarray) -> int:
        """Append (n,H,W,3) uint8 frames; return the row of the first one."""
        if self._shape is None:
            self._shape = tuple(rgb.shape[1:])
        elif tuple(rgb.shape[1:]) != self._shape:
            raise ValueError(f"frame shape changed from {self._shape} to {tuple(rgb.shape[1:])}")
        start = self.rows
        self._file.seek(0, os.SEEK_END)
        self._file.write(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
        self.rows += len(rgb)
        return start

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a new (n,H,W,3) array."""
        if self._shape is None or not 0 <= start <= stop <= self.rows:
            raise IndexError(f"rows [{start}, {stop}) outside [0, {self.rows})")
        frame_bytes = int(np.prod(self._shape))
        self._file.flush()
        data = os.pread(self._file.fileno(), frame_bytes * (stop - start), frame_bytes * start)
        return np.frombuffer(data, dtype=np.uint8).reshape((stop - start, *self._shape)).copy()

    def close(self) -> None:
        """Release the temp file's space (closing its only reference)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> ScratchFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
