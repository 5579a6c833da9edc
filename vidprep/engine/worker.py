"""Turn one work unit into one shard: the picklable unit of work every executor runs.

Per video, data flows one way: decode (or read an input shard) -> enhance -> store frames (+ scene scores) ->
plan clips -> augment copies -> features -> clip rows in the sink. A video that fails is dropped from the shard and
reported; the other videos of the unit still land.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vidprep.config import RunConfig
from vidprep.executors import threads
from vidprep.errors import VidprepError, printable_path
from vidprep.engine.featurize import (
    ClipRow, FrameFeatures, clip_features_2d, clip_features_3d, pad_rows, row_kwargs, stored_feature_dtype,
)
from vidprep.engine.framestream import CHUNK, chunked, video_meta
from vidprep.engine.framestore import ScratchFrames
from vidprep.inputs import InputItem, WorkUnit
from vidprep.engine.labels import Labels
from vidprep.stages.models import WeightsProof
from vidprep.types import VideoResult

if TYPE_CHECKING:
    from vidprep.engine.sinks import Sink
    from vidprep.shards.manifest import ShardSummary
    from vidprep.shards.source import ShardVideo
    from vidprep.stages.enhance import Enhancer
    from vidprep.stages.features import FeatureExtractor

log = logging.getLogger("vidprep.engine.worker")



@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the unit: the run config, the output dir and the labels."""

    config: RunConfig
    out_dir: str
    labels: Labels = Labels()
    config_record: dict = field(default_factory=dict)
    weights_proof: WeightsProof | None = None

    @property
    def kind(self) -> Literal["frames", "features"]:
        """'features' when the run ends with a feature stage, else 'frames'."""
        return "features" if self.config.features is not None else "frames"


@dataclass
class UnitResult:
    """What a worker sends back for one unit: the shard summary (None when skipped) and per-video results."""

    index: int
    shard: ShardSummary | dict | None
    videos: list[VideoResult]
    seconds: float = 0.0


class Context:
    """Per-process heavy objects (feature model, augmenter), built once and reused for every unit."""

    def __init__(self, job: Job) -> None:
        cfg = job.config
        self.extractor = None
        self.augmenter = None
        if cfg.features is not None:
            from vidprep.stages.features import FeatureExtractor

            share = threads.current()
            self.extractor = FeatureExtractor(cfg.features, seed=cfg.seed, threads=share.threads(),
                                              before_batch=share.apply, proof=job.weights_proof)
        from vidprep.stages.zero_shot import zero_shot_for

        self.zero_shot = zero_shot_for(self.extractor, cfg.features)
        if cfg.augment is not None:
            from vidprep.stages.augment import Augmenter

            self.augmenter = Augmenter(cfg.augment, cfg.seed)

    def describe(self, job: Job) -> dict:
        """What the stages actually use (model, weights id and hash, preprocessing, enhancement parameters)."""
        out: dict = {}
        if self.extractor is not None:
            out["features_model"] = self.extractor.describe()
        if self.augmenter is not None:
            out["augment_pipeline"] = self.augmenter.describe()
        enhancer = self.enhancer(job)
        if enhancer is not None:
            out["enhance_parameters"] = enhancer.describe()
        return out

    def enhancer(self, job: Job) -> Enhancer | None:
        """A fresh streaming enhancer for one video, or None."""
        if job.config.enhance is None:
            return None
        from vidprep.stages.enhance import Enhancer

        return Enhancer(job.config.enhance)


_CONTEXTS: dict[str | None, Context] = {}


def context_for(job: Job) -> Context:
    """The cached Context of this process for this job's config."""
    from vidprep.shards.manifest import config_fingerprint

    key = config_fingerprint(job.config.model_dump(mode="json"))
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = Context(job)
    return _CONTEXTS[key]


