"""Stream the frames of one video as uint8 RGB arrays, sampled and scaled inside ffmpeg, with exact timestamps.

How it works: one ffmpeg process per video writes raw ``rgb24`` frames to a pipe (``-fps_mode passthrough``, so
ffmpeg neither drops nor duplicates frames). The filter chain is::

    [bwdif], showinfo@vidprep_pre, select=<sampling>, showinfo@vidprep_post,
    [transpose | hflip,vflip], scale=WxH, [format=gbrp], format=rgb24, [crop], setsar=1

The two ``showinfo`` filters log every decoded frame and every kept frame (integer pts + the link time base) on
stderr, which a thread parses: a kept frame's source ordinal is the position of its pts among the decoded frames,
and its time is ``(pts - first decoded pts) * time_base``, so it is exact on VFR video, with B-frames and when the
file does not start at zero. With ``Sampling("all")`` the ``select`` and the first ``showinfo`` are left out.

Sampling rules (``t`` = seconds since the first decoded frame, ``n`` = decoded-frame ordinal):

- ``fps=F``: the first frame at or after each tick k/F, i.e. a frame is kept iff ``floor(t*F + 1e-6)`` is larger
  than for the frame before it (the first frame is always kept). Frames are never duplicated, so a video slower
  than F yields all its frames.
- ``every=N``: ordinals 0, N, 2N, ...
- ``uniform=N``: the frame in the middle of each of N equal ordinal segments, ``floor((2k+1)*T/(2N))``, where T is
  the number of frames in the packet index (a demux-only scan, :class:`vidprep.media.seek.FrameIndex`: packets
  not marked discard, from the first keyframe on). If fewer frames decode than were indexed (corrupt packets) the
  last segments can come out short; a warning is logged. N >= T yields every frame.

Sparse sampling (``fps``/``every``/``uniform`` keeping few frames of a long mp4/mov/mkv/webm): instead of one
sequential decode, :mod:`vidprep.media.seek` plans *runs*, each an ffmpeg process that seeks to the keyframe
before its frames (``-seek_timestamp 1 -ss``, ``-noaccurate_seek``, ``-copyts`` so frames keep their stream
pts), stops after its last frame (``trim``) and keeps exactly its frames (``select`` on pts). Ordinals and times
come from the packet index, so they equal the sequential decode's; every decoded frame of a run is checked
against the index before anything is yielded, and the first mismatch or failure hands the rest of the video to
the sequential decode (logged at info level). Used only when the plan costs under half a full decode.

Geometry: rotation metadata is applied with explicit ``transpose``/``flip`` filters (ffmpeg's own autorotate is
switched off, so the result follows :func:`vidprep.media.probe.probe`'s reading of the metadata even where ffmpeg
would ignore it); SAR != 1 and the requested size are handled by one ``scale`` to an explicit size, and the center
crop comes last. Colour rule: swscale converts every source format to 8-bit ``rgb24`` using the stream's tagged
matrix and range (BT.601 when untagged); higher bit depths are reduced to 8 bits and alpha is dropped (not
composited); the source ``pix_fmt``/bit depth stay recorded in :class:`VideoInfo`. HDR streams (PQ or HLG transfer)
are tone-mapped to SDR BT.709 after scaling (:data:`vidprep.media.filtergraph.TONEMAP_FILTERS`), so they look as
a player on an SDR screen
shows them rather than washed out. Colour tags the stream leaves out are assumed (BT.2020 primaries and matrix,
limited range: :data:`vidprep.media.filtergraph.HDR_ASSUMED_TAGS`); if tone mapping still fails before the first
frame, the video is decoded again from the start without it (a warning says so), so a playable file is never lost
to colour handling.

Interlaced video: ``deinterlace="auto"`` (the default) puts ffmpeg's ``bwdif`` (one output frame per input frame,
``deint=interlaced``: only frames flagged interlaced are touched) first in the chain when the stream's field order
says interlaced (:attr:`VideoInfo.interlaced`); ``"on"`` deinterlaces every frame whatever the flags say (for
files that mislabel themselves progressive); ``"off"`` passes fields through as decoded. Deinterlacing runs at the
source resolution before sampling, because it needs the neighbouring frames; frame counts, ordinals and pts are
the same in every mode (tested), only pixels change.

Branches (scene detection): ``decode(..., branches=...)`` adds outputs to the same ffmpeg process, split off
after the ``PRE`` showinfo and before ``select``, each receiving every decoded frame at its own size on its own
pipe (:mod:`vidprep.media.branches`). Such a decode is always sequential: a seek plan would skip the frames the
branches must see.

Errors: a file that fails part-way (truncated, corrupt) yields every frame that decoded; DecodeError is raised
afterwards only if ffmpeg exits non-zero, made no progress for ``timeout_s``, or decoded no frame at all.
"""

