"""The split stage's own steps: scene scoring (a frame step fed by decode branches) and clip planning (a clip step).

Scene scoring does not read the pushed chunks: the detectors must see every decoded frame, before sampling and
enhancement, so after ``start`` the step declares their decode branches (:meth:`SceneStep.branches`) and reads
its results in ``finish``. Its per-decoded-frame arrays (``scene_score``, ``scene_flash``, ``scene_prob``) are
stored with the video; the cuts (decoded ordinals) stay in ``video.arrays["scenes"]["cuts"]`` for planning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vidprep.config import SplitConfig
from vidprep.engine.steps import Observer, RowStep, Video
from vidprep.types import ClipRow

if TYPE_CHECKING:
    from vidprep.media.branches import Branch
    from vidprep.stages.scene_detect import SceneDetection


class SceneStep(Observer):
    """Shot detection of one decoded video (``--scenes``); inactive for shard inputs (no decode)."""

    name = "scenes"
    stage = "split"
    stored: tuple[str, ...] = ("scene_score", "scene_flash", "scene_prob")

    def __init__(self, split: SplitConfig) -> None:
        self.split = split
        self._detection: SceneDetection | None = None

    def start(self, video: Video) -> None:
        from vidprep.stages.scene_detect import scene_detection

        self._detection = scene_detection(self.split, video.info) if video.info is not None else None

    def branches(self) -> Sequence[Branch]:
        return self._detection.branches() if self._detection is not None else ()

    def finish(self) -> dict[str, np.ndarray]:
        detection, self._detection = self._detection, None
        if detection is None:
            return {}
        arrays = detection.arrays()
        return {**arrays, "cuts": np.asarray(detection.frame_cuts(), np.int64)}


class PlanClips(RowStep):
    """Clip rows over the kept frames, never across a scene cut; rows that came with a shard input are kept."""

    name = "plan"
    stage = "split"

    def __init__(self, split: SplitConfig) -> None:
        self.split = split

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]:
        from vidprep.stages.scenes import cuts_to_rows
        from vidprep.stages.split import plan_clips

        if video.rows_given:
            return rows
        split = self.split
        scenes = video.arrays.get("scenes", {})
        cuts = cuts_to_rows([int(c) for c in scenes["cuts"]], video.idx) if "cuts" in scenes else []
        specs = plan_clips(video.pts, split, cuts, frame_duration_s=1.0 / split.fps if split.fps else None)
        return [ClipRow(c.frame_start, c.frame_stop, c.padded, c.start_s, c.end_s, c.clip_index, label=video.label)
                for c in specs]
