"""Run the stages over many videos: inputs -> work units -> executor -> shards, resumable and array-job safe.

The driver owns the output directory's bookkeeping (manifest.json, errors.jsonl, index.jsonl); workers only write
their own shard. A unit whose shard already exists is done, so re-running the same command resumes (resume.py
checks that each finished unit was made from the same videos); a shard keeps its unit's failures inside it, so
errors.jsonl can be restored after a crash between the two writes.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from vidprep.shards import testhooks
from vidprep import interrupts
from vidprep.config import RunConfig
from vidprep.errors import EXIT_OK, EXIT_PARTIAL, DeferredBuildError, UsageError
from vidprep.executors import Executor
from vidprep.inputs import InputList, WorkUnit, partition, select_units
from vidprep.engine.resume import check_overwrite, pending_units
from vidprep.engine.shard_labels import resolve_run_labels
from vidprep.shards.format import SHARD_RE, shard_name
from vidprep.engine.sinks import all_kinds, error_record, kind_for, output_format
from vidprep.stages.runtime import check_run_device
from vidprep.engine.worker import Context, Job, UnitResult, context_for, process_unit_safe

log = logging.getLogger("vidprep.engine.driver")

#: Files of an output directory that an input shard's output must never be named as.
RESERVED_NAMES = frozenset({"normalization.h5"})


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to compute): executor, workers, array-job slice, overwrite."""

    executor: str | None = None
    workers: int | None = None
    shard_index: int = 0
    num_shards: int = 1
    overwrite: bool = False
    ray_address: str | None = None


@dataclass
class RunSummary:
    """What a run did, for the CLI's --json summary and exit code."""

    out_dir: str
    executor: str = ""
    shards: list[str] = field(default_factory=list)
    skipped_units: int = 0
    videos_ok: int = 0
    videos_failed: int = 0
    clips: int = 0
    frames: int = 0
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list)

    failed_earlier: int = 0

    @property
    def exit_code(self) -> int:
        """0 when every input of this run is in a shard, 3 when any failed (now or in a resumed earlier run)."""
        return EXIT_PARTIAL if self.videos_failed or self.failed_earlier else EXIT_OK


def prepare_output(out_dir: Path, record: dict, overwrite: bool) -> None:
    """Create OUT, refuse one written with another config (unless overwrite) or holding entries vidprep never
    makes (`out_entries`), and prove it is writable."""
    from vidprep.engine import out_entries
    from vidprep.shards import manifest
    from vidprep.shards.atomic import temp_path_for

    try:
        testhooks.before_output_write(out_dir)  # TEST-ONLY: inert unless VIDPREP_TEST_READ_ONLY is set
        out_dir.mkdir(parents=True, exist_ok=True)
        probe_file = temp_path_for(out_dir / ".write-test")  # a temp name cleanup knows, should we die here
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as err:
        raise UsageError(f"output directory is not writable: {err.strerror}", path=str(out_dir)) from None
    if overwrite:
        clear_output(out_dir)
    out_entries.check(out_dir)  # links or FIFOs under vidprep's names: exit 2 before anything reads them
    if not overwrite:
        manifest.check_config(out_dir, record)
    manifest.cleanup_temp(out_dir)


def clear_output(out_dir: Path) -> None:
    """Remove what an earlier run wrote (every format's outputs, manifest, errors, indexes), for --overwrite."""
    from vidprep.shards.indexes import INDEX_FILES

    for kind in all_kinds():
        kind.clear(out_dir)
    for name in ("manifest.json", "errors.jsonl", "normalization.h5", *INDEX_FILES):
        (out_dir / name).unlink(missing_ok=True)


