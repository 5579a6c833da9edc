"""Helpers for tests that need real video files: frame-number pixels, ffmpeg/ffprobe wrappers, process checks.

Frame numbers are drawn as BITS large black/white blocks (a 5 x 2 grid, most significant bit top-left), which
survive lossy compression, resizing and chroma subsampling, so a decoded frame says which source frame it is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

BITS = 10
GRID_COLS, GRID_ROWS = 5, 2
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"


def number_frame(n: int, width: int = 160, height: int = 120) -> np.ndarray:
    """An RGB frame whose blocks spell ``n`` in binary (white = 1), with a dim gradient so codecs have work."""
    if not 0 <= n < 2**BITS:
        raise ValueError(f"frame number {n} does not fit in {BITS} bits")
    ramp = np.linspace(0, 40, width, dtype=np.float32)[None, :] + np.linspace(0, 20, height, dtype=np.float32)[:, None]
    img = np.repeat(ramp[:, :, None], 3, axis=2)
    for bit in range(BITS):
        if (n >> (BITS - 1 - bit)) & 1:
            y0, y1, x0, x1 = _cell(bit, width, height, inset=0.1)
            img[y0:y1, x0:x1] = 235
    return img.astype(np.uint8)


def read_frame_number(rgb: np.ndarray) -> int:
    """Decode the number drawn by :func:`number_frame` from an (H, W, 3) frame of any size."""
    height, width = rgb.shape[:2]
    value = 0
    for bit in range(BITS):
        y0, y1, x0, x1 = _cell(bit, width, height, inset=0.3)
        value = (value << 1) | int(rgb[y0:y1, x0:x1].mean() > 128)
    return value


def _cell(bit: int, width: int, height: int, *, inset: float) -> tuple[int, int, int, int]:
    row, col = divmod(bit, GRID_COLS)
    cw, ch = width / GRID_COLS, height / GRID_ROWS
    return (int(row * ch + inset * ch), max(int(row * ch + inset * ch) + 1, int((row + 1) * ch - inset * ch)),
            int(col * cw + inset * cw), max(int(col * cw + inset * cw) + 1, int((col + 1) * cw - inset * cw)))


def run(argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60) -> bytes:
    """Run a command, return stdout; raise with stderr's tail on failure."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def encode_numbered(path: Path, count: int, *, width: int = 160, height: int = 120, fps: int = 25,
                    vf: str | None = None, args: Sequence[str] = ()) -> Path:
    """Write ``count`` number-encoded frames as H.264 with B-frames (``vf`` may rewrite timestamps)."""
    raw = b"".join(number_frame(i, width, height).tobytes() for i in range(count))
    argv = [FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-framerate", str(fps), "-i", "pipe:0", *(["-vf", vf] if vf else []),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-bf", "3", "-g", "30", "-pix_fmt", "yuv420p",
            "-fps_mode", "passthrough", *args, str(path)]
    run(argv, stdin=raw)
    return path


def ffprobe_frames(path: str | Path) -> list[float]:
    """Presentation times (s, as in the file) of every decoded frame of the first video stream, from ffprobe.

    Uses the best-effort timestamp, which is what ffmpeg (and players) give a decoded frame."""
    out = run([FFPROBE, "-v", "error", "-select_streams", "V:0", "-show_entries",
               "frame=best_effort_timestamp_time,pts_time", "-of", "json", str(path)])
    frames = json.loads(out)["frames"]
    return [float(f.get("best_effort_timestamp_time") or f["pts_time"]) for f in frames]


def ffprobe_pict_types(path: str | Path) -> list[str]:
    """Picture type (I/P/B) of every decoded frame of the first video stream."""
    out = run([FFPROBE, "-v", "error", "-select_streams", "V:0", "-show_entries", "frame=pict_type",
               "-of", "csv=p=0", str(path)])
    return out.decode().split()


def ffmpeg_rgb(path: str | Path, width: int, height: int, *, vf: str | None = None) -> np.ndarray:
    """Every frame as (N, H, W, 3) uint8 from a plain ``ffmpeg -i path [-vf] -pix_fmt rgb24 -f rawvideo -``."""
    out = run([FFMPEG, "-nostdin", "-v", "error", "-i", str(path), *(["-vf", vf] if vf else []),
               "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def relative(times: Iterable[float]) -> list[float]:
    """Times relative to the first one."""
    times = list(times)
    return [t - times[0] for t in times]


def expected_fps_ordinals(times: Sequence[float], fps: float) -> list[int]:
    """Independent reference for fps sampling: for each tick k/fps, the first frame at or after it."""
    rel = relative(times)
    picked: list[int] = []
    tick = 0
    for i, t in enumerate(rel):
        if t >= tick / fps - 1e-7:
            picked.append(i)
            while tick / fps <= t + 1e-7:
                tick += 1
    return picked


def child_processes(name: str = "ffmpeg") -> list[tuple[int, str]]:
    """(pid, state) of this process's children called ``name`` (zombies included), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == os.getpid() and comm == name:
            found.append((int(entry.name), state))
    return found
