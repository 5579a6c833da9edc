"""Scene detection for one decoded video: the detectors' decode branches, their per-frame arrays, and the cuts.

The worker builds one :class:`SceneDetection` per video when ``--scenes`` is on, passes :meth:`branches` to the
decode (so the detectors see every decoded frame, before sampling and enhancement) and, once the decode is done,
stores :meth:`arrays` next to the frames and plans clips on :meth:`row_cuts`.

Cuts are found on full-rate (every decoded frame) scores and expressed as decoded-frame ordinals; a scene then
starts at the first *kept* frame at or after its cut (:func:`vidprep.stages.scenes.cuts_to_rows`), so
``--scenes --fps 2`` gives the same scenes as ``--scenes`` up to that snapping.

Detectors (``--scene-detector``):

* ``adaptive`` (default): PySceneDetect's adaptive content detector (:mod:`vidprep.stages.scenes`), scores in
  ``/frames/<v>/scene_score``.
* ``transnetv2``: TransNetV2's per-frame transition probability (:mod:`vidprep.stages.transnet`, its
  single-frame head) on 48x27 frames, stored in ``/frames/<v>/scene_prob``; every run of frames above
  ``--scene-prob-threshold`` is one transition, and the scene boundary is the transition's middle
  (:func:`vidprep.stages.transnet.transitions_to_cuts`).
* ``hybrid``: adaptive hard cuts plus TransNetV2's transitions: a TransNetV2 transition (run of frames above the
  threshold) with an adaptive cut inside it, or within :data:`MERGE_FRAMES` frames of it, is that cut; the others
  add their middle as a boundary. All arrays are stored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from vidprep.media.branches import Branch, branch_filters, gather_rows, stored_size
from vidprep.types import VideoInfo

if TYPE_CHECKING:  # typing only: the config module is not imported at run time by this stage
    from vidprep.config import SplitConfig
    from vidprep.stages.scenes import SceneScorer
    from vidprep.stages.transnet import TransNetModel, TransNetRunner

log = logging.getLogger("vidprep.stages.scene_detect")

DETECTORS = ("adaptive", "transnetv2", "hybrid")
MERGE_FRAMES = 2
"""Hybrid: a TransNetV2 transition this close (decoded frames) to an adaptive cut is that cut."""


class SceneDetection:
    """The scene detectors of one video (see the module docstring)."""

    def __init__(self, split: SplitConfig, info: VideoInfo, transnet: TransNetModel | None = None) -> None:
        from vidprep.stages.scenes import SceneScorer

        self.split, self.info = split, info
        detector = split.scene_detector
        self.scorer = SceneScorer() if detector in ("adaptive", "hybrid") else None
        self.transnet = transnet if detector in ("transnetv2", "hybrid") else None
        self.runner: TransNetRunner | None = None
        """TransNetV2's runner once :meth:`branches` set it up (both heads: ``runner.finish()``, (N, 2))."""

    def branches(self) -> list[Branch]:
        """The decode branches the detectors read: full-size BGR for the scorer, 48x27 RGB for TransNetV2."""
        out: list[Branch] = []
        if self.scorer is not None:
            out.append(self._score_branch(self.scorer))
        if self.transnet is not None:
            from vidprep.stages.transnet import INPUT_HEIGHT, INPUT_WIDTH, TransNetRunner

            runner = self.runner = TransNetRunner(self.transnet)
            out.append(Branch("scene_prob", branch_filters(self.info, INPUT_WIDTH, INPUT_HEIGHT, "rgb24"),
                              (INPUT_HEIGHT, INPUT_WIDTH, 3), runner.push, runner.reset))
        return out

    def _score_branch(self, scorer: SceneScorer) -> Branch:
        """Full-size BGR (ffmpeg's conversion, as PySceneDetect's OpenCV capture), of which only the rows the
        scorer's resize reads cross the pipe: at 720p one row in five. Moving whole frames through the pipe was
        the larger part of the branch's cost; the rest is the full-frame BGR conversion itself, which exact
        parity needs (converting gathered yuv420p row pairs instead is exact too but measured no cheaper)."""
        from vidprep.stages.scenes import RowScatter, scorer_rows

        w, h = stored_size(self.info)
        filters = branch_filters(self.info, w, h, "bgr24")
        rows = scorer_rows(w, h)
        if len(rows) == h:
            return Branch("scene_score", filters, (h, w, 3), scorer.push_bgr, scorer.reset)
        scatter = RowScatter(scorer, rows, w, h)
        return Branch("scene_score", [*filters, *gather_rows(rows, w, "vpsr")], (len(rows), w, 3),
                      scatter.push_rows, scorer.reset)

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-decoded-frame arrays to store: ``scene_score`` and/or ``scene_prob`` (float32)."""
        out: dict[str, np.ndarray] = {}
        if self.scorer is not None:
            out["scene_score"] = self.scorer.scores.astype(np.float32)
            out["scene_flash"] = self.scorer.flash_mask().astype(np.uint8)
        if self.transnet is not None:
            out["scene_prob"] = self._probabilities().astype(np.float32)
        return out

    def _probabilities(self) -> np.ndarray:
        """The single-frame head's probabilities (the only head boundaries use: :mod:`vidprep.stages.transnet`)."""
        if self.runner is None:
            raise RuntimeError("TransNetV2 probabilities asked before branches() set its runner up")
        return self.runner.finish()[:, 0]

    def frame_cuts(self) -> list[int]:
        """Decoded-frame ordinals where a new scene starts, by the configured detector."""
        from vidprep.stages.scenes import find_cuts, min_scene_frames

        split = self.split
        hard: list[int] = []
        if self.scorer is not None:
            hard = find_cuts(self.scorer.scores, threshold=split.scene_threshold, window=split.scene_window,
                             min_content=split.scene_min_content,
                             min_frames=min_scene_frames(split.min_scene_seconds, self.info.avg_fps),
                             flashes=self.scorer.flash_mask())
        if self.transnet is None:
            return hard
        from vidprep.stages.transnet import transitions, transitions_to_cuts

        threshold = split.scene_prob_threshold
        if self.scorer is None:
            return transitions_to_cuts(self._probabilities(), threshold)
        return merge_cuts(hard, transitions(self._probabilities(), threshold), len(self.scorer))

    def row_cuts(self, ordinals: np.ndarray) -> list[int]:
        """Rows of the kept frames (decoded ordinals ``ordinals``) where a new scene starts."""
        from vidprep.stages.scenes import cuts_to_rows

        return cuts_to_rows(self.frame_cuts(), ordinals)


