"""Glue between the quality step and clip rows: per-clip metrics and hash signatures, and the --keep filter.

Videos: :func:`decode_metrics` gives a :class:`DecodeMetrics` whose decode branch feeds a
:class:`~vidprep.stages.quality.QualityMetrics` a small view (short side ``ANALYSIS_SHORT_SIDE``, scaled by ffmpeg)
of EVERY decoded frame, sampled away or not; per-frame values are indexed by decoded ordinal, and a clip is
aggregated over the decoded ordinals of its time span (:func:`ordinal_span`). Input shards have no decode: the
worker pushes their stored frames (`start_metrics` / ``push``) and a clip is aggregated by time ([start_s, end_s)).
`curate_rows` then attaches one value per metric and a pHash signature to each planned row and drops the rows the
--keep expression rejects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from vidprep.config import SplitConfig
from vidprep.types import ClipRow
from vidprep.media.branches import Branch, branch_filters, stored_size
from vidprep.stages.quality import ANALYSIS_SHORT_SIDE, QualityMetrics
from vidprep.types import VideoInfo

if TYPE_CHECKING:
    from vidprep.stages.scene_detect import SceneDetection

log = logging.getLogger("vidprep.engine.curation")


def start_metrics(split: SplitConfig, video_meta: dict | None = None) -> QualityMetrics | None:
    """A fresh metrics step for one video, or None with --no-metrics."""
    if not split.metrics:
        return None
    step = QualityMetrics()
    step.start(video_meta or {})
    return step


BRANCH_CHUNK = 32
"""Branch frames measured together (one vectorised QualityMetrics.push per chunk instead of per frame)."""


class DecodeMetrics:
    """QualityMetrics on every decoded frame, fed by its own decode branch (see the module docstring).

    The branch is ``rgb24`` (colourfulness needs colour) at :func:`analysis_size`, scaled by ffmpeg with
    ``flags=area`` before the sampling ``select``, HDR tone mapping and SAR correction, as the scene branches are.
    Its consumer runs on the branch's reader thread: it copies each frame and measures a chunk of
    :data:`BRANCH_CHUNK` at a time (pure computation, never waits). Per-frame "pts" are decoded ordinals 0, 1, ...
    """

    def __init__(self, info: VideoInfo) -> None:
        self.step = QualityMetrics()
        w, h = analysis_size(info)
        self.branch = Branch("quality", branch_filters(info, w, h, "rgb24", "area"), (h, w, 3), self._consume,
                             self._reset)
        self._reset()

    def _reset(self) -> None:
        """A new ffmpeg run (decode retried from the start): forget what an abandoned run gave."""
        self.step.start({})
        self._pending: list[np.ndarray] = []
        self._count = 0

    def _consume(self, frame: np.ndarray) -> None:
        self._pending.append(frame.copy())  # the branch reuses its array for the next frame
        if len(self._pending) >= BRANCH_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            n = len(self._pending)
            self.step.push(np.stack(self._pending), np.arange(self._count, self._count + n, dtype=np.float64))
            self._count += n
            self._pending = []

    def push(self, frames: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """The kept frames are not measured: every decoded frame already came through the branch."""
        return frames

    def finish(self) -> dict[str, np.ndarray]:
        """Per-decoded-frame arrays (after the decode ended and its branch reader was joined); ``pts_s`` = ordinal."""
        self._flush()
        return self.step.finish()


def analysis_size(info: VideoInfo) -> tuple[int, int]:
    """(width, height) of the branch view: the stored frame scaled so its short side is ANALYSIS_SHORT_SIDE (never
    up; each side at least 1)."""
    w, h = stored_size(info)
    scale = min(1.0, ANALYSIS_SHORT_SIDE / max(1, min(w, h)))
    return max(1, round(w * scale)), max(1, round(h * scale))


def decode_metrics(split: SplitConfig, info: VideoInfo) -> DecodeMetrics | None:
    """The metrics of one decoded video (pass ``.branch`` to the decode), or None with --no-metrics.

    Also None with ``--num-frames``: a few frames spread over a long video are decoded by seeking (3-12x faster,
    see media/seek.py), which a branch that must see every frame would rule out, so those clips are measured on
    their kept frames instead (as shard inputs are)."""
    return DecodeMetrics(info) if split.metrics and not split.num_frames else None


def ordinal_span(row: ClipRow, ordinals: np.ndarray, decoded: int) -> tuple[int, int]:
    """Decoded ordinals ``[lo, hi)`` of a clip's time span ``[start_s, end_s)``.

    ``lo`` is the ordinal of the clip's first kept frame; ``hi`` that of the kept frame after its last real frame
    (the frame whose pts is ``end_s``), or ``decoded`` (the video's decoded frame count) when the clip ends at the
    last kept frame. Without sampling that is exactly the clip's frames.
    """
    lo = int(ordinals[row.frame_start])
    hi = int(ordinals[row.frame_stop]) if row.frame_stop < len(ordinals) else decoded
    return lo, max(hi, lo + 1)


def scene_scores_of(scenes: SceneDetection | None) -> np.ndarray | None:
    """The adaptive detector's per-decoded-frame scores of a video's SceneDetection (None without them)."""
    scorer = None if scenes is None else scenes.scorer
    return None if scorer is None else np.asarray(scorer.scores, np.float32)


def curate_rows(step: QualityMetrics | DecodeMetrics | None, split: SplitConfig, rows: list[ClipRow],
                scene_scores: np.ndarray | None, video_id: str, ordinals: np.ndarray | None = None) -> list[ClipRow]:
    """Attach metrics + signatures to original rows (aug_index 0) and keep those that pass --keep.

    Returns the kept rows; the number dropped is logged. ``scene_scores`` (one per measured frame: per decoded
    frame for :class:`DecodeMetrics`) adds scene_*. ``ordinals`` are the kept frames' decoded ordinals, needed
    with :class:`DecodeMetrics` (clips are then aggregated over :func:`ordinal_span`).
    """
    if step is None:
        return rows
    from vidprep.stages.keep_expr import parse
    from vidprep.stages.phash import clip_signature
    from vidprep.stages.quality import METRICS, aggregate

    per_frame = step.finish()
    pts = per_frame["pts_s"]
    if scene_scores is not None and len(scene_scores) == len(pts):
        per_frame["scene_score"] = np.asarray(scene_scores, np.float32)
    expr = parse(split.keep, METRICS) if split.keep else None
    kept = []
    for row in rows:
        span = (row.start_s, row.end_s)
        if isinstance(step, DecodeMetrics):
            span = ordinal_span(row, np.asarray(ordinals), len(pts))
        row.quality = {k: float(v) for k, v in aggregate(per_frame, pts, *span).items()}
        row.phash = clip_signature(per_frame["phash"], pts, *span)
        if expr is None or expr.evaluate(row.quality):
            kept.append(row)
    dropped = len(rows) - len(kept)
    if dropped:
        log.info("%s: --keep dropped %d of %d clips", video_id, dropped, len(rows))
    return kept


def carry_to_copies(rows: list[ClipRow], originals: list[ClipRow]) -> None:
    """Augmented copies of a clip share its metrics and signature (they show the same content)."""
    by_clip = {r.clip_index: r for r in originals}
    for row in rows:
        source = by_clip.get(row.clip_index)
        if row.quality is None and source is not None:
            row.quality, row.phash = source.quality, source.phash