from __future__ import annotations

import functools
import logging
import queue
import re
import threading
from collections.abc import Callable, Generator, Sequence

import numpy as np

from vidprep.errors import ConfigError, DecodeError
from vidprep.media import ffmpeg as tools
from vidprep.media.filtergraph import (HDR_TRANSFERS, ROTATE_FILTERS, decode_argv, deinterlace_filter, output_size,
                                      run_argv, without_tonemap)
from vidprep.media.branches import Branch, BranchPipes
from vidprep.media.framelog import END, FrameLog, IndexedFrameLog, StreamEnded
from vidprep.media.probe import scan_video_packets
from vidprep.media.seek import FrameIndex, SeekRun, plan_runs, sampled_ordinals, startup_frames, worth_seeking
from vidprep.types import DecodedFrame, Sampling, SizeSpec, VideoInfo

log = logging.getLogger("vidprep.media.decode")

SEEKABLE_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm"})
MIN_SEEK_FRAMES = 600
"""Videos shorter than this (by metadata) always decode sequentially: seeking cannot save much there."""
SPARSE_FACTOR = 4
"""Plan seeks only when metadata suggests fewer than one kept frame in this many."""
_DAMAGE_RE = re.compile(r"(?i)error|prematurely|truncat|corrupt|invalid|missing")
FrameStream = Generator[DecodedFrame, None, None]
"""What `decode` returns: a generator, so a caller that stops early can ``close()`` it (which reaps ffmpeg)."""


def check_request(info: VideoInfo, sampling: Sampling, size: SizeSpec, max_pixels: int) -> None:
    """Reject bad sampling values and frames larger than ``max_pixels`` before anything is decoded."""
    if sampling.mode != "all" and not sampling.value > 0:
        raise ConfigError(f"sampling {sampling.describe()} needs a value > 0")
    if sampling.mode in ("every", "uniform") and sampling.value != int(sampling.value):
        raise ConfigError(f"sampling {sampling.describe()} needs a whole number")
    if info.rotation not in ROTATE_FILTERS:
        raise DecodeError(f"rotation must be 0, 90, 180 or 270, got {info.rotation}", path=info.path)
    out_w, out_h = output_size(info, size)
    for what, pixels in (("source", info.coded_width * info.coded_height), ("displayed", info.width * info.height),
                         ("output", out_w * out_h)):
        if pixels > max_pixels:
            raise DecodeError(f"{what} frame has {pixels} pixels, more than max_pixels={max_pixels}", path=info.path)


def decode(info: VideoInfo, sampling: Sampling = Sampling(), size: SizeSpec = SizeSpec(), *,
           timeout_s: float = 600.0, max_pixels: int = 8192 * 8192, prefetch: int = 16,
           deinterlace: str = "auto", seek: bool = True, branches: Sequence[Branch] = ()) -> FrameStream:
    """Decode one video into RGB frames (H, W, 3) uint8 with pts (s from the first frame) and source ordinals.

    Arguments are checked now; ffmpeg starts on the first ``next()``. ``timeout_s`` is the longest ffmpeg may go
    without any progress while vidprep waits for it (time spent waiting for a slow consumer does not count).
    ``prefetch`` frames are decoded ahead on a thread, so memory is bounded whatever the video's length.
    ``deinterlace`` is ``"auto"`` (only streams flagged interlaced), ``"on"`` or ``"off"`` (module docstring).
    ``seek=False`` always decodes sequentially (see "Sparse sampling" in the module docstring).
    ``branches`` receive every decoded frame at their own size (:mod:`vidprep.media.branches`, e.g. the scene
    detectors); a decode with branches is always sequential.
    Closing the iterator early (``break``, exception, Ctrl-C) kills and reaps ffmpeg.

    Raises:
        ConfigError: invalid sampling value.
        DecodeError: frame too large, ffmpeg failed or stalled, or no frame decoded.
    """
    check_request(info, sampling, size, max_pixels)
    attempt = functools.partial(_decode_checked, sampling=sampling, size=size, timeout_s=timeout_s,
                                prefetch=prefetch, deinterlace=deinterlace, seek=seek and not branches,
                                branches=tuple(branches))
    if info.color_transfer in HDR_TRANSFERS:
        return _tonemap_or_plain(info, attempt)
    return attempt(info)


