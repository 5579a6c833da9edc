"""Turn one work unit into one shard: the picklable unit of work every executor runs.

Per video, data flows one way: decode (or read an input shard) -> frame steps over the chunks (enhance, scene
scoring, quality metrics, 2D features; frames stored as they pass) -> clip steps over the rows (plan, curate,
augment, features, zero-shot) -> clip rows in the sink. The steps come from the stage registry; this module only
composes them (:class:`VideoRunner`). A video that fails is dropped from the shard and reported; the other videos
of the unit still land.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vidprep import interrupts
from vidprep.config import RunConfig
from vidprep.engine.featurize import row_kwargs
from vidprep.engine.framestore import ScratchFrames
from vidprep.engine.framestream import CHUNK, chunked, video_meta
from vidprep.engine.labels import Labels
from vidprep.engine.steps import Chunk, RunHook, Steps, UnitHook, Video
from vidprep.errors import DeferredBuildError, VidprepError, printable_path
from vidprep.executors import threads
from vidprep.host_heap import release_freed
from vidprep.inputs import InputItem, WorkUnit
from vidprep.stages.models import WeightsProof
from vidprep.types import ClipRow, VideoInfo, VideoResult

if TYPE_CHECKING:
    from vidprep.engine.sinks import Sink
    from vidprep.shards.manifest import ShardSummary
    from vidprep.shards.source import ShardVideo

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
    """Per-process steps (feature model, augmenter, ...), built once from the stage registry and reused per unit.

    ``background``: a feature model may still be building when this returns (`BuildEnv.background`); the first
    video decodes meanwhile, and `wait_ready` is called before anything is published."""

    def __init__(self, job: Job, background: bool = False) -> None:
        from vidprep.engine.registry import BuildEnv, build_steps

        self.steps: Steps = build_steps(job.config, BuildEnv(job.weights_proof, background))

    def describe(self) -> dict[str, Any]:
        """What the steps actually use (model, weights id and hash, preprocessing, enhancement parameters)."""
        return self.steps.describe()

    def wait_ready(self) -> None:
        """Wait for a model built in the background; DeferredBuildError when its build failed."""
        self.steps.wait_ready()


_CONTEXTS: dict[str | None, Context] = {}


def context_for(job: Job, *, background: bool = False) -> Context:
    """The cached Context of this process for this job's config (built now, in the background where allowed)."""
    from vidprep.shards.manifest import config_fingerprint

    key = config_fingerprint(job.config.model_dump(mode="json"))
    if key not in _CONTEXTS or _CONTEXTS[key].steps.failed():  # a failed background build is tried again
        _CONTEXTS.clear()
        _CONTEXTS[key] = Context(job, background)
    return _CONTEXTS[key]


def process_unit(unit: WorkUnit, job: Job, shard_path: str) -> UnitResult:
    """Process every video of ``unit`` into the shard at ``shard_path`` (written atomically)."""
    from vidprep.engine.sinks import SinkSpec, kind_for, output_format

    started = time.monotonic()
    ctx = context_for(job)
    results: list[VideoResult] = []
    spec = SinkSpec(job.config, job.config_record, job.out_dir, job.kind)
    sink = kind_for(output_format(job.config)).open(spec, Path(shard_path), _class_names(unit, job), ctx.describe)
    with sink, threads.current().unit():  # the sink first: an interrupt from here on discards its temp file
        for step in ctx.steps.everything():
            if isinstance(step, UnitHook):
                step.begin_unit(sink)
        for item in unit.items:
            if isinstance(item, str):
                results.extend(_run_input_shard(job, ctx, sink, item))
            else:
                results.append(VideoRunner(job, ctx.steps, sink).run(item))
        sink.record_errors([r for r in results if r.error])
        interrupts.check()
        ctx.wait_ready()  # a model that failed to build stops the run here, even if no video reached it
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
            results.append(VideoRunner(job, ctx.steps, sink).run_shard_video(video))
    except Exception as err:  # noqa: BLE001 - any failure of one input is that input's error record
        message = " ".join(str(err).split())
        if not isinstance(err, VidprepError) or getattr(err, "path", None) is None:  # the record names the shard
            message = f"{printable_path(path)}: {message}"
        log.error("%s", message)
        results.append(VideoResult(None, path, error=message, error_type=getattr(err, "kind", type(err).__name__),
                                   stage="read"))
    return results


