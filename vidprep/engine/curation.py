"""Glue between the quality step and clip rows: per-clip metrics and hash signatures, and the --keep filter.

Videos: :func:`decode_metrics` gives a :class:`DecodeMetrics` whose decode branch feeds a
:class:`~vidprep.stages.quality.QualityMetrics` a small view (short side ``ANALYSIS_SHORT_SIDE``, scaled by ffmpeg)
of EVERY decoded frame, sampled away or not; per-frame values are indexed by decoded ordinal, and a clip is
aggregated over the decoded ordinals of its time span (:func:`ordinal_span`). Input shards have no decode: the
step measures their pushed frames and a clip is aggregated by time ([start_s, end_s)). Both shapes are one frame
step, :class:`QualityStep`; the clip step :class:`CurateRows` (:func:`curate_rows`) then attaches one value per
metric and a pHash signature to each planned row and drops the rows the --keep expression rejects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from vidprep.config import SplitConfig
from vidprep.engine.steps import Chunk, Observer, RowStep, Video
from vidprep.media.branches import Branch, branch_filters, stored_size
from vidprep.stages.quality import ANALYSIS_SHORT_SIDE, QualityMetrics
from vidprep.types import ClipRow, VideoInfo

log = logging.getLogger("vidprep.engine.curation")


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


def curate_rows(per_frame: dict[str, np.ndarray], by_ordinal: bool, split: SplitConfig, rows: list[ClipRow],
                scene_scores: np.ndarray | None, video_id: str, ordinals: np.ndarray | None = None) -> list[ClipRow]:
    """Attach metrics + signatures to the rows and keep those that pass --keep.

    ``per_frame`` are a metrics step's arrays (``pts_s``: per decoded frame ordinal when ``by_ordinal``, else the
    measured frames' times). Returns the kept rows; the number dropped is logged. ``scene_scores`` (one per
    measured frame) adds scene_*. ``ordinals`` are the kept frames' decoded ordinals, needed ``by_ordinal``
    (clips are then aggregated over :func:`ordinal_span`).
    """
    from vidprep.stages.keep_expr import parse
    from vidprep.stages.phash import clip_signature
    from vidprep.stages.quality import METRICS, aggregate

    per_frame = dict(per_frame)
    pts = per_frame["pts_s"]
    if scene_scores is not None and len(scene_scores) == len(pts):
        per_frame["scene_score"] = np.asarray(scene_scores, np.float32)
    expr = parse(split.keep, METRICS) if split.keep else None
    kept = []
    for row in rows:
        span: tuple[float, float] = (row.start_s, row.end_s)
        if by_ordinal:
            span = ordinal_span(row, np.asarray(ordinals), len(pts))
        row.quality = {k: float(v) for k, v in aggregate(per_frame, pts, *span).items()}
        row.phash = clip_signature(per_frame["phash"], pts, *span)
        if expr is None or expr.evaluate(row.quality):
            kept.append(row)
    dropped = len(rows) - len(kept)
    if dropped:
        log.info("%s: --keep dropped %d of %d clips", video_id, dropped, len(rows))
    return kept


class QualityStep(Observer):
    """Per-frame quality metrics and hashes of each video (``--metrics``, on by default).

    A decoded video is measured on its own decode branch (every decoded frame, :class:`DecodeMetrics`; per-frame
    "pts" are decoded ordinals, ``by_ordinal`` = 1 in the arrays); frames read from a shard, and ``--num-frames``
    decodes (seek plans rule a branch out), are measured as they are pushed (after enhancement, as stored).
    """

    name = "quality"
    stage = "split"

    def __init__(self, split: SplitConfig) -> None:
        self.split = split
        self._decode: DecodeMetrics | None = None
        self._pushed: QualityMetrics | None = None

    def start(self, video: Video) -> None:
        self._decode = decode_metrics(self.split, video.info) if video.info is not None else None
        self._pushed = None
        if self._decode is None:
            self._pushed = QualityMetrics()
            self._pushed.start({})

    def branches(self) -> Sequence[Branch]:
        return [self._decode.branch] if self._decode is not None else ()

    def push(self, chunk: Chunk) -> Chunk:
        if self._pushed is not None:
            self._pushed.push(chunk[0], chunk[1])
        return chunk

    def finish(self) -> dict[str, np.ndarray]:
        by_ordinal = self._decode is not None
        source = self._decode if self._decode is not None else self._pushed
        self._decode = self._pushed = None
        assert source is not None, "finish before start"
        return {**source.finish(), "by_ordinal": np.asarray(by_ordinal)}


class CurateRows(RowStep):
    """Per-clip metrics and pHash signature from the quality step's arrays, then the --keep filter."""

    name = "curate"
    stage = "split"

    def __init__(self, split: SplitConfig) -> None:
        self.split = split

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]:
        per_frame = dict(video.arrays["quality"])
        by_ordinal = bool(per_frame.pop("by_ordinal"))
        scene_scores = video.arrays.get("scenes", {}).get("scene_score")
        return curate_rows(per_frame, by_ordinal, self.split, rows, scene_scores, video.video_id, video.idx)
