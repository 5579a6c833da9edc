"""Small dataclasses that flow between inputs, media, stages and shards.

They hold numbers and numpy arrays only (no paths are opened here), so they pickle cheaply across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Frames per chunk between decoder (or input shard), steps and sinks: vectorized calls, bounded memory.
FRAME_CHUNK = 16

SamplingMode = Literal["all", "fps", "every", "uniform"]


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about one video, plus the display geometry vidprep will decode to.

    ``width``/``height`` are the displayed size: rotation applied and non-square pixels resampled to square.
    ``num_frames`` and ``duration_s`` come from container metadata and may lie; counts come from decoding.
    """

    path: str
    container: str
    codec: str
    pix_fmt: str
    coded_width: int
    coded_height: int
    width: int
    height: int
    rotation: int
    sar: float
    avg_fps: float
    real_fps: float
    vfr: bool
    duration_s: float | None
    start_time_s: float
    num_frames: int | None
    has_audio: bool
    bit_depth: int = 8
    has_alpha: bool = False
    interlaced: bool = False
    color_transfer: str = ""
    color_primaries: str = ""
    color_space: str = ""
    color_range: str = ""

    def to_dict(self) -> dict:
        """Plain-JSON view (for `probe --json` and shard metadata)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Sampling:
    """Which decoded frames to keep: every frame, ``fps`` (first frame at or after each tick of 1/value s),
    ``every`` (every value-th frame) or ``uniform`` (value frames spread evenly over the video)."""

    mode: SamplingMode = "all"
    value: float = 0.0

    def describe(self) -> str:
        """Human-readable form, e.g. ``fps=2``."""
        return "all" if self.mode == "all" else f"{self.mode}={self.value:g}"


@dataclass(frozen=True)
class SizeSpec:
    """Output frame size: unchanged, short side ``short_side``, or exactly ``width``x``height``;
    then an optional center crop to a ``center_crop`` square."""

    short_side: int | None = None
    width: int | None = None
    height: int | None = None
    center_crop: int | None = None

    def target(self, src_w: int, src_h: int) -> tuple[int, int]:
        """Scaled (width, height) before cropping, for a displayed source of src_w x src_h."""
        if self.width and self.height:
            return self.width, self.height
        if self.short_side:
            s = self.short_side
            if src_w <= src_h:
                return s, max(1, round(src_h * s / src_w))
            return max(1, round(src_w * s / src_h)), s
        return src_w, src_h

    def output(self, src_w: int, src_h: int) -> tuple[int, int]:
        """Final (width, height) of frames after scaling and cropping."""
        w, h = self.target(src_w, src_h)
        if self.center_crop:
            return min(w, self.center_crop), min(h, self.center_crop)
        return w, h


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: RGB pixels, presentation time (s, 0 = first decoded frame) and source ordinal."""

    rgb: np.ndarray
    pts_s: float
    index: int


@dataclass(frozen=True)
class ClipSpec:
    """A clip as a half-open range [frame_start, frame_stop) of one video's *sampled* frames.

    ``padded`` counts trailing rows that repeat the last real frame (``--tail pad``).
    """

    clip_index: int
    frame_start: int
    frame_stop: int
    start_s: float
    end_s: float
    padded: int = 0

    @property
    def num_frames(self) -> int:
        """Frames in the clip, padding included."""
        return self.frame_stop - self.frame_start + self.padded


def pad_tail(a: np.ndarray, padded: int) -> np.ndarray:
    """Append ``padded`` copies of the last row: a clip padded at a video's tail (``--tail pad``) repeats its last
    frame (and that frame's features)."""
    return np.concatenate([a, np.repeat(a[-1:], padded, axis=0)]) if padded > 0 and len(a) else a


@dataclass
class ClipRow:
    """One output clip row: a range of a frame run plus where it came from (before features are attached)."""

    frame_start: int
    frame_stop: int
    padded: int
    start_s: float
    end_s: float
    clip_index: int
    aug_index: int = 0
    label: int = -1
    aug_params: dict | None = None
    features: np.ndarray | None = None
    quality: dict[str, float] | None = None
    phash: np.ndarray | None = None
    extra: dict[str, np.ndarray] | None = None  # further per-clip arrays a step adds (e.g. zero-shot scores)


@dataclass
class VideoResult:
    """What processing one video produced, reported back to the driver (small; no pixels)."""

    video_id: str | None  # None: the failure of a whole input shard (no one video)
    path: str
    frames: int = 0
    clips: int = 0
    error: str | None = None
    error_type: str | None = None
    stage: str | None = None
