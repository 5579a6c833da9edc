"""The features stage's steps: a feature model over frames or clips, pooling per-frame features into clips.

2D models see every stored frame once, as a frame step (:class:`FrameFeatureStep`; overlapping clips reuse the
per-frame features, pooled by the clip step :class:`ClipFeatures`); 3D models see each clip (:class:`ClipFeatures`
re-reads its frames). Augmented copies exist only while they are made, so their features are computed then
(``ClipFeatures.on_run``). Zero-shot scores (:class:`ZeroShotStep`) follow the features as stored.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vidprep.config import RunConfig
from vidprep.engine.steps import Chunk, Observer, RowStep, Video
from vidprep.stages.features import pool_frames
from vidprep.types import ClipRow
from vidprep.types import pad_tail as pad_rows

#: Frames (bytes) a 2D feature step keeps while its model is still being built, before the decode waits for it:
#: about 4 s of 480p decoding at the model's input size, a few hundred MB at most.
HOLD_BYTES = 256 * 2**20

if TYPE_CHECKING:
    from vidprep.engine.sinks import Sink
    from vidprep.stages.features import FeatureExtractor
    from vidprep.stages.zero_shot import ZeroShot


@dataclass
class FrameFeatures:
    """Per-frame features of a 2D model, computed in batches while frames stream in: each full batch is started on
    one of the extractor's streams (``submit`` waits while they are all busy) and collected, in order, at the end.

    While ``holding()`` is true (the model is still being built in the background) frames are only kept, up to
    `HOLD_BYTES`, so the decode runs on instead of waiting for the model; ``batch_size`` is asked for only when
    the first batch starts (it needs the built model)."""

    submit: Callable[[np.ndarray], Future[np.ndarray]]
    batch_size: Callable[[], int]
    holding: Callable[[], bool] = lambda: False
    _pending: list[np.ndarray] = field(default_factory=list)
    _held_bytes: int = 0
    _started: list[Future[np.ndarray]] = field(default_factory=list)

    def add(self, rgb: np.ndarray) -> None:
        """Queue (n,H,W,3) frames; start the model whenever a full batch is ready (and the model is)."""
        self._pending.extend(rgb)
        self._held_bytes += rgb.nbytes
        if self._held_bytes < HOLD_BYTES and self.holding():
            return
        self._held_bytes = 0
        size = self.batch_size()
        while len(self._pending) >= size:
            batch, self._pending = self._pending[:size], self._pending[size:]
            self._started.append(self.submit(np.stack(batch)))

    def result(self) -> np.ndarray:
        """(F,D) features of every frame added so far (flushes the last partial batch, waits for every batch)."""
        size = self.batch_size() if self._pending else 0
        for a in range(0, len(self._pending), size or 1):
            self._started.append(self.submit(np.stack(self._pending[a:a + size])))
        self._pending, self._held_bytes = [], 0
        done = [f.result() for f in self._started]
        return np.concatenate(done, axis=0) if done else np.zeros((0, 0), np.float32)


def clip_features_2d(per_frame: np.ndarray, rows: list[ClipRow], run_offset: int, how: str) -> None:
    """Attach pooled 2D features to clip rows whose frames are rows of ``per_frame`` (offset by the run start)."""
    for row in rows:
        feats = per_frame[row.frame_start - run_offset : row.frame_stop - run_offset]
        row.features = pool_frames(pad_rows(feats, row.padded), how).astype(np.float32)


def clip_features_3d(
    submit: Callable[[np.ndarray], Future[np.ndarray]],
    rows: list[ClipRow],
    read: Callable[[int, int], np.ndarray],
    batch_size: int,
    clip_len: int,
) -> None:
    """Attach 3D-model features to clip rows, reading each clip's frames and batching clips of equal shape; a
    batch is read while the ones before it run (``submit`` waits while every stream is busy)."""
    started = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        clips = [fit_length(pad_rows(read(r.frame_start, r.frame_stop), r.padded), clip_len) for r in chunk]
        started.append((chunk, submit(np.stack(clips))))
    for chunk, future in started:
        for row, feat in zip(chunk, future.result()):
            row.features = feat.astype(np.float32)


def fit_length(frames: np.ndarray, length: int) -> np.ndarray:
    """Resample a clip to exactly ``length`` frames by nearest index (3D models need a fixed T)."""
    if len(frames) == length:
        return frames
    idx = np.minimum((np.arange(length) * len(frames)) // length, len(frames) - 1)
    return frames[idx]


def row_kwargs(row: ClipRow) -> dict[str, Any]:
    """Keyword arguments of ShardWriter.add_clip for a row (``extra`` only when a step added per-clip arrays)."""
    extra = {"extra": row.extra} if row.extra is not None else {}
    return {**extra,
        "frame_start": row.frame_start,
        "frame_stop": row.frame_stop,
        "start_s": row.start_s,
        "end_s": row.end_s,
        "clip_index": row.clip_index,
        "aug_index": row.aug_index,
        "label": row.label,
        "padded": row.padded,
        "aug_params": row.aug_params,
        "features": row.features,
        "quality": row.quality,
        "phash": row.phash,
    }


def stored_feature_dtype(cfg: RunConfig) -> np.dtype:
    """Features are kept float32 until a normalization pass rewrites them; otherwise stored as --dtype."""
    feats = cfg.features
    if feats is None or feats.normalize != "none" or feats.stats_from:
        return np.dtype(np.float32)
    return np.dtype(feats.dtype)


class FrameFeatureStep(Observer):
    """Per-frame features of a 2D model, batched while the frames stream in (``video.arrays["features"]``)."""

    name = "features"
    stage = "features"

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor = extractor
        self._acc: FrameFeatures | None = None

    def start(self, video: Video) -> None:
        ex = self.extractor
        self._acc = FrameFeatures(ex.submit_frames, lambda: ex.batch_size, holding=lambda: not ex.ready())

    def push(self, chunk: Chunk) -> Chunk:
        assert self._acc is not None, "push before start"
        self._acc.add(chunk[0])
        return chunk

    def finish(self) -> dict[str, np.ndarray]:
        acc, self._acc = self._acc, None
        assert acc is not None, "finish before start"
        return {"per_frame": acc.result()}


class ClipFeatures(RowStep):
    """Features of every row that has none yet (2D: pooled per-frame features; 3D: the clip through the model),
    then every row's features in their stored dtype."""

    name = "clip_features"
    stage = "features"

    def __init__(self, extractor: FeatureExtractor, config: RunConfig) -> None:
        assert config.features is not None, "a features step needs a features config"
        self.extractor = extractor
        self.pool = config.features.pool
        self.dtype = stored_feature_dtype(config)
        self.rereads = extractor.spec.kind != "2d"
        self.clip_len = extractor.spec.clip_len or 0  # set for every clip model (3D); unused for 2D ones

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]:
        ex = self.extractor
        todo = [r for r in rows if r.features is None]
        if ex.spec.kind == "2d":
            if todo:
                clip_features_2d(video.arrays["features"]["per_frame"], todo, 0, self.pool)
        else:
            todo = _take_streamed(video, todo)
            clip_features_3d(ex.submit_clips, todo, video.read, ex.batch_size, self.clip_len)
        for row in rows:
            if row.features is not None:
                row.features = row.features.astype(self.dtype)
        return rows

    def on_run(self, row: ClipRow, frames: np.ndarray) -> None:
        """Features of a new frame run (an augmented copy) while its frames are in memory."""
        ex = self.extractor
        if ex.spec.kind == "2d":
            row.features = pool_frames(ex.extract_frames(pad_rows(frames, row.padded)), self.pool)
        else:
            row.features = ex.extract_clips(fit_length(pad_rows(frames, row.padded), self.clip_len)[None])[0]

    def describe(self) -> dict[str, Any]:
        return {"features_model": self.extractor.describe()}