class VideoRunner:
    """Composes the run's steps over one video into an open sink: frame steps over the chunks, then clip steps.

    Generic over the steps (:mod:`vidprep.engine.steps`): it knows only the two inputs (a decoded video, a video
    of an input shard), where frames are kept (the sink, or a scratch file when a clip step re-reads frames the
    sink does not keep) and the sink.
    """

    def __init__(self, job: Job, steps: Steps, sink: Sink) -> None:
        self.job, self.steps, self.sink = job, steps, sink
        self.cfg: RunConfig = job.config
        self.v: int | None = None
        self.stage = "probe"
        self.scratch: ScratchFrames | None = None
        self.keep_decoded = True

    def run(self, item: InputItem) -> VideoResult:
        """Process one source video; errors become a VideoResult with the message, never an exception."""
        from vidprep.media.decode import decode
        from vidprep.media.probe import probe

        def body() -> tuple[int, int]:
            self.stage = "probe"
            info = probe(item.path, timeout_s=min(60.0, self.cfg.timeout_s))
            self.v = self.sink.add_video(item.video_id, printable_path(item.path), video_meta(info))
            self.stage = "decode"
            video = self._video(item.video_id, info, self.job.labels.of(item.video_id), rows_given=False)
            branches = [b for step in self.steps.frame for b in step.branches()]  # after start: per video
            split = self.cfg.split
            frames = decode(info, split.sampling(), split.size_spec(), timeout_s=self.cfg.timeout_s,
                            max_pixels=self.cfg.max_pixels, deinterlace=split.deinterlace, branches=branches)
            return self._compose(video, chunked(frames, CHUNK), [])

        return self._guard(VideoResult(item.video_id, item.path), body)

    def run_shard_video(self, item: ShardVideo) -> VideoResult:
        """Process one video of an input frame shard: its stored frames and its clip rows carry over."""
        from vidprep.engine.shard_labels import relabel_rows

        def body() -> tuple[int, int]:
            self.stage = "read"
            self.v = self.sink.add_video(item.video_id, item.source, item.meta)
            rows = relabel_rows(item.rows, item.video_id, item.class_names, self.job.labels)
            video = self._video(item.video_id, None, -1, rows_given=True)
            return self._compose(video, item.chunks(), rows)

        return self._guard(VideoResult(item.video_id, item.path), body)

    def _video(self, video_id: str, info: VideoInfo | None, label: int, *, rows_given: bool) -> Video:
        """The video the steps see, with frame access wired to the sink or a scratch file; frame steps started."""
        clip = self.steps.clip
        replaced = any(s.replaces_frames for s in clip)
        self.keep_decoded = not replaced
        if any(s.rereads for s in clip) and (replaced or not self.sink.keeps_frames):
            self.scratch = ScratchFrames(self.job.out_dir)
        v = self.v
        assert v is not None
        reader = self.scratch.read if self.scratch is not None else partial(self.sink.read_frames, v)
        video = Video(video_id, info, label, rows_given, reader=reader, appender=partial(self.sink.append_frames, v),
                      run_hooks=[s for s in clip if isinstance(s, RunHook)])
        for step in self.steps.frame:
            step.start(video)
        return video

    def _compose(self, video: Video, chunks: Iterable[Chunk], rows: list[ClipRow]) -> tuple[int, int]:
        """Frame steps over every chunk (frames stored as they pass), their arrays, then the clip steps."""
        v = self.v
        assert v is not None
        pts_all, idx_all = [], []
        for chunk in chunks:
            interrupts.check()
            for step in self.steps.frame:
                chunk = step.push(chunk)
            rgb, pts, idx = chunk
            if self.keep_decoded:
                self.sink.append_frames(v, rgb, pts, idx)
            if self.scratch is not None:
                self.scratch.append(rgb)
            pts_all.append(pts)
            idx_all.append(idx)
        if not pts_all:
            raise VidprepError("no frames decoded")
        video.pts, video.idx = np.concatenate(pts_all), np.concatenate(idx_all)
        for frame_step in self.steps.frame:
            self.stage = frame_step.stage
            arrays = video.arrays[frame_step.name] = frame_step.finish()
            for name in frame_step.stored:
                if name in arrays:
                    self.sink.set_video_array(v, name, arrays[name])
        for clip_step in self.steps.clip:
            self.stage = clip_step.stage
            rows = clip_step.apply(video, rows)
        for row in rows:
            self.sink.add_clip(v, **row_kwargs(row))
        return len(video.pts), len(rows)

    def _guard(self, result: VideoResult, body: Callable[[], tuple[int, int]]) -> VideoResult:
        """Run ``body``; a failure drops the video from the sink and is reported in the result."""
        self.stage = "probe"
        try:
            result.frames, result.clips = body()
        except DeferredBuildError:
            raise  # the model's failure, not this video's: the run stops as if the model had been built up front
        except VidprepError as err:
            self._fail(result, err)
        except Exception as err:  # noqa: BLE001 - whatever one input makes fail (h5py, numpy, a stage) is its record
            self._fail(result, err, prefix=f"{printable_path(result.path)}: ")
        finally:
            if self.scratch is not None:
                self.scratch.close()
        return result

    def _fail(self, result: VideoResult, err: Exception, prefix: str = "") -> None:
        interrupts.check()  # an error caused by a swallowed Ctrl-C is the interrupt, not this video's failure
        if self.v is not None:
            self.sink.drop_video(self.v)
        result.error = prefix + " ".join(str(err).split())
        result.error_type = getattr(err, "kind", type(err).__name__)
        result.stage = self.stage
        log.error("%s", result.error)


def process_unit_safe(unit: WorkUnit, job: Job, shard_path: str) -> UnitResult:
    """`process_unit`, but a failure of the whole unit (disk full, unwritable shard) fails its videos, not the run.
    Afterwards the heap's free pages go back to the kernel if many piled up (`vidprep.host_heap.release_freed`)."""
    try:
        return process_unit(unit, job, shard_path)
    except DeferredBuildError:
        raise
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
    finally:
        release_freed()