def _tonemap_or_plain(info: VideoInfo, attempt: Callable[[VideoInfo], FrameStream]
                      ) -> FrameStream:
    """Decode an HDR stream with tone mapping; when that fails before its first frame (zimg refuses the stream's
    colours), decode it again from the start without tone mapping, with a warning: the video is kept, its colours
    as swscale converts them. A failure after frames were yielded is raised as is (nothing is yielded twice)."""
    yielded = False
    try:
        for frame in attempt(info):
            yielded = True
            yield frame
        return
    except DecodeError as err:
        if yielded:
            raise
        reason = str(err).removeprefix(f"{err.path}: ") if err.path else str(err)
    log.warning("%s: HDR tone mapping failed (%s); note: frames converted WITHOUT tone mapping (colours as an "
                "HDR-unaware player shows them)", info.path, reason)
    yield from attempt(without_tonemap(info))


def _decode_checked(info: VideoInfo, *, sampling: Sampling, size: SizeSpec, timeout_s: float, prefetch: int,
                    deinterlace: str, seek: bool, branches: tuple[Branch, ...] = ()) -> FrameStream:
    """The body of :func:`decode` after its checks: plan seeks or a sequential decode of one filter chain."""
    index, total = None, None
    may_seek = seek and _may_seek(info, sampling, deinterlace)
    if sampling.mode == "uniform" or may_seek:
        scan = scan_video_packets(info.path, timeout_s=timeout_s)
        index = FrameIndex.from_packets(scan)
        total = len(index) if index is not None else int(np.count_nonzero(~scan.discard))
        if total == 0:
            raise DecodeError("no video packets to decode", path=info.path)
    width, height = output_size(info, size)
    shape = (height, width, 3)
    decode_argv(info, sampling, size, total_frames=total, deinterlace=deinterlace)  # bad options raise now
    argv = functools.partial(_branched_argv, info, sampling, size, total, deinterlace, branches)
    expected = min(total, int(sampling.value)) if sampling.mode == "uniform" and total is not None else None

    def sequential() -> FrameStream:
        return _frames(info.path, argv, shape, sampled=sampling.mode != "all", timeout_s=timeout_s,
                       prefetch=max(1, prefetch), expected=expected, branches=branches)

    if index is not None and may_seek:
        startup = startup_frames(info.coded_width * info.coded_height)
        runs = plan_runs(index, sampled_ordinals(index, sampling), startup)
        if worth_seeking(index, runs, startup):
            log.debug("%s: sampling %s by %d seeks", info.path, sampling.describe(), len(runs))
            return _seek_frames(info, index, runs, size, shape, timeout_s=timeout_s, prefetch=max(1, prefetch),
                                sequential=sequential)
    return sequential()


def _branched_argv(info: VideoInfo, sampling: Sampling, size: SizeSpec, total: int | None, deinterlace: str,
                   branches: tuple[Branch, ...], fds: Sequence[int]) -> list[str]:
    """The sequential decode's command, with each branch writing to its pipe's file descriptor."""
    return decode_argv(info, sampling, size, total_frames=total, deinterlace=deinterlace,
                       branches=[(b.filters, fd) for b, fd in zip(branches, fds)])


def _may_seek(info: VideoInfo, sampling: Sampling, deinterlace: str) -> bool:
    """Whether a seek plan is worth a packet scan: sparse sampling of a long-enough video in an indexed container,
    judged from metadata (the plan itself uses only the scan). Deinterlacing needs every neighbour: no seeks."""
    if sampling.mode == "all" or deinterlace_filter(info, deinterlace) is not None:
        return False
    if not SEEKABLE_CONTAINERS & set(info.container.split(",")):
        return False
    duration = info.duration_s or 0.0
    frames = info.num_frames or duration * info.avg_fps
    if frames < MIN_SEEK_FRAMES:
        return False
    kept = {"fps": duration * sampling.value, "every": frames / max(sampling.value, 1.0),
            "uniform": sampling.value}[sampling.mode]
    return kept * SPARSE_FACTOR < frames


def _seek_frames(info: VideoInfo, index: FrameIndex, runs: list[SeekRun], size: SizeSpec,
                 shape: tuple[int, int, int], *, timeout_s: float, prefetch: int,
                 sequential: Callable[[], FrameStream]) -> FrameStream:
    """Run a seek plan. A run that strays from the index (checked frame by frame, before a frame is yielded) or
    fails hands over to ``sequential``, whose frames after the last one yielded complete the video."""
    last = -1
    for run in runs:
        frame_log = IndexedFrameLog(index, run)
        stream = _stream(info.path, run_argv(info, run, index, size), shape, frame_log, timeout_s=timeout_s,
                         prefetch=prefetch)
        problem: str | None = None
        try:
            while True:
                frame = next(stream)
                last = frame.index
                yield frame
        except StopIteration as end:
            reason, tail = end.value
            problem = reason or (f"{len(frame_log.pending)} sampled frames missing" if frame_log.pending else None)
            if problem is None:
                _warn_damage(info.path, len(run.targets), tail)
        except DecodeError as err:
            problem = str(err)
        finally:
            stream.close()
        if problem is not None:
            log.info("%s: seek to frame %d did not give the indexed frames (%s); decoding sequentially",
                     info.path, run.targets[0], problem)
            yield from (f for f in sequential() if f.index > last)
            return