def run(
    listed: InputList,
    config: RunConfig,
    out_dir: str | Path,
    options: RunOptions = RunOptions(),
    *,
    on_shard: Callable[[str], None] | None = None,
    on_unit: Callable[[UnitResult], None] | None = None,
    shard_inputs: Iterable[str] = (),
    on_plan: Callable[[list[WorkUnit]], None] | None = None,
) -> RunSummary:
    """Process every input video into shards under ``out_dir``; returns what happened.

    The work units are planned once, here; ``on_plan`` gets this task's units before any is processed (the CLI
    sizes its progress bar from them).
    """
    from vidprep.engine.applicable import record_applied
    from vidprep.media.ffmpeg import require_ffmpeg
    from vidprep.engine.normalize_setup import resolve_stats_from
    from vidprep.stages.scene_detect import check_scene_options

    started = time.monotonic()
    out = Path(out_dir).absolute()
    config = resolve_stats_from(config, out, options.overwrite)
    record = record_applied(config, listed)
    if listed.videos:
        require_ffmpeg()
        check_scene_options(config.split)  # vidprep.stages.scene_detect: exit 2 before decoding
        from vidprep.media.probe import start_early

        start_early(listed.videos[0].path, timeout_s=min(60.0, config.timeout_s))  # the worker's first probe
    labels = resolve_run_labels(listed, label_from_dir=config.split.label_from_dir, labels_csv=config.split.labels)
    job = Job(config, str(out), labels, record)
    check_run_device(config, options.executor, options.ray_address)
    check_overwrite(options.overwrite, options.num_shards)
    all_units = partition(listed.videos, config.videos_per_shard)
    units = select_units(all_units, options.shard_index, options.num_shards)
    if on_plan is not None:
        on_plan(units)
    fmt = output_format(config)
    executor, executor_name = _executor(config, options, _task_count(units, out, fmt, options.overwrite, shard_inputs))
    job, built_here = _check_stage_setup(job, executor_name, options.overwrite)
    prepare_output(out, record, options.overwrite)
    from vidprep.engine import warm_imports

    warm_imports.start(config, executor_name)  # OpenCV and pyarrow load while the first units decode
    summary = RunSummary(str(out), executor_name, videos_failed=len(listed.problems))
    total_units = len(all_units)
    # outputs numbered past the video units are input shards' outputs when shards are given too, not removed units
    no_shard_inputs = isinstance(shard_inputs, (list, tuple)) and not shard_inputs
    todo = pending_units(out, fmt, units, total_units=total_units if no_shard_inputs else 0,
                         shard_index=options.shard_index, num_shards=options.num_shards)
    _record_input_problems(out, listed, options)
    summary.skipped_units = len(units) - len(todo)
    tasks = itertools.chain(
        ((u, job, str(kind_for(fmt).unit_path(out, u.index))) for u in todo),
        _shard_tasks(shard_inputs, job, out, fmt, summary, video_units=total_units if listed.videos else 0,
                     options=options),
    )
    try:
        for result in executor.map(process_unit_safe, tasks):
            _publish(out, result, record, summary, on_shard)
            interrupts.check()  # a Ctrl-C swallowed while this unit ran stops the run after publishing it
            if on_unit is not None:
                on_unit(result)
        if built_here is not None:
            built_here.wait_ready()  # a run with nothing left to do still reports a model that cannot be built
    except BaseException as err:  # an interrupt (Ctrl-C) or a failure of the run itself: leave no temp file of ours
        from vidprep.shards.cleanup import remove_own_temp

        remove_own_temp(out)
        if isinstance(err, DeferredBuildError):
            raise err.cause from None  # the model's own error (WeightsError: exit 2), as if built up front
        raise
    _finish(out, config, fmt, summary, total_units or None)
    mine = {item.video_id for unit in units for item in unit.items if not isinstance(item, str)}
    summary.failed_earlier = max(0, sum(1 for e in summary.errors if e.get("video_id") in mine) - summary.videos_failed)
    summary.seconds = time.monotonic() - started
    return summary


def _check_stage_setup(job: Job, executor: str, overwrite: bool) -> tuple[Job, Context | None]:
    """Fail with exit 2 before any decoding on bad weights or a missing --stats-from file; return the job to run,
    and the Context built here (serial executor) or None.

    The serial executor builds its stage objects here once and reuses them. A feature model whose shape is known
    without building it (torchvision's registry) is built in the background while the first video decodes
    (torch's import and the weights take seconds); its failure still stops the run with its own error before
    anything is published (`Context.wait_ready` before each commit and at the end), and with ``overwrite`` it is
    awaited here, before the old outputs are cleared. Other executors only check the weights (their workers
    build the model on their own devices, which the driver may not have) and hand the check on in the job, so no
    worker hashes the file again.
    """
    feats = job.config.features
    if feats is not None and feats.stats_from and not Path(feats.stats_from).is_file():
        raise UsageError("--stats-from: normalization file not found", path=feats.stats_from)
    from vidprep.stages.zero_shot import check_text_labels

    check_text_labels(feats)
    if executor == "serial":
        if feats is None and job.config.augment is None:
            return job, None
        ctx = context_for(job, background=True)
        if overwrite:
            try:
                ctx.wait_ready()
            except DeferredBuildError as err:
                raise err.cause from None
        return job, ctx
    if feats is None:
        return job, None
    from vidprep.stages.models import get_backend

    backend = get_backend(feats.model)
    return replace(job, weights_proof=backend.verify(backend.resolve_weights(feats.weights))), None


