"""3D-model features of fixed-length clips computed while the video is still decoding.

A clip model (3D convnet, VideoMAE) would otherwise wait for the whole decode before its first forward pass, and
decoding then adds to the model's time instead of overlapping it. With a frame-count clip plan (``--clip-frames T
--stride S``, no scene cuts) the clips are known in advance: frames ``[kS, kS + T)``. This frame step cuts those
clips from the frames as they pass (the frames as stored: it runs after any pixel-changing step) and starts the
model on them (on the extractor's streams) in batches of the extractor's batch size, in plan order, i.e. in the
same groups :func:`vidprep.engine.featurize.clip_features_3d` would form, so the features are the same. The clip step
:class:`vidprep.engine.featurize.ClipFeatures` takes them for rows with exactly such a span (unpadded) and computes
any other row (a padded or shorter tail clip) itself.

Not used (the rows would not be these spans, or their frames not these pixels) with scene cuts, time-based clips,
augmentation, or frames read from an input shard.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from vidprep.config import RunConfig
from vidprep.engine.steps import Chunk, Observer, Video

if TYPE_CHECKING:
    from vidprep.stages.features import FeatureExtractor

#: Name of the per-video arrays this step leaves in ``video.arrays``: ``spans`` (K,2) int64 frame ranges and
#: ``features`` (K,D) float32.
STREAMED = "clip_stream"


def streams_clips(config: RunConfig) -> bool:
    """Whether the clip plan is known before the decode ends (frame-count clips, no cuts, no augmentation)."""
    split = config.split
    return (config.augment is None and not split.scenes and split.clip_frames is not None
            and split.clip_seconds is None)


class StreamedClipFeatures(Observer):
    """Frame step: features of the clips ``[kS, kS + T)`` as soon as their frames have been decoded."""

    name = STREAMED
    stage = "features"

    def __init__(self, extractor: FeatureExtractor, length: int, stride: int, clip_len: int) -> None:
        self.extractor, self.length, self.stride, self.clip_len = extractor, length, stride, clip_len
        self.start(None)

    def start(self, video: Video | None) -> None:
        self.active = video is not None and video.info is not None and not video.rows_given
        self._frames: list[np.ndarray] = []  # frames from ordinal self._base on
        self._base = 0
        self._next = 0  # first frame of the next clip
        self._pending: list[tuple[int, np.ndarray]] = []
        self._spans: list[tuple[int, int]] = []
        self._started: list[Future[np.ndarray]] = []  # one per batch, in plan order

    def push(self, chunk: Chunk) -> Chunk:
        if not self.active:
            return chunk
        self._frames.extend(chunk[0])
        while self._next + self.length <= self._base + len(self._frames):
            at = self._next - self._base
            self._pending.append((self._next, np.stack(self._frames[at:at + self.length])))
            self._next += self.stride
            drop = min(self._next - self._base, len(self._frames))
            del self._frames[:drop]
            self._base += drop
            if len(self._pending) == self.extractor.batch_size:
                self._run()
        return chunk

    def finish(self) -> dict[str, np.ndarray]:
        if self._pending:
            self._run()
        features = [feat.astype(np.float32) for batch in self._started for feat in batch.result()]
        spans = np.array(self._spans, np.int64).reshape(-1, 2)
        stacked = np.stack(features) if features else np.zeros((0, self.extractor.dim), np.float32)
        self.start(None)
        return {"spans": spans, "features": stacked}

    def _run(self) -> None:
        """Start the pending clips as one batch on a stream (waits while every stream is busy)."""
        from vidprep.engine.featurize import fit_length

        clips = np.stack([fit_length(frames, self.clip_len) for _, frames in self._pending])
        self._started.append(self.extractor.submit_clips(clips))
        self._spans.extend((first, first + self.length) for first, _ in self._pending)
        self._pending = []
