"""Shared fixtures: tiny synthetic videos, made once per test session with ffmpeg (nothing is committed).

Number-encoded videos (see tests/videos.py) let a test check which source frame each decoded frame is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from videos import FFMPEG, encode_numbered, run

NUMBERED_FRAMES = 60
# Without an explicit encoder time base ffmpeg 5.1 encodes in 1/framerate and rounds the uneven timestamps.
ENCODE_MS = ("-enc_time_base", "1/1000", "-video_track_timescale", "1000")

if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
    pytest.exit("tests need ffmpeg and ffprobe on PATH (e.g. apt-get install -y ffmpeg)", returncode=2)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session directory holding every generated video."""
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir: Path) -> Callable[..., Path]:
    """Factory: ``make_video(name, *output_args, source=..., seconds=..., audio=...)`` -> path, made once per name.

    ``source`` is any lavfi video source (testsrc2, mandelbrot, smptebars, noise via ``nullsrc,noise=...``);
    ``output_args`` go before the output file (codec, pix_fmt, filters). The suffix of ``name`` picks the container.
    """
    made: dict[str, tuple] = {}

    def make(name: str, *output_args: str, source: str = "testsrc2=size=64x48:rate=25", seconds: float = 1.0,
             audio: bool = False) -> Path:
        key = (output_args, source, seconds, audio)
        path = video_dir / name
        if name in made:
            if made[name] != key:
                raise ValueError(f"make_video: {name!r} already made with other arguments")
            return path
        inputs = ["-f", "lavfi", "-i", source]
        if audio:
            inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
        codec = output_args or ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
        run([FFMPEG, "-nostdin", "-v", "error", "-y", *inputs, "-t", str(seconds), *codec, str(path)])
        made[name] = key
        return path

    return make


@pytest.fixture(scope="session")
def numbered_video(video_dir: Path) -> Path:
    """60 frames, 160x120, 25 fps, H.264 with B-frames; frame i shows the number i."""
    return encode_numbered(video_dir / "numbered.mp4", NUMBERED_FRAMES)


@pytest.fixture(scope="session")
def vfr_video(video_dir: Path) -> Path:
    """60 number-encoded frames with uneven gaps (30 ms growing to ~125 ms, plus a 0.5 s jump at frame 30)."""
    vf = "settb=1/1000,setpts='(0.03*N+0.0008*N*N+0.5*gte(N,30))/TB'"
    return encode_numbered(video_dir / "vfr.mp4", NUMBERED_FRAMES, vf=vf, args=ENCODE_MS)


def _copy_with(src: Path, dst: Path, args: Sequence[str]) -> Path:
    run([FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(src), "-c", "copy", *args, str(dst)])
    return dst


@pytest.fixture(scope="session")
def rotated_video(numbered_video: Path, video_dir: Path) -> Path:
    """The numbered video shown rotated 90 degrees clockwise (as phones record portrait video).

    ffmpeg 5.1's mov muxer reads the ``rotate`` tag as counter-clockwise, so ``rotate=270`` is what yields a
    display matrix that ffprobe reports as ``rotation: -90`` (clockwise 90)."""
    return _copy_with(numbered_video, video_dir / "rotated_cw90.mp4", ["-metadata:s:v", "rotate=270"])


@pytest.fixture(scope="session")
def rotated_ccw_video(numbered_video: Path, video_dir: Path) -> Path:
    """The numbered video shown rotated 90 degrees counter-clockwise (ffprobe ``rotation: 90``)."""
    return _copy_with(numbered_video, video_dir / "rotated_ccw90.mp4", ["-metadata:s:v", "rotate=90"])


@pytest.fixture(scope="session")
def offset_video(numbered_video: Path, video_dir: Path) -> Path:
    """The numbered video with timestamps starting at 10 s."""
    return _copy_with(numbered_video, video_dir / "offset.mkv", ["-output_ts_offset", "10"])


@pytest.fixture(scope="session")
def sar_video(video_dir: Path) -> Path:
    """30 number-encoded frames stored at 80x60 with SAR 2:1 (displayed 160x60)."""
    return encode_numbered(video_dir / "sar.mp4", 30, width=80, height=60, vf="setsar=2")


@pytest.fixture(scope="session")
def audio_video(make_video: Callable[..., Path]) -> Path:
    """1 s of testsrc2 with a 440 Hz sine audio track."""
    return make_video("audio.mp4", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                      audio=True)


@pytest.fixture(scope="session")
def silent_video(make_video: Callable[..., Path]) -> Path:
    """1 s of testsrc2 without audio."""
    return make_video("silent.mp4")


@pytest.fixture(scope="session")
def odd_size_video(make_video: Callable[..., Path]) -> Path:
    """17x11 pixels, H.264 4:4:4 (odd sizes catch width/height swaps and chroma rounding)."""
    return make_video("odd_17x11.mp4", "-vf", "scale=17:11,format=yuv444p", "-c:v", "libx264", "-preset", "veryfast",
                      source="testsrc2=size=34x22:rate=25")


@pytest.fixture(scope="session")
def interlaced_video(make_video: Callable[..., Path]) -> Path:
    """2 s of 25i H.264 (top field first) woven from 50p testsrc2 scrolling 6 px per field: fields comb."""
    return make_video("interlaced.mkv", "-vf", "tinterlace=interleave_top,setfield=tff", "-c:v", "libx264",
                      "-preset", "veryfast", "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme",
                      "-x264-params", "interlaced=1:tff=1", source="testsrc2=size=160x120:rate=50,scroll=h=0.04",
                      seconds=2.0)


@pytest.fixture(scope="session")
def six_videos(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six tiny videos of different sources and lengths in one directory."""
    root = tmp_path_factory.mktemp("six")
    sources = ["testsrc2", "mandelbrot", "smptebars", "testsrc", "rgbtestsrc", "yuvtestsrc"]
    for i, src in enumerate(sources):
        path = make_video(f"six_{i}.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.6 + 0.2 * i)
        os.link(path, root / f"v{i}.mp4")
    return root
