"""Stream the frames of one video as uint8 RGB arrays, sampled and scaled inside ffmpeg, with exact timestamps.

How it works: one ffmpeg process per video writes raw ``rgb24`` frames to a pipe (``-fps_mode passthrough``, so
ffmpeg neither drops nor duplicates frames). The filter chain is::

    [bwdif], showinfo@vidprep_pre, select=<sampling>, showinfo@vidprep_post,
    [transpose | hflip,vflip], scale=WxH, format=rgb24, [crop], setsar=1

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
are tone-mapped to SDR BT.709 after scaling (:data:`TONEMAP_FILTERS`), so they look as a player on an SDR screen
shows them rather than washed out.

Interlaced video: ``deinterlace="auto"`` (the default) puts ffmpeg's ``bwdif`` (one output frame per input frame,
``deint=interlaced``: only frames flagged interlaced are touched) first in the chain when the stream's field order
says interlaced (:attr:`VideoInfo.interlaced`); ``"on"`` deinterlaces every frame whatever the flags say (for
files that mislabel themselves progressive); ``"off"`` passes fields through as decoded. Deinterlacing runs at the
source resolution before sampling, because it needs the neighbouring frames; frame counts, ordinals and pts are
the same in every mode (tested), only pixels change.

Errors: a file that fails part-way (truncated, corrupt) yields every frame that decoded; DecodeError is raised
afterwards only if ffmpeg exits non-zero, made no progress for ``timeout_s``, or decoded no frame at all.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from fractions import Fraction

import numpy as np

from vidprep.errors import ConfigError, DecodeError
from vidprep.media import ffmpeg as tools
from vidprep.media.probe import scan_video_packets
from vidprep.media.seek import (TICK_EPS, FrameIndex, SeekRun, plan_runs, sampled_ordinals, startup_frames,
                                uniform_indices, worth_seeking)
from vidprep.types import DecodedFrame, Sampling, SizeSpec, VideoInfo

log = logging.getLogger("vidprep.media.decode")

SCALE_FLAGS = "bicubic"
ROTATE_FILTERS = {0: [], 90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
PRE, POST = "vidprep_pre", "vidprep_post"
DEINTERLACE_MODES = ("auto", "on", "off")
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
TONEMAP_FILTERS = ("zscale=t=linear:npl=100", "format=gbrpf32le", "zscale=p=bt709", "tonemap=tonemap=mobius:desat=0",
                   "zscale=t=bt709:m=bt709:r=full", "format=gbrp")
"""HDR (PQ or HLG, BT.2020) to SDR BT.709: linear light with SDR white at 100 nits, BT.709 primaries, the mobius
curve (linear through most of the SDR range, highlights rolled off), BT.709 transfer, full-range RGB."""
SEEKABLE_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm"})
MIN_SEEK_FRAMES = 600
"""Videos shorter than this (by metadata) always decode sequentially: seeking cannot save much there."""
SPARSE_FACTOR = 4
"""Plan seeks only when metadata suggests fewer than one kept frame in this many."""
_SHOWINFO = "[showinfo@vidprep_"
_FRAME_RE = re.compile(rf"^\[showinfo@({PRE}|{POST}) @ 0x[0-9a-f]+\] n:\s*(\d+) pts:\s*(\S+)")
_TIME_BASE_RE = re.compile(rf"^\[showinfo@(?:{PRE}|{POST}) @ 0x[0-9a-f]+\] config in time_base: (\d+)/(\d+)")
_DAMAGE_RE = re.compile(r"(?i)error|prematurely|truncat|corrupt|invalid|missing")
_END = object()


class _StreamEnded(Exception):
    """The frame pipe ended early; the process's own exit status explains it better when it failed."""


