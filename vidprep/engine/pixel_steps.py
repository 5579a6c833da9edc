"""Steps that make new pixels: enhancement (a frame step) and augmentation (a clip step).

Adapters only: the computation lives in :mod:`vidprep.stages.enhance` and :mod:`vidprep.stages.augment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vidprep.config import AugmentConfig, EnhanceConfig
from vidprep.engine.steps import Chunk, RowStep, Video
from vidprep.types import ClipRow

if TYPE_CHECKING:
    from vidprep.media.branches import Branch
    from vidprep.stages.augment import Augmenter
    from vidprep.stages.enhance import Enhancer


class EnhanceStep:
    """Color balance and contrast, streamed over each video's chunks (a fresh, unsmoothed enhancer per video)."""

    name = "enhance"
    stage = "decode"
    transforms = True
    stored: tuple[str, ...] = ()

    def __init__(self, cfg: EnhanceConfig) -> None:
        self.cfg = cfg
        self._enhancer: Enhancer | None = None

    def _new(self) -> Enhancer:
        from vidprep.stages.enhance import Enhancer

        return Enhancer(self.cfg)

    def start(self, video: Video) -> None:
        self._enhancer = self._new()

    def branches(self) -> Sequence[Branch]:
        return ()

    def push(self, chunk: Chunk) -> Chunk:
        assert self._enhancer is not None, "push before start"
        rgb, pts, idx = chunk
        return self._enhancer.apply(rgb), pts, idx

    def finish(self) -> dict[str, np.ndarray]:
        self._enhancer = None
        return {}

    def describe(self) -> dict[str, Any]:
        return {"enhance_parameters": self._new().describe()}


class AugmentStep(RowStep):
    """Each original clip (aug_index 0) becomes new frame runs: copy 0 (with --keep-original) and K random copies.

    All runs of an augmented video share the output size, so copy 0 is the original center-cropped to the crop
    size (what an evaluation transform does); the decoded frames themselves are not stored (``replaces_frames``).
    Copies share their clip's metrics and signature (they show the same content).
    """

    name = "augment"
    stage = "augment"
    rereads = True
    replaces_frames = True

    def __init__(self, cfg: AugmentConfig, seed: int) -> None:
        from vidprep.stages.augment import Augmenter

        self.cfg = cfg
        self.augmenter: Augmenter = Augmenter(cfg, seed)

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]:
        from vidprep.stages.augment import center_view

        out = []
        for row in (r for r in rows if r.aug_index == 0):
            frames = video.read(row.frame_start, row.frame_stop)
            if self.cfg.keep_original:
                out.append(video.new_run(row, center_view(frames, self.cfg.crop), 0, None))
            for copy in range(1, self.cfg.copies + 1):
                aug, params = self.augmenter.augment_clip(frames, video_id=video.video_id,
                                                          clip_index=row.clip_index, copy_index=copy)
                out.append(video.new_run(row, aug, copy, params))
        return out

    def describe(self) -> dict[str, Any]:
        return {"augment_pipeline": self.augmenter.describe()}
