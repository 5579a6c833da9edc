"""Progress on stderr: a rich bar on an interactive terminal, otherwise one plain line every few seconds."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("vidprep.cli")


class Progress:
    """Counts finished units/videos/clips/frames and shows rate and ETA; silent with --quiet."""

    def __init__(self, total_units: int, total_videos: int, *, quiet: bool = False, every_s: float = 10.0) -> None:
        self.total_units, self.total_videos = total_units, total_videos
        self.units = self.videos = self.clips = self.frames = self.failed = 0
        self.quiet, self.every_s = quiet, every_s
        self.started = self.last = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if not quiet and sys.stderr.isatty() and total_units:
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

        self._bar = Bar(
            TextColumn("[bold]videos"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("videos", total=self.total_videos, stats="")

    def update(self, result: Any) -> None:
        """Account for one finished unit (a worker.UnitResult)."""
        self.units += 1
        for video in result.videos:
            self.videos += 1
            self.failed += bool(video.error)
            self.clips += video.clips
            self.frames += video.frames
        if self._bar is not None:
            self._bar.update(self._task, completed=self.videos, stats=self._stats())
        elif not self.quiet and (time.monotonic() - self.last >= self.every_s or self.units == self.total_units):
            self.last = time.monotonic()
            done = f"{self.videos}/{self.total_videos}" if self.total_videos else str(self.videos)
            log.info("%s videos, %s", done, self._stats())

    def _stats(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return f"{self.clips} clips, {self.frames / elapsed:.1f} frames/s, {self.failed} failed"

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()