class FrameLog:
    """Turns the showinfo lines on ffmpeg's stderr into ``(ordinal, pts_s)`` for each frame ffmpeg outputs.

    Fed line by line from the stderr thread. The first showinfo (``PRE``, before ``select``) sees every decoded
    frame, the second (``POST``) only the kept ones; a kept frame's ordinal is that of the decoded frame with the
    same pts (frames pass both filters in order). Without sampling only ``POST`` exists and its ``n`` is the ordinal.
    Memory: decoded-frame entries are dropped as soon as a later frame is kept.
    """

    def __init__(self, *, sampled: bool) -> None:
        self.sampled = sampled
        self._records: queue.Queue = queue.Queue()
        self._decoded: deque[tuple[int, int]] = deque()
        self._time_base: Fraction | None = None
        self._first_pts: int | None = None

    def feed(self, line: str | None) -> bool:
        """Consume one stderr line (None at end of stream); True if it was a showinfo line."""
        if line is None:
            self._records.put(_END)
            return True
        if not line.startswith(_SHOWINFO):
            return False
        if match := _FRAME_RE.match(line):
            self._frame(match.group(1) == PRE, int(match.group(2)), match.group(3))
        elif match := _TIME_BASE_RE.match(line):
            self._time_base = Fraction(int(match.group(1)), int(match.group(2)))
        return True

    def next_record(self) -> tuple[int, float]:
        """Block until the next output frame's ``(ordinal, pts_s)`` is known."""
        record = self._records.get()
        if record is _END:
            self._records.put(_END)
            raise _StreamEnded("ffmpeg wrote a frame that showinfo did not report")
        if isinstance(record, str):
            raise DecodeError(record)
        return record

    def _frame(self, is_pre: bool, n: int, pts_text: str) -> None:
        try:
            pts = int(pts_text)
        except ValueError:
            self._records.put(f"decoded frame {n} has no timestamp (pts {pts_text})")
            return
        if self._first_pts is None:
            self._first_pts = pts
        if is_pre:
            self._decoded.append((n, pts))
            return
        ordinal = self._ordinal_of(pts) if self.sampled else n
        if ordinal is None or self._time_base is None:
            self._records.put(f"cannot match output frame {n} (pts {pts}) to a decoded frame")
            return
        self._records.put((ordinal, float((pts - self._first_pts) * self._time_base)))

    def _ordinal_of(self, pts: int) -> int | None:
        while self._decoded:
            n, decoded_pts = self._decoded.popleft()
            if decoded_pts == pts:
                return n
        return None


class IndexedFrameLog(FrameLog):
    """The :class:`FrameLog` of one seek run, checking the run against the :class:`FrameIndex` as it goes.

    Timestamps are kept with ``-copyts``, so a frame's ordinal and time come from the index by exact pts. Every
    decoded frame from the run's keyframe on must be the next indexed frame, and every output frame the next
    target; the first frame that is not becomes an error record, raised before that frame reaches the caller.
    """

    def __init__(self, index: FrameIndex, run: SeekRun) -> None:
        super().__init__(sampled=True)
        self.index, self.run = index, run
        self.next_decoded = run.first
        self.pending: deque[int] = deque(run.targets)

    def _frame(self, is_pre: bool, n: int, pts_text: str) -> None:
        try:
            pts = int(pts_text)
        except ValueError:
            self._records.put(f"decoded frame {n} has no timestamp (pts {pts_text})")
            return
        pts_list = self.index.pts
        if is_pre:
            if pts < self.run.seek_pts:
                return  # leading pictures of an open GOP, before the keyframe in display order
            if self.next_decoded >= len(pts_list) or pts != pts_list[self.next_decoded]:
                self._records.put(f"decoded pts {pts} where the packet index has frame {self.next_decoded}")
            self.next_decoded += 1
            return
        if not self.pending or pts != pts_list[self.pending[0]] or self._time_base != self.index.time_base:
            self._records.put(f"output frame {n} (pts {pts}) is not the next sampled frame of the index")
            return
        self._records.put((self.pending.popleft(), self.index.seconds(pts)))


def output_size(info: VideoInfo, size: SizeSpec = SizeSpec()) -> tuple[int, int]:
    """(width, height) of the decoded frames for this video and size rule."""
    return size.output(info.width, info.height)


def select_expr(sampling: Sampling, total_frames: int | None = None) -> str | None:
    """The ``select`` filter expression for a sampling rule (None for every frame)."""
    mode, value = sampling.mode, sampling.value
    if mode == "all":
        return None
    if mode == "fps":
        f = repr(float(value))
        return (f"isnan(prev_t)+gt(floor((t-start_t)*{f}+{TICK_EPS}),floor((prev_t-start_t)*{f}+{TICK_EPS}))")
    if mode == "every":
        return f"not(mod(n,{int(value)}))"
    if total_frames is None:
        raise ValueError("uniform sampling needs total_frames")
    two_t, two_n = 2 * total_frames, 2 * int(value)
    # g(x) = how many segment middles (2k+1)T/(2N) lie below x/(2N); frame n is kept iff one lies in [n, n+1).
    return f"gt(ceil(({two_n}*(n+1)-{total_frames})/{two_t}),ceil(({two_n}*n-{total_frames})/{two_t}))"