def _shard_tasks(paths: Iterable[str], job: Job, out: Path, fmt: str, summary: RunSummary, *, video_units: int,
                 options: RunOptions) -> Iterator[tuple]:
    """One task per input shard, yielded as the paths arrive (pipes); array task K takes its share of them."""
    seen: set[str] = set()
    for path in paths:
        name = Path(path).name
        number = _shard_number(name)
        if number % options.num_shards != options.shard_index:
            continue
        target_name = shard_name(number + video_units) if video_units and SHARD_RE.match(name) else name
        if target_name in RESERVED_NAMES:
            raise UsageError(f"an input shard named {name} would overwrite the output's own {name}; rename it",
                             path=path)
        if target_name in seen:
            raise UsageError(f"two input shards would both be written to {target_name}; give them separate runs",
                             path=path)
        seen.add(target_name)
        target = kind_for(fmt).unit_path(out, target_name)
        if target.exists():
            summary.skipped_units += 1
            continue
        yield WorkUnit(len(seen) - 1, (path,)), job, str(target)


def _shard_number(name: str) -> int:
    """An input shard's number: N of ``shard-N.h5``, else a stable hash of its name (array tasks split on it).

    Beside video units 0..U-1 in the same run, input ``shard-N.h5`` is written as ``shard-(U+N).h5``, so an
    earlier step's shard 0 never lands on (or is skipped as) this run's video unit 0.
    """
    match = SHARD_RE.match(name)
    if match:
        return int(match[1])
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=4).digest(), "big")


def _task_count(units: list[WorkUnit], out: Path, fmt: str, overwrite: bool, shard_inputs: Iterable[str]) -> int | None:
    """How many units this run will likely process (those without output yet), or None while shard paths still
    stream in (stdin). Only sizes the executor: which units really run is decided after the output is prepared."""
    if not isinstance(shard_inputs, (list, tuple)):
        return None
    todo = [u for u in units if overwrite or not kind_for(fmt).unit_path(out, u.index).exists()]
    return len(todo) + len(shard_inputs)


def _executor(config: RunConfig, options: RunOptions, tasks: int | None) -> tuple[Executor, str]:
    """The executor for this run and its name; a pool starts now, preloading what its workers will import."""
    from vidprep.executors import default_executor, get_executor

    name = options.executor or default_executor(tasks, options.workers)
    cuda = config.features is not None and config.features.device.startswith("cuda")
    executor = get_executor(name, options.workers, ray_address=options.ray_address, gpus=1 if cuda else 0,
                            tasks=tasks, preload=_preload(config))
    return executor, name


def _preload(config: RunConfig) -> tuple[str, ...]:
    """Modules a pool worker would import for this config, loaded once in the process it is forked from."""
    mods = ["numpy", "h5py", "vidprep.engine.worker", "vidprep.media.decode", "vidprep.shards.writer"]
    if config.enhance is not None or config.augment is not None or output_format(config) != "h5":
        mods += ["cv2"]
    if config.augment is not None:
        mods += ["vidprep.stages.augment"]
    if config.features is not None:
        mods += ["torch", "vidprep.stages.models.torchvision_preload", "vidprep.stages.features"]
    return tuple(mods)


def _record_input_problems(out: Path, listed: InputList, options: RunOptions) -> None:
    """Inputs rejected before decoding go to errors.jsonl once (task 0 of an array job records them)."""
    from vidprep.shards.manifest import append_error

    if options.shard_index != 0:
        return
    for problem in listed.problems:
        log.error("%s: %s", problem.path, problem.message)
        append_error(out, {"path": problem.path, "video_id": None, "stage": "input",
                           "error_type": "InputError", "message": f"{problem.path}: {problem.message}"})


def _publish(out: Path, result: UnitResult, record: dict, summary: RunSummary, on_shard: Callable | None) -> None:
    """Record a finished unit: errors, manifest entry, counters, and the shard path on stdout."""
    from vidprep.shards.manifest import append_error, record_shard

    for video in result.videos:
        if video.error:
            summary.videos_failed += 1
            append_error(out, error_record(video))
        else:
            summary.videos_ok += 1
            summary.clips += video.clips
            summary.frames += video.frames
    if result.shard is None:
        return
    path = result.shard["path"] if isinstance(result.shard, dict) else str(result.shard.path)
    if not isinstance(result.shard, dict):
        record_shard(out, result.shard, config=record, inputs=[v.video_id for v in result.videos])
    summary.shards.append(path)
    if on_shard is not None:
        on_shard(path)


def _finish(out: Path, config: RunConfig, fmt: str, summary: RunSummary, expected_shards: int | None) -> None:
    """End-of-run work: feature normalization, index.jsonl for file outputs, index.parquet (and metadata.jsonl for
    mp4), compact errors."""
    from vidprep.shards.indexes import finish_indexes
    from vidprep.shards.manifest import compact_errors

    if config.features is not None and (config.features.normalize != "none" or config.features.stats_from):
        from vidprep.engine.normalize_pass import normalize_output

        normalize_output(out, config.features, expected_shards)
    kind_for(fmt).finish(out)
    finish_indexes(out, fmt, changed=bool(summary.shards))
    summary.errors = compact_errors(out)
