"""How vidprep names an input to ffmpeg/ffprobe and what it lets them open.

Standard library only, so the CLI's launch-time prefetch (`vidprep.media.prefetch`) can start the very probe
command `vidprep.media.probe` runs later, before the rest of vidprep is imported.
"""

from __future__ import annotations

from pathlib import Path

#: Demuxers vidprep opens. Each name matches one component of a demuxer's name, e.g. ``mov`` matches
#: ``mov,mp4,m4a,3gp,3g2,mj2`` and ``matroska`` matches ``matroska,webm``. None of them reads other files or URLs.
DEMUXERS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # QuickTime / MP4 family (external data refs stay off by default)
    "matroska", "webm",
    "avi",
    "mpegts",
    "mpeg",  # MPEG program stream (.mpg, .vob)
    "mpegvideo",  # raw MPEG-1/2 elementary stream
    "flv",
    "ogg",
    "asf",  # .wmv / .asf
    "ivf",  # raw VP8/VP9/AV1 in IVF
    "h264", "hevc", "m4v",  # raw elementary streams
)
FORMAT_WHITELIST = ",".join(DEMUXERS)
PROTOCOL_WHITELIST = "file"
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .qt .3gp .3g2 .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .flv .wmv .asf .ogv .ivf".split()
)
"""File names taken as videos when a folder is listed (`vidprep.inputs`) and by the launch-time probe."""
VIDEO_PROBE: tuple[str, ...] = ("-show_streams", "-show_format", "-of", "json")
"""ffprobe's arguments for a video's metadata (`vidprep.media.probe.probe`)."""


def input_url(path: str | Path) -> str:
    """``file:`` URL of an absolute path, so names with ``:`` or a leading ``-`` never select a protocol or flag."""
    return "file:" + str(Path(path).absolute())


def input_args() -> list[str]:
    """The input restrictions as argv, to be placed before ``-i`` (or the ffprobe input)."""
    return ["-format_whitelist", FORMAT_WHITELIST, "-protocol_whitelist", PROTOCOL_WHITELIST]


def ffprobe_command(exe: str, path: str | Path, *args: str) -> list[str]:
    """ffprobe at ``exe`` reading ``path`` with the restrictions above and ``args`` before the input."""
    return [exe, "-v", "error", "-hide_banner", *input_args(), *args, input_url(path)]