def deinterlace_filter(info: VideoInfo, mode: str = "auto") -> str | None:
    """The ``bwdif`` filter for a deinterlace mode (see the module docstring), or None when nothing is to be done."""
    if mode not in DEINTERLACE_MODES:
        raise ConfigError(f"deinterlace must be one of {', '.join(DEINTERLACE_MODES)}, got {mode!r}")
    if mode == "on":
        return "bwdif=mode=send_frame:parity=auto:deint=all"
    if mode == "auto" and info.interlaced:
        return "bwdif=mode=send_frame:parity=auto:deint=interlaced"
    return None


def filter_chain(info: VideoInfo, sampling: Sampling, size: SizeSpec, total_frames: int | None = None, *,
                 deinterlace: str = "auto") -> str:
    """The ``-vf`` filter chain: deinterlace, showinfo/select for sampling, then rotation, scale, rgb24, crop."""
    expr = select_expr(sampling, total_frames)
    parts = [f for f in [deinterlace_filter(info, deinterlace)] if f]
    if expr is not None:
        parts += [f"showinfo@{PRE}=checksum=0", f"select='{expr}'"]
    parts.append(f"showinfo@{POST}=checksum=0")
    return ",".join(parts + geometry_filters(info, size))


def run_filter_chain(info: VideoInfo, run: SeekRun, index: FrameIndex, size: SizeSpec) -> str:
    """The ``-vf`` chain of one seek run: stop after its last frame, keep exactly its frames (by pts)."""
    wanted = [int(index.pts[t]) for t in run.targets]
    expr = "+".join(f"eq(pts,{p})" for p in wanted)
    parts = [f"trim=end_pts={wanted[-1] + 1}", f"showinfo@{PRE}=checksum=0", f"select='{expr}'",
             f"showinfo@{POST}=checksum=0"]
    return ",".join(parts + geometry_filters(info, size))


def tonemap_filters(info: VideoInfo) -> list[str]:
    """:data:`TONEMAP_FILTERS` for an HDR stream (by its transfer characteristic), else nothing.

    Needs ffmpeg's ``zscale`` (libzimg); without it the HDR stream is converted like any other and a warning says
    so."""
    if info.color_transfer not in HDR_TRANSFERS:
        return []
    if not {"zscale", "tonemap"} <= tools.filters():
        log.warning("%s: HDR (%s) converted without tone mapping: this ffmpeg has no zscale filter", info.path,
                    info.color_transfer)
        return []
    return list(TONEMAP_FILTERS)


def geometry_filters(info: VideoInfo, size: SizeSpec) -> list[str]:
    """Rotation, scale (SAR and size), HDR tone mapping, rgb24, center crop, square pixels: every chain's tail."""
    parts = list(ROTATE_FILTERS[info.rotation])
    scaled_w, scaled_h = size.target(info.width, info.height)
    parts.append(f"scale=w={scaled_w}:h={scaled_h}:flags={SCALE_FLAGS}")
    parts += tonemap_filters(info)
    parts.append("format=rgb24")
    out_w, out_h = size.output(info.width, info.height)
    if (out_w, out_h) != (scaled_w, scaled_h):
        parts.append(f"crop=w={out_w}:h={out_h}:x={(scaled_w - out_w) // 2}:y={(scaled_h - out_h) // 2}:exact=1")
    parts.append("setsar=1")
    return parts


def decode_argv(info: VideoInfo, sampling: Sampling = Sampling(), size: SizeSpec = SizeSpec(), *,
                total_frames: int | None = None, deinterlace: str = "auto", output: str = "pipe:1") -> list[str]:
    """The exact ffmpeg command :func:`decode` runs (``total_frames`` is required for uniform sampling)."""
    chain = filter_chain(info, sampling, size, total_frames, deinterlace=deinterlace)
    return _argv(info, chain, {}, output)


def run_argv(info: VideoInfo, run: SeekRun, index: FrameIndex, size: SizeSpec = SizeSpec(), *,
             output: str = "pipe:1") -> list[str]:
    """The ffmpeg command of one seek run: seek by timestamp to the run's keyframe, keep stream timestamps."""
    seek_s = Fraction(run.seek_pts) * index.time_base
    seek_at = f"{float(seek_s) + 5e-7:.6f}"  # round up to ffmpeg's microseconds: the keyframe itself is <= it
    seek = {"seek_timestamp": "1", "ss": seek_at, "noaccurate_seek": None, "copyts": None}
    return _argv(info, run_filter_chain(info, run, index, size), seek, output)