def merge_cuts(hard: list[int], runs: list[tuple[int, int]], frames: int) -> list[int]:
    """Hybrid: the adaptive cuts plus the middles of the TransNetV2 transitions that hold no adaptive cut."""
    from vidprep.stages.transnet import run_boundary

    extra = [run_boundary(r) for r in runs
             if r[0] > 0 and not any(r[0] - MERGE_FRAMES <= h <= r[1] + 1 + MERGE_FRAMES for h in hard)]
    return sorted(set(hard) | {c for c in extra if c < frames})


def check_scene_options(split: SplitConfig) -> None:
    """Usage errors (exit 2, before decoding) for scene options that cannot take effect, and a missing extra."""
    from vidprep.errors import UsageError

    given: set[str] = set(split.model_fields_set)
    detector = split.scene_detector
    if not split.scenes:
        for key in ("scene_detector", "scene_prob_threshold"):
            if key in given:
                raise UsageError(f"--{key.replace('_', '-')} needs --scenes")
        return
    if "scene_prob_threshold" in given and detector == "adaptive":
        raise UsageError("--scene-prob-threshold applies to --scene-detector transnetv2 or hybrid")
    if detector in ("transnetv2", "hybrid"):
        from vidprep.stages.transnet import require_weights

        require_weights()


def scene_detection(split: SplitConfig, info: VideoInfo) -> SceneDetection | None:
    """The video's SceneDetection when ``--scenes`` is on, else None."""
    if not split.scenes:
        return None
    transnet = None
    if split.scene_detector in ("transnetv2", "hybrid"):
        from vidprep.stages.transnet import shared_model

        transnet = shared_model()
    return SceneDetection(split, info, transnet)
