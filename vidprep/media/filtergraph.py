"""The ffmpeg command lines of a decode: sampling, deinterlacing, geometry and colour as one ``-vf`` chain.

Pure functions of the probed :class:`VideoInfo` and the request; :mod:`vidprep.media.decode` runs them. The rules
each filter implements are described in that module's docstring.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from fractions import Fraction

from vidprep.errors import ConfigError
from vidprep.media import ffmpeg as tools
from vidprep.media.ffinput import input_url
from vidprep.media.framelog import POST, PRE
from vidprep.media.seek import TICK_EPS, FrameIndex, SeekRun
from vidprep.types import Sampling, SizeSpec, VideoInfo

log = logging.getLogger("vidprep.media.filtergraph")

SCALE_FLAGS = "bicubic"
ROTATE_FILTERS = {0: [], 90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
DEINTERLACE_MODES = ("auto", "on", "off")
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
TONEMAP_FILTERS = ("zscale=t=linear:npl=100", "format=gbrpf32le", "zscale=p=bt709", "tonemap=tonemap=mobius:desat=0",
                   "zscale=t=bt709:m=bt709:r=full", "format=gbrp")
"""HDR (PQ or HLG, BT.2020) to SDR BT.709: linear light with SDR white at 100 nits, BT.709 primaries, the mobius
curve (linear through most of the SDR range, highlights rolled off), BT.709 transfer, full-range RGB."""
HDR_ASSUMED_TAGS = (("color_primaries", "color_primaries", "bt2020"), ("color_space", "colorspace", "bt2020nc"),
                    ("color_range", "range", "tv"))
"""(VideoInfo field, ``setparams`` option, value assumed when the stream does not say): an HDR stream tagged only
by its transfer is taken as BT.2020 primaries, BT.2020 non-constant-luminance matrix and limited range, as HDR10
and HLG broadcasts are; zscale cannot convert a stream whose primaries or matrix are unknown."""


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
    """:data:`TONEMAP_FILTERS` for an HDR stream (by its transfer characteristic), else nothing; tags the stream
    leaves out are first set to :data:`HDR_ASSUMED_TAGS`.

    Needs ffmpeg's ``zscale`` (libzimg); without it the HDR stream is converted like any other and a warning says
    so."""
    if info.color_transfer not in HDR_TRANSFERS:
        return []
    if not {"zscale", "tonemap"} <= tools.filters():
        log.warning("%s: HDR (%s) converted without tone mapping: this ffmpeg has no zscale filter", info.path,
                    info.color_transfer)
        return []
    assumed = [f"{option}={value}" for field, option, value in HDR_ASSUMED_TAGS if not getattr(info, field)]
    if assumed:
        log.debug("%s: HDR stream without some colour tags; assuming %s", info.path, ", ".join(assumed))
    return ([f"setparams={':'.join(assumed)}"] if assumed else []) + list(TONEMAP_FILTERS)


def rgb_route(width: int) -> list[str]:
    """The filters between ``scale`` and ``format=rgb24``: planar ``gbrp`` when the output width is odd, else none.

    swscale writes an odd-width packed RGB output through its full-chroma path (it forces full horizontal chroma
    interpolation then), and its packed rgb24 writer is slow: decoding 480p H.264 scaled to 455x256 (a 16:9 video at
    short side 256, resnet18's decode size) costs 7.8 ms of CPU per frame that way, 5.9 ms through gbrp. The same
    full-chroma path writing planar gbrp is faster, and gbrp -> rgb24 is an exact byte shuffle, so the frames are
    byte-identical (tested against a one-step ``scale,format=rgb24`` over source formats and sizes). At even widths
    swscale takes its half-chroma path for chroma-subsampled sources, whose pixels gbrp would change, so nothing is
    inserted there."""
    return ["format=gbrp"] if width % 2 else []


def without_tonemap(info: VideoInfo) -> VideoInfo:
    """The same stream with its HDR transfer dropped, so its filter chains convert colours as for SDR (no tone
    mapping): the fallback for a stream whose tone mapping fails (see :func:`vidprep.media.decode.decode`)."""
    return dataclasses.replace(info, color_transfer="")


def geometry_filters(info: VideoInfo, size: SizeSpec) -> list[str]:
    """Rotation, scale (SAR and size), HDR tone mapping, rgb24, center crop, square pixels: every chain's tail."""
    parts = list(ROTATE_FILTERS[info.rotation])
    scaled_w, scaled_h = size.target(info.width, info.height)
    parts.append(f"scale=w={scaled_w}:h={scaled_h}:flags={SCALE_FLAGS}")
    tonemap = tonemap_filters(info)
    parts += tonemap or rgb_route(scaled_w)
    parts.append("format=rgb24")
    out_w, out_h = size.output(info.width, info.height)
    if (out_w, out_h) != (scaled_w, scaled_h):
        parts.append(f"crop=w={out_w}:h={out_h}:x={(scaled_w - out_w) // 2}:y={(scaled_h - out_h) // 2}:exact=1")
    parts.append("setsar=1")
    return parts


def decode_argv(info: VideoInfo, sampling: Sampling = Sampling(), size: SizeSpec = SizeSpec(), *,
                total_frames: int | None = None, deinterlace: str = "auto", output: str = "pipe:1",
                branches: Sequence[tuple[list[str], int]] = ()) -> list[str]:
    """The exact ffmpeg command :func:`decode` runs (``total_frames`` is required for uniform sampling).

    ``branches`` are extra outputs, each (filters after the split, file descriptor to write to): see
    :mod:`vidprep.media.branches`; without them the command is a plain ``-vf`` chain."""
    chain = filter_chain(info, sampling, size, total_frames, deinterlace=deinterlace)
    argv = _argv(info, chain, {}, output)
    if not branches:
        return argv
    return _branched(argv, chain, info, sampling, deinterlace, branches)


def _branched(argv: list[str], chain: str, info: VideoInfo, sampling: Sampling, deinterlace: str,
              branches: Sequence[tuple[list[str], int]]) -> list[str]:
    """Turn a ``-vf`` decode command into a ``-filter_complex`` one: ``split`` after the PRE showinfo (or after
    deinterlacing when every frame is kept), the main chain to ``output``, each branch to ``pipe:<fd>``."""
    parts = chain.split(",")
    head = [f for f in [deinterlace_filter(info, deinterlace)] if f]
    if sampling.mode != "all":
        head.append(f"showinfo@{PRE}=checksum=0")
    main = parts[len(head):]
    labels = [f"[vpb{i}]" for i in range(len(branches))]
    graph = [f"[0:V:0]{','.join(head + ['split=' + str(len(branches) + 1)])}[vpmain]{''.join(labels)}",
             f"[vpmain]{','.join(main)}[vpout]"]
    graph += [f"{label}{','.join(filters)}[vpo{i}]" for i, (label, (filters, _)) in enumerate(zip(labels, branches))]
    vf = argv.index("-vf")
    out = argv[:vf] + argv[vf + 2:]
    out[out.index("-map") + 1] = "[vpout]"
    out[out.index("-map"):out.index("-map")] = ["-filter_complex", ";".join(graph)]
    for i, (_, fd) in enumerate(branches):
        out += ["-map", f"[vpo{i}]", "-f", "rawvideo", "-fps_mode", "passthrough", f"pipe:{fd}"]
    return out


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
    return tools.with_globals([input_url(info.path) if a == placeholder else a for a in argv])