def _argv(info: VideoInfo, chain: str, input_extra: dict, output: str) -> list[str]:
    import ffmpeg as ffmpeg_python  # ffmpeg-python; imported here because it is slow to import

    placeholder = "file:vidprep-input"  # ffmpeg-python hashes its arguments as UTF-8; real paths may not be
    stream = ffmpeg_python.input(placeholder, noautorotate=None, **input_extra, **tools.input_options())
    out = stream.output(output, map="0:V:0", vf=chain, f="rawvideo", fps_mode="passthrough", an=None, sn=None,
                        dn=None)
    argv = out.compile(cmd=tools.tool_path("ffmpeg"))
    return tools.with_globals([tools.input_url(info.path) if a == placeholder else a for a in argv])


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
           deinterlace: str = "auto", seek: bool = True) -> Iterator[DecodedFrame]:
    """Decode one video into RGB frames (H, W, 3) uint8 with pts (s from the first frame) and source ordinals.

    Arguments are checked now; ffmpeg starts on the first ``next()``. ``timeout_s`` is the longest ffmpeg may go
    without any progress while vidprep waits for it (time spent waiting for a slow consumer does not count).
    ``prefetch`` frames are decoded ahead on a thread, so memory is bounded whatever the video's length.
    ``deinterlace`` is ``"auto"`` (only streams flagged interlaced), ``"on"`` or ``"off"`` (module docstring).
    ``seek=False`` always decodes sequentially (see "Sparse sampling" in the module docstring).
    Closing the iterator early (``break``, exception, Ctrl-C) kills and reaps ffmpeg.

    Raises:
        ConfigError: invalid sampling value.
        DecodeError: frame too large, ffmpeg failed or stalled, or no frame decoded.
    """
    check_request(info, sampling, size, max_pixels)
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
    argv = decode_argv(info, sampling, size, total_frames=total, deinterlace=deinterlace)
    expected = min(total, int(sampling.value)) if sampling.mode == "uniform" else None

    def sequential() -> Iterator[DecodedFrame]:
        return _frames(info.path, argv, shape, sampled=sampling.mode != "all", timeout_s=timeout_s,
                       prefetch=max(1, prefetch), expected=expected)

    if index is not None and may_seek:
        startup = startup_frames(info.coded_width * info.coded_height)
        runs = plan_runs(index, sampled_ordinals(index, sampling), startup)
        if worth_seeking(index, runs, startup):
            log.debug("%s: sampling %s by %d seeks", info.path, sampling.describe(), len(runs))
            return _seek_frames(info, index, runs, size, shape, timeout_s=timeout_s, prefetch=max(1, prefetch),
                                sequential=sequential)
    return sequential()


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
                 sequential: Callable[[], Iterator[DecodedFrame]]) -> Iterator[DecodedFrame]:
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


def _frames(path: str, argv: list[str], shape: tuple[int, int, int], *, sampled: bool, timeout_s: float,
            prefetch: int, expected: int | None) -> Iterator[DecodedFrame]:
    """The sequential decode: every frame ffmpeg outputs, then the end-of-stream checks."""
    count = 0
    stream = _stream(path, argv, shape, FrameLog(sampled=sampled), timeout_s=timeout_s, prefetch=prefetch)
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


def _stream(path: str, argv: list[str], shape: tuple[int, int, int], frame_log: FrameLog, *, timeout_s: float,
            prefetch: int) -> Generator[DecodedFrame, None, tuple[str | None, list[str]]]:
    """Run one ffmpeg process, yield its frames; returns ``(failure reason or None, stderr tail)``."""
    frames: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    nbytes = shape[0] * shape[1] * shape[2]
    proc = tools.FfmpegProcess(argv, path=path, on_line=frame_log.feed, idle_timeout_s=timeout_s,
                               pipe_size=2 * nbytes)
    reader = threading.Thread(target=_read_frames, args=(proc, frame_log, shape, frames, stop), daemon=True,
                              name="vidprep-decode")
    reader.start()
    try:
        while (item := frames.get()) is not _END:
            if isinstance(item, BaseException):
                reason = proc.failure() if isinstance(item, _StreamEnded) else None
                raise DecodeError(reason or str(item), path=path)
            yield item
        reason = proc.failure()
    finally:
        stop.set()
        proc.close()
        reader.join()
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
    result: object = _END
    try:
        while not stop.is_set():
            flat = np.empty(nbytes, dtype=np.uint8)
            got = proc.read_into(memoryview(flat))
            if got == 0:
                break
            if got < nbytes:
                raise _StreamEnded(f"ffmpeg output ended inside a frame ({got} of {nbytes} bytes)")
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