def _take_streamed(video: Video, rows: list[ClipRow]) -> list[ClipRow]:
    """Give rows the features :mod:`vidprep.engine.clip_stream` computed during the decode for exactly their
    (unpadded) span; return the rows still without features."""
    from vidprep.engine.clip_stream import STREAMED

    streamed = video.arrays.get(STREAMED)
    if not streamed or not len(streamed["spans"]):
        return rows
    by_span = {(int(a), int(b)): f for (a, b), f in zip(streamed["spans"], streamed["features"])}
    for row in rows:
        if row.padded == 0:
            row.features = by_span.get((row.frame_start, row.frame_stop))
    return [r for r in rows if r.features is None]


class ZeroShotStep(RowStep):
    """Per-clip similarity to each ``--text-labels`` prompt (``/clips/text_scores``); prompts stored per unit."""

    name = "zero_shot"
    stage = "features"

    def __init__(self, zero_shot: ZeroShot) -> None:
        self.zero_shot = zero_shot

    def begin_unit(self, sink: Sink) -> None:
        writer = sink.writer  # type: ignore[attr-defined]  # zero-shot runs are feature runs: the h5 sink
        for name, value in self.zero_shot.meta().items():
            (writer.set_meta if isinstance(value, str) else writer.set_meta_array)(name, value)

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]:
        from vidprep.stages.zero_shot import CLIP_SCORES

        for row in rows:
            assert row.features is not None, "zero-shot scores need the clip's features"
            row.extra = {**(row.extra or {}), CLIP_SCORES: self.zero_shot.scores(row.features)}
        return rows