def process_unit(unit: WorkUnit, job: Job, shard_path: str) -> UnitResult:
    """Process every video of ``unit`` into the shard at ``shard_path`` (written atomically)."""
    from vidprep.engine.sinks import SinkSpec, kind_for, output_format

    started = time.monotonic()
    ctx = context_for(job)
    results: list[VideoResult] = []
    spec = SinkSpec(job.config, job.config_record, job.out_dir, job.kind)
    sink = kind_for(output_format(job.config)).open(spec, Path(shard_path), _class_names(unit, job), ctx.describe(job))
    with threads.current().unit(), sink:
        if ctx.zero_shot is not None:
            ctx.zero_shot.attach(sink)
        for item in unit.items:
            if isinstance(item, str):
                results.extend(_run_input_shard(job, ctx, sink, item))
            else:
                results.append(VideoProcessor(job, ctx, sink).run(item))
        sink.record_errors([r for r in results if r.error])
        summary = sink.commit()
    return UnitResult(unit.index, summary, results, time.monotonic() - started)


def _class_names(unit: WorkUnit, job: Job) -> list[str]:
    """The run's class names, or those of the input shard when labels come from an earlier step."""
    if job.labels.class_names or not unit.items or not isinstance(unit.items[0], str):
        return list(job.labels.class_names)
    from vidprep.shards.source import class_names

    return class_names(unit.items[0])


def _run_input_shard(job: Job, ctx: Context, sink: Sink, path: str) -> list[VideoResult]:
    """Every video of an input shard; a shard that cannot be read is one error record naming it (exit 3)."""
    from vidprep.shards.source import iter_videos

    results: list[VideoResult] = []
    try:
        for video in iter_videos(path):
            results.append(VideoProcessor(job, ctx, sink).run_shard_video(video))
    except Exception as err:  # noqa: BLE001 - any failure of one input is that input's error record
        message = " ".join(str(err).split())
        if not isinstance(err, VidprepError) or getattr(err, "path", None) is None:  # the record names the shard
            message = f"{printable_path(path)}: {message}"
        log.error("%s", message)
        results.append(VideoResult(None, path, error=message, error_type=getattr(err, "kind", type(err).__name__),
                                   stage="read"))
    return results


