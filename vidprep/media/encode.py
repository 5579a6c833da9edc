"""Write frames out: single images (jpg/png through OpenCV) and frame-exact H.264 mp4 clips (through ffmpeg).

Every writer writes a temporary sibling (`vidprep.shards.atomic`, the one temp-name scheme cleanup knows), fsyncs
it and renames it into place, so a file under its final name is complete and on disk. Frames are uint8 RGB (H, W, 3).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidprep.errors import EncodeError
from vidprep.media import ffmpeg as tools
from vidprep.shards import atomic

log = logging.getLogger("vidprep.media.encode")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
X264_PRESET = "fast"
ENCODE_IDLE_TIMEOUT_S = 300.0


def write_image(path: str | Path, rgb: np.ndarray, *, quality: int = 95, sync_dir: bool = True) -> None:
    """Write one RGB frame as JPEG (``quality`` 1-100) or PNG (lossless), chosen by the file suffix.

    The file is fsynced before it gets its name; ``sync_dir=False`` leaves the directory fsync to a caller that
    writes many files into it."""
    import cv2  # heavy; only image writing needs it

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise EncodeError(f"unsupported image type {suffix or '(none)'}; use one of {', '.join(IMAGE_SUFFIXES)}",
                          path=str(p))
    _check_frame(rgb, str(p))
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if suffix != ".png" else []
    ok, data = cv2.imencode(suffix, np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise EncodeError(f"OpenCV could not encode {suffix}", path=str(p))
    try:
        atomic.atomic_write_bytes(p, data.tobytes(), sync_dir=sync_dir)
    except OSError as err:
        raise EncodeError(f"cannot write image: {err.strerror or err}", path=str(p)) from None


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], *, fps: float, crf: int = 15,
              sync_dir: bool = True) -> int:
    """Encode frames into a constant-frame-rate H.264 mp4, exactly one video frame per input frame.

    yuv420p when both dimensions are even, else yuv444p (4:2:0 needs even sizes). Returns the frame count. The file
    is fsynced before it gets its name (``sync_dir`` as in `write_image`).

    Raises:
        EncodeError: no frames, frames of differing shape or dtype, or ffmpeg failed.
    """
    p = Path(path).absolute()
    if not fps > 0:
        raise EncodeError(f"fps must be > 0, got {fps}", path=str(p))
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise EncodeError("no frames to write", path=str(p))
    _check_frame(first, str(p))
    with atomic.writing(p, sync_dir=sync_dir) as tmp:
        count = _encode(mp4_argv(tmp, first.shape[1], first.shape[0], fps, crf), _chain(first, it), first.shape, p)
    log.debug("%s: wrote %d frames", p, count)
    return count


def mp4_argv(path: Path, width: int, height: int, fps: float, crf: int) -> list[str]:
    """ffmpeg command reading rgb24 frames on stdin and writing an H.264 mp4 to ``path``, one frame per frame.

    swscale converts with the BT.601 matrix to limited range, and the stream is tagged so, so players (and
    :func:`vidprep.media.decode.decode`) convert back with the same matrix.
    """
    import ffmpeg as ffmpeg_python  # ffmpeg-python; imported here because it is slow to import

    rate = Fraction(fps).limit_denominator(1_001_000)
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    stream = ffmpeg_python.input("pipe:0", f="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                                 framerate=f"{rate.numerator}/{rate.denominator}", protocol_whitelist="pipe")
    out = stream.output(f"file:{path}", f="mp4", vcodec="libx264", preset=X264_PRESET, crf=int(crf),
                        pix_fmt=pix_fmt, fps_mode="passthrough", movflags="+faststart",
                        colorspace="smpte170m", color_range="tv")
    return tools.with_globals(out.compile(cmd=tools.tool_path("ffmpeg"), overwrite_output=True))


def _encode(argv: list[str], frames: Iterator[np.ndarray], shape: tuple[int, ...], p: Path) -> int:
    """Pipe frames into ffmpeg's stdin; returns how many were written.

    The idle clock only runs while ffmpeg has a frame to take, not while the caller's iterator produces the next.
    """
    count, broken = 0, False
    with tools.FfmpegProcess(argv, path=str(p), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             idle_timeout_s=ENCODE_IDLE_TIMEOUT_S) as proc:
        try:
            while True:
                with proc.paused():
                    frame = next(frames, None)
                if frame is None:
                    break
                _check_frame(frame, str(p), shape)
                proc.write(np.ascontiguousarray(frame).data)
                count += 1
            proc.close_stdin()
        except BrokenPipeError:
            broken = True  # ffmpeg died; its exit status and stderr say why
        reason = proc.failure() or ("ffmpeg stopped reading frames" if broken else None)
    if reason:
        raise EncodeError(reason, path=str(p))
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _check_frame(rgb: np.ndarray, path: str, shape: tuple[int, ...] | None = None) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        raise EncodeError(f"frames must be uint8 RGB arrays of shape (H, W, 3), got {got}", path=path)
    if shape is not None and rgb.shape != shape:
        raise EncodeError(f"all frames must have shape {shape}, got {rgb.shape}", path=path)

