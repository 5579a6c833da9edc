"""Glue between the quality step and clip rows: per-clip metrics and hash signatures, and the --keep filter.

The worker feeds a :class:`~vidprep.stages.quality.QualityMetrics` every chunk it sees (`start_metrics` /
``push``), then `curate_rows` attaches one value per metric and a pHash signature to each planned row and drops
the rows the --keep expression rejects. Metrics are aggregated by time ([start_s, end_s) of the clip) from
whatever frames were pushed, so moving the step onto a branch that sees every decoded frame changes no code here.
"""

from __future__ import annotations

import logging

import numpy as np

from vidprep.config import SplitConfig
from vidprep.featurize import ClipRow
from vidprep.stages.quality import QualityMetrics

log = logging.getLogger("vidprep.curation")


def start_metrics(split: SplitConfig, video_meta: dict | None = None) -> QualityMetrics | None:
    """A fresh metrics step for one video, or None with --no-metrics."""
    if not split.metrics:
        return None
    step = QualityMetrics()
    step.start(video_meta or {})
    return step


def curate_rows(step: QualityMetrics | None, split: SplitConfig, rows: list[ClipRow],
                scene_scores: np.ndarray | None, video_id: str) -> list[ClipRow]:
    """Attach metrics + signatures to original rows (aug_index 0) and keep those that pass --keep.

    Returns the kept rows; the number dropped is logged. ``scene_scores`` (one per pushed frame) adds scene_*.
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
        row.quality = {k: float(v) for k, v in aggregate(per_frame, pts, row.start_s, row.end_s).items()}
        row.phash = clip_signature(per_frame["phash"], pts, row.start_s, row.end_s)
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