def _frames(path: str, argv: Callable[[Sequence[int]], list[str]], shape: tuple[int, int, int], *, sampled: bool,
            timeout_s: float, prefetch: int, expected: int | None,
            branches: tuple[Branch, ...] = ()) -> FrameStream:
    """The sequential decode: every frame ffmpeg outputs, then the end-of-stream checks."""
    count = 0
    stream = _stream(path, argv, shape, FrameLog(sampled=sampled), timeout_s=timeout_s, prefetch=prefetch,
                     branches=branches)
    try:
        while True:
            frame = next(stream)
            count += 1
            yield frame
    except StopIteration as end:
        reason, tail = end.value
    finally:
        stream.close()
    _check_end(path, reason, count, expected, tail)


def _stream(path: str, argv: list[str] | Callable[[Sequence[int]], list[str]], shape: tuple[int, int, int],
            frame_log: FrameLog, *, timeout_s: float, prefetch: int, branches: tuple[Branch, ...] = ()
            ) -> Generator[DecodedFrame, None, tuple[str | None, list[str]]]:
    """Run one ffmpeg process, yield its frames; returns ``(failure reason or None, stderr tail)``.

    ``argv`` may be a function of the branches' pipe descriptors (see :mod:`vidprep.media.branches`)."""
    frames: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    nbytes = shape[0] * shape[1] * shape[2]
    pipes = BranchPipes(branches)
    try:
        command = argv(pipes.write_fds) if callable(argv) else argv
        proc = tools.FfmpegProcess(command, path=path, on_line=frame_log.feed, idle_timeout_s=timeout_s,
                                   pipe_size=2 * nbytes, pass_fds=pipes.write_fds)
    except BaseException:
        pipes.close()
        raise
    pipes.started()
    reader = threading.Thread(target=_read_frames, args=(proc, frame_log, shape, frames, stop), daemon=True,
                              name="vidprep-decode")
    reader.start()
    try:
        while (item := frames.get()) is not END:
            if isinstance(item, BaseException):
                reason = proc.failure() if isinstance(item, StreamEnded) else None
                raise DecodeError(reason or str(item), path=path)
            yield item
        reason = proc.failure()
    finally:
        stop.set()
        proc.close()
        reader.join()
        pipes.close()
    if pipes.errors and not reason:
        raise DecodeError(f"decode branch failed: {pipes.errors[0]}", path=path)
    return reason, list(proc.tail)


def _check_end(path: str, reason: str | None, count: int, expected: int | None, tail: list[str]) -> None:
    """Raise for a failed decode; log a warning when ffmpeg succeeded but reported damage (e.g. truncation)."""
    if reason:
        raise DecodeError(reason, path=path)
    if count == 0:
        raise DecodeError("no frames decoded", path=path)
    _warn_damage(path, count, tail)
    if expected is not None and count != expected:
        log.warning("%s: uniform sampling yielded %d frames, expected %d (packet count differs from decoded frames)",
                    path, count, expected)


def _warn_damage(path: str, count: int, tail: list[str]) -> None:
    """Log a warning when ffmpeg succeeded but reported damage (e.g. truncation)."""
    damage = [line for line in tail if _DAMAGE_RE.search(line)]
    if damage:
        log.warning("%s: decoded %d frames, but ffmpeg reported: %s", path, count, tools.summarize_stderr(damage))


def _read_frames(proc: tools.FfmpegProcess, frame_log: FrameLog, shape: tuple[int, int, int],
                 frames: queue.Queue, stop: threading.Event) -> None:
    """Reader thread: fill fresh arrays straight from the pipe, pair them with their pts, queue them (bounded)."""
    nbytes = shape[0] * shape[1] * shape[2]
    result: object = END
    try:
        while not stop.is_set():
            flat = np.empty(nbytes, dtype=np.uint8)
            got = proc.read_into(flat.data)
            if got == 0:
                break
            if got < nbytes:
                raise StreamEnded(f"ffmpeg output ended inside a frame ({got} of {nbytes} bytes)")
            index, pts_s = frame_log.next_record()
            with proc.paused():
                if not _put(frames, DecodedFrame(flat.reshape(shape), pts_s, index), stop):
                    return
    except BaseException as err:  # handed to the consumer, which raises it as DecodeError
        result = err
    _put(frames, result, stop)


def _put(frames: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Queue ``item``, waiting for room unless the consumer has gone away; False if it has."""
    while not stop.is_set():
        try:
            frames.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
