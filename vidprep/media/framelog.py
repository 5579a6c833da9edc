"""Turn the ``showinfo`` lines on a decoding ffmpeg's stderr into ``(ordinal, pts_s)`` records, one per output frame.

The decoder's filter chain carries two named ``showinfo`` filters: ``PRE`` (before ``select``) sees every decoded
frame, ``POST`` only the kept ones. :class:`FrameLog` serves the sequential decode (ordinals counted from the
decoded frames), :class:`IndexedFrameLog` a seek run (ordinals looked up in the packet index, and the run checked
against it frame by frame). Records are handed to the pipe reader in output order; a problem becomes an error
record, raised as DecodeError before the frame it concerns reaches the caller.
"""

from __future__ import annotations

import queue
import re
from collections import deque
from fractions import Fraction

from vidprep.errors import DecodeError
from vidprep.media.seek import FrameIndex, SeekRun

PRE, POST = "vidprep_pre", "vidprep_post"
END = object()
"""End-of-stream marker, in the record queue and in the decoder's frame queue."""
_SHOWINFO = "[showinfo@vidprep_"
_FRAME_RE = re.compile(rf"^\[showinfo@({PRE}|{POST}) @ 0x[0-9a-f]+\] n:\s*(\d+) pts:\s*(\S+)")
_TIME_BASE_RE = re.compile(rf"^\[showinfo@(?:{PRE}|{POST}) @ 0x[0-9a-f]+\] config in time_base: (\d+)/(\d+)")


class StreamEnded(Exception):
    """The frame pipe ended early; the process's own exit status explains it better when it failed."""


class FrameLog:
    """Turns the showinfo lines on ffmpeg's stderr into ``(ordinal, pts_s)`` for each frame ffmpeg outputs.

    Fed line by line from the stderr thread. The first showinfo (``PRE``, before ``select``) sees every decoded
    frame, the second (``POST``) only the kept ones; a kept frame's ordinal is that of the decoded frame with the
    same pts (frames pass both filters in order). Without sampling only ``POST`` exists and its ``n`` is the ordinal.
    Memory: decoded-frame entries are dropped as soon as a later frame is kept.
    """

    def __init__(self, *, sampled: bool) -> None:
        self.sampled = sampled
        self._records: queue.Queue = queue.Queue()
        self._decoded: deque[tuple[int, int]] = deque()
        self._time_base: Fraction | None = None
        self._first_pts: int | None = None

    def feed(self, line: str | None) -> bool:
        """Consume one stderr line (None at end of stream); True if it was a showinfo line."""
        if line is None:
            self._records.put(END)
            return True
        if not line.startswith(_SHOWINFO):
            return False
        if match := _FRAME_RE.match(line):
            n, pts_text = int(match.group(2)), match.group(3)
            try:
                pts = int(pts_text)
            except ValueError:
                self._records.put(f"decoded frame {n} has no timestamp (pts {pts_text})")
                return True
            self._frame(match.group(1) == PRE, n, pts)
        elif match := _TIME_BASE_RE.match(line):
            self._time_base = Fraction(int(match.group(1)), int(match.group(2)))
        return True

    def next_record(self) -> tuple[int, float]:
        """Block until the next output frame's ``(ordinal, pts_s)`` is known."""
        record = self._records.get()
        if record is END:
            self._records.put(END)
            raise StreamEnded("ffmpeg wrote a frame that showinfo did not report")
        if isinstance(record, str):
            raise DecodeError(record)
        return record

    def _frame(self, is_pre: bool, n: int, pts: int) -> None:
        if self._first_pts is None:
            self._first_pts = pts
        if is_pre:
            self._decoded.append((n, pts))
            return
        ordinal = self._ordinal_of(pts) if self.sampled else n
        if ordinal is None or self._time_base is None:
            self._records.put(f"cannot match output frame {n} (pts {pts}) to a decoded frame")
            return
        self._records.put((ordinal, float((pts - self._first_pts) * self._time_base)))

    def _ordinal_of(self, pts: int) -> int | None:
        while self._decoded:
            n, decoded_pts = self._decoded.popleft()
            if decoded_pts == pts:
                return n
        return None


class IndexedFrameLog(FrameLog):
    """The :class:`FrameLog` of one seek run, checking the run against the :class:`FrameIndex` as it goes.

    Timestamps are kept with ``-copyts``, so a frame's ordinal and time come from the index by exact pts. Every
    decoded frame from the run's keyframe on must be the next indexed frame, and every output frame the next
    target; the first frame that is not becomes an error record, raised before that frame reaches the caller.
    """

    def __init__(self, index: FrameIndex, run: SeekRun) -> None:
        super().__init__(sampled=True)
        self.index, self.run = index, run
        self.next_decoded = run.first
        self.pending: deque[int] = deque(run.targets)

    def _frame(self, is_pre: bool, n: int, pts: int) -> None:
        pts_list = self.index.pts
        if is_pre:
            if pts < self.run.seek_pts:
                return  # leading pictures of an open GOP, before the keyframe in display order
            if self.next_decoded >= len(pts_list) or pts != pts_list[self.next_decoded]:
                self._records.put(f"decoded pts {pts} where the packet index has frame {self.next_decoded}")
            self.next_decoded += 1
            return
        if not self.pending or pts != pts_list[self.pending[0]] or self._time_base != self.index.time_base:
            self._records.put(f"output frame {n} (pts {pts}) is not the next sampled frame of the index")
            return
        self._records.put((self.pending.popleft(), self.index.seconds(pts)))