class VideoProcessor:
    """Runs the stages for one video into an open sink."""

    def __init__(self, job: Job, ctx: Context, sink: Sink) -> None:
        self.job, self.ctx, self.sink = job, ctx, sink
        self.cfg: RunConfig = job.config
        self.v: int | None = None
        self.stage = "probe"
        self.scratch: ScratchFrames | None = None
        self.pts = np.zeros(0, np.float64)
        self.idx = np.zeros(0, np.int64)
        self.scenes = None
        self.metrics = None

    def run(self, item: InputItem) -> VideoResult:
        """Process one source video; errors become a VideoResult with the message, never an exception."""
        from vidprep.engine.curation import decode_metrics
        from vidprep.media.decode import decode
        from vidprep.media.probe import probe
        from vidprep.stages.scene_detect import scene_detection

        def body() -> tuple[int, int]:
            self.stage = "probe"
            info = probe(item.path, timeout_s=min(60.0, self.cfg.timeout_s))
            self.v = self.sink.add_video(item.video_id, printable_path(item.path), video_meta(info))
            self.stage = "decode"
            split = self.cfg.split
            self.scenes = scene_detection(split, info)  # reads every decoded frame on its own decode branches
            self.metrics = decode_metrics(split, info)  # so do the quality metrics (one small rgb24 branch)
            branches = [*(self.scenes.branches() if self.scenes else ()),
                        *([self.metrics.branch] if self.metrics else ())]
            frames = decode(info, split.sampling(), split.size_spec(), timeout_s=self.cfg.timeout_s,
                            max_pixels=self.cfg.max_pixels, deinterlace=split.deinterlace, branches=branches)
            return self._stages(item.video_id, chunked(frames, CHUNK), None, self.job.labels.of(item.video_id))

        return self._guard(VideoResult(item.video_id, item.path), body)

    def run_shard_video(self, video: ShardVideo) -> VideoResult:
        """Process one video of an input frame shard: its stored frames and its clip rows carry over."""

        from vidprep.engine.shard_labels import relabel_rows

        def body() -> tuple[int, int]:
            self.stage = "read"
            self.v = self.sink.add_video(video.video_id, video.source, video.meta)
            rows = relabel_rows(video.rows, video.video_id, video.class_names, self.job.labels)
            return self._stages(video.video_id, video.chunks(), rows, -1)

        return self._guard(VideoResult(video.video_id, video.path), body)

    def _guard(self, result: VideoResult, body: Callable[[], tuple[int, int]]) -> VideoResult:
        """Run ``body``; a failure drops the video from the sink and is reported in the result."""
        self.stage = "probe"
        try:
            result.frames, result.clips = body()
        except VidprepError as err:
            self._fail(result, err)
        except Exception as err:  # noqa: BLE001 - whatever one input makes fail (h5py, numpy, a stage) is its record
            self._fail(result, err, prefix=f"{printable_path(result.path)}: ")
        finally:
            if self.scratch is not None:
                self.scratch.close()
        return result

    def _stages(self, video_id: str, chunks: Iterable, rows: list[ClipRow] | None, label: int) -> tuple[int, int]:
        """Enhance/store/score frames, plan (or take) clip rows, augment, attach features, add rows to the sink."""
        from vidprep.engine.curation import carry_to_copies, curate_rows, scene_scores_of, start_metrics

        self.metrics = self.metrics or start_metrics(self.cfg.split)  # input shards: measure the stored frames
        self.pts, self.idx, scores, per_frame = self.ingest(chunks)
        self.stage = "split"
        if rows is None:
            rows = self.plan(self.pts, scores, label)
        rows = curate_rows(self.metrics, self.cfg.split, rows, scene_scores_of(self.scenes), video_id, self.idx)
        self.stage = "features" if self.ctx.extractor is not None else "augment"
        originals, rows = rows, self.finish_rows(video_id, rows, per_frame)
        carry_to_copies(rows, originals)
        dtype = stored_feature_dtype(self.cfg)
        for row in rows:
            if row.features is not None:
                row.features = row.features.astype(dtype)
            self.sink.add_clip(self.v, **row_kwargs(row))
        return len(self.pts), len(rows)

    def _fail(self, result: VideoResult, err: Exception, prefix: str = "") -> None:
        if self.v is not None:
            self.sink.drop_video(self.v)
        result.error = prefix + " ".join(str(err).split())
        result.error_type = getattr(err, "kind", type(err).__name__)
        result.stage = self.stage
        log.error("%s", result.error)

    def ingest(self, chunks: Iterable) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Stream frame chunks through enhancement into storage, scene scoring and 2D features."""
        enhancer = self.ctx.enhancer(self.job)
        feats = self._frame_features()
        self.scratch = ScratchFrames(self.job.out_dir) if self._needs_scratch() else None
        pts_all, idx_all = [], []
        for rgb, pts, idx in chunks:
            if enhancer is not None:
                rgb = enhancer.apply(rgb)
            if self.metrics is not None:
                self.metrics.push(rgb, pts)
            if self.ctx.augmenter is None:
                self.sink.append_frames(self.v, rgb, pts, idx)
            if self.scratch is not None:
                self.scratch.append(rgb)
            if feats is not None:
                feats.add(rgb)
            pts_all.append(pts)
            idx_all.append(idx)
        if not pts_all:
            raise VidprepError("no frames decoded")
        scores = None  # scene scores come from the decode's branches (self.scenes), not from these frames
        per_frame = feats.result() if feats is not None else None
        return np.concatenate(pts_all), np.concatenate(idx_all), scores, per_frame

    def _frame_features(self) -> FrameFeatures | None:
        ex = self.ctx.extractor
        if ex is None or ex.spec.kind != "2d" or self.ctx.augmenter is not None:
            return None
        return FrameFeatures(ex.extract_frames, self.cfg.features.batch_size or ex.default_batch_size)

    def _needs_scratch(self) -> bool:
        """Frames must be re-read later but the sink does not keep them (augment never stores decoded frames)."""
        ex = self.ctx.extractor
        if self.ctx.augmenter is not None:
            return True
        return ex is not None and ex.spec.kind == "3d" and not self.sink.keeps_frames

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of this video's first run (the decoded frames)."""
        if self.scratch is not None:
            return self.scratch.read(start, stop)
        return self.sink.read_frames(self.v, start, stop)

    def plan(self, pts: np.ndarray, scores: np.ndarray | None, label: int) -> list[ClipRow]:
        """Scene cuts (if asked) and clip planning over the decoded frames."""
        from vidprep.stages.split import plan_clips

        cuts: list[int] = []
        split = self.cfg.split
        if self.scenes is not None:
            for name, values in self.scenes.arrays().items():
                self.sink.set_video_array(self.v, name, values)
            cuts = self.scenes.row_cuts(self.idx)
        specs = plan_clips(pts, split, cuts, frame_duration_s=1.0 / split.fps if split.fps else None)
        return [ClipRow(c.frame_start, c.frame_stop, c.padded, c.start_s, c.end_s, c.clip_index, label=label)
                for c in specs]

    def finish_rows(self, video_id: str, rows: list[ClipRow], per_frame: np.ndarray | None) -> list[ClipRow]:
        """Add augmented copies and features to the planned rows."""
        out = self.augment(video_id, rows) if self.ctx.augmenter is not None else rows
        ex = self.ctx.extractor
        if ex is None:
            return out
        originals = [r for r in out if r.features is None]
        if ex.spec.kind == "2d":
            clip_features_2d(per_frame, originals, 0, self.cfg.features.pool)
        else:
            clip_features_3d(ex.extract_clips, originals, self.read, self._batch(ex), ex.spec.clip_len)
        return out

    def _batch(self, ex: FeatureExtractor) -> int:
        return self.cfg.features.batch_size or ex.default_batch_size

    def augment(self, video_id: str, rows: list[ClipRow]) -> list[ClipRow]:
        """Each clip becomes new frame runs: copy 0 (with --keep-original) and K augmented copies.

        All runs of an augmented video share the output size, so copy 0 is the original center-cropped to the crop
        size (what an evaluation transform does); the decoded frames themselves are not stored.
        """
        from vidprep.stages.augment import center_view

        aug_cfg = self.cfg.augment
        out = []
        for row in (r for r in rows if r.aug_index == 0):
            frames = self.read(row.frame_start, row.frame_stop)
            if aug_cfg.keep_original:
                out.append(self._new_run(row, center_view(frames, aug_cfg.crop), 0, None))
            for copy in range(1, aug_cfg.copies + 1):
                aug, params = self.ctx.augmenter.augment_clip(
                    frames, video_id=video_id, clip_index=row.clip_index, copy_index=copy
                )
                out.append(self._new_run(row, aug, copy, params))
        return out

    def _new_run(self, row: ClipRow, frames: np.ndarray, copy: int, params: dict | None) -> ClipRow:
        source = slice(row.frame_start, row.frame_stop)
        start = self.sink.append_frames(self.v, frames, self.pts[source], self.idx[source])
        new = ClipRow(start, start + len(frames), row.padded, row.start_s, row.end_s, row.clip_index, copy,
                      row.label, params)
        self._attach_aug_features(new, frames)
        return new

    def _attach_aug_features(self, row: ClipRow, frames: np.ndarray) -> None:
        ex = self.ctx.extractor
        if ex is None:
            return
        from vidprep.engine.featurize import fit_length
        from vidprep.stages.features import pool_frames

        if ex.spec.kind == "2d":
            row.features = pool_frames(ex.extract_frames(pad_rows(frames, row.padded)), self.cfg.features.pool)
        else:
            row.features = ex.extract_clips(fit_length(pad_rows(frames, row.padded), ex.spec.clip_len)[None])[0]


def process_unit_safe(unit: WorkUnit, job: Job, shard_path: str) -> UnitResult:
    """`process_unit`, but a failure of the whole unit (disk full, unwritable shard) fails its videos, not the run."""
    try:
        return process_unit(unit, job, shard_path)
    except Exception as err:  # noqa: BLE001 - KeyboardInterrupt and SystemExit still propagate
        message = " ".join(str(err).split())
        log.error("%s: cannot write shard: %s", shard_path, message)
        failed = [
            VideoResult(None if isinstance(i, str) else i.video_id, i if isinstance(i, str) else i.path,
                        error=f"{printable_path(shard_path)}: cannot write output: {message}",
                        error_type=type(err).__name__, stage="write")
            for i in unit.items
        ]
        return UnitResult(unit.index, None, failed)
