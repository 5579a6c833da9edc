"""vidprep decode throughput as ratios to ffmpeg measured in the same run, and peak RSS against video length.

Usage::

    python benchmarks/decode.py [--quick] [--repeats 2]

Inputs (made once into benchmarks/media/): 720p30 60 s and 1080p30 30 s H.264 (testsrc2 + temporal noise, veryfast).
Cases: (a) every frame at full resolution; (b) ``fps=2``, short side 224. For each:

- ``vidprep``: frames/s of ``decode()`` into numpy arrays, in this process (ffmpeg start-up included);
- ``raw``: the very same ffmpeg argv (:func:`decode_argv`) with its rgb24 output going to /dev/null;
- ``null``: plain ``ffmpeg -i X -f null -`` (decoding only, no conversion, no scaling).

``ratio_raw`` = vidprep / raw (target >= 0.85: the Python side adds at most 15%); ``ratio_null`` = vidprep / null
(how close to pure decoding); ``cpu_ratio_raw`` = CPU seconds of raw / CPU seconds of vidprep (ffmpeg + Python),
the same comparison in work done, which other load on a shared machine disturbs far less than wall time. Rates
are source frames per second; runs are interleaved and the best of ``--repeats`` is kept, since the machine is
shared. The full-resolution case pays for moving every frame through a pipe (one kernel copy each side), which
the /dev/null baseline does not. Peak RSS: a child process decodes a 10 s and a 120 s 360p video (every frame)
and reports its own ru_maxrss; target: within 10%.

Sparse sampling (``c_sparse``): 16 frames spread over a long video (``uniform=16``) and ``fps=0.5``, at short side
224, on a 300 s 720p video with x264's default keyframe interval (250 frames) and one with a keyframe every second
(as phones record). ``speedup`` = wall time of the sequential decode (``seek=False``) / wall time of the default
decode, which seeks when its plan costs under half a full decode (:mod:`vidprep.media.seek`); ``vs_null`` = plain
``ffmpeg -f null`` of the whole file / the default decode (above 1: faster than merely decoding every frame); the
frames are checked to be identical. Writes benchmarks/results/decode.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import make_video, report  # noqa: E402

from vidprep.media.decode import decode, decode_argv  # noqa: E402
from vidprep.media.ffmpeg import tool_path  # noqa: E402
from vidprep.media.probe import count_video_packets, probe  # noqa: E402
from vidprep.types import Sampling, SizeSpec  # noqa: E402

CASES = {"a_all_full": (Sampling(), SizeSpec()), "b_fps2_224": (Sampling("fps", 2), SizeSpec(short_side=224))}
RATIO_TARGET = 0.85
RSS_TARGET = 1.10


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command whose stdout and stderr are thrown away."""
    cpu, start = cpu_seconds(), time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start, cpu_seconds() - cpu


def timed_vidprep(path: Path, sampling: Sampling, size: SizeSpec) -> tuple[float, float, int]:
    """Wall and CPU seconds (Python + ffmpeg) and frame count of decoding into numpy, in this process."""
    info = probe(path)
    cpu, start = cpu_seconds(), time.perf_counter()
    count = sum(1 for _ in decode(info, sampling, size))
    return time.perf_counter() - start, cpu_seconds() - cpu, count


def measure_case(path: Path, case: str, repeats: int) -> dict:
    """Best-of-``repeats`` rates for vidprep, the same argv to /dev/null, and ffmpeg -f null; interleaved."""
    sampling, size = CASES[case]
    info = probe(path)
    raw_argv = decode_argv(info, sampling, size)
    null_argv = [tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-i", str(path), "-f", "null", "-"]
    wall = {"vidprep": float("inf"), "raw": float("inf"), "null": float("inf")}
    cpu = dict(wall)
    out_frames = 0
    for _ in range(repeats):
        runs = {"vidprep": timed_vidprep(path, sampling, size), "raw": timed(raw_argv), "null": timed(null_argv)}
        out_frames = runs["vidprep"][2]
        for kind, run in runs.items():
            wall[kind], cpu[kind] = min(wall[kind], run[0]), min(cpu[kind], run[1])
    source_frames = count_video_packets(path)
    rates = {k: source_frames / v for k, v in wall.items()}
    return {"case": case, "video": path.name, "src_frames": source_frames, "out_frames": out_frames,
            "vidprep_fps": rates["vidprep"], "raw_fps": rates["raw"], "null_fps": rates["null"],
            "ratio_raw": rates["vidprep"] / rates["raw"], "ratio_null": rates["vidprep"] / rates["null"],
            "cpu_ratio_raw": cpu["raw"] / cpu["vidprep"], "ok": rates["vidprep"] / rates["raw"] >= RATIO_TARGET}


SPARSE_CASES = {"uniform16": Sampling("uniform", 16), "fps0.5": Sampling("fps", 0.5)}


def timed_frames(path: Path, sampling: Sampling, *, seek: bool) -> tuple[float, list]:
    """Wall seconds and frames of one decode at short side 224."""
    info = probe(path)
    start = time.perf_counter()
    frames = list(decode(info, sampling, SizeSpec(short_side=224), seek=seek))
    return time.perf_counter() - start, frames


def measure_sparse(path: Path, repeats: int) -> list[dict]:
    """Seek-planned vs sequential decode of sparse samplings, against ``ffmpeg -f null`` of the whole file."""
    null_argv = [tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-i", str(path), "-f", "null", "-"]
    null_wall = min(timed(null_argv)[0] for _ in range(repeats))
    rows = []
    for name, sampling in SPARSE_CASES.items():
        seek_wall = seq_wall = float("inf")
        for _ in range(repeats):
            wall, seek_frames = timed_frames(path, sampling, seek=True)
            seek_wall = min(seek_wall, wall)
            wall, seq_frames = timed_frames(path, sampling, seek=False)
            seq_wall = min(seq_wall, wall)
        same = [(f.index, f.pts_s) for f in seek_frames] == [(f.index, f.pts_s) for f in seq_frames] and all(
            np.array_equal(a.rgb, b.rgb) for a, b in zip(seek_frames, seq_frames))
        rows.append({"case": f"c_sparse_{name}", "video": path.name, "out_frames": len(seek_frames),
                     "seek_s": seek_wall, "sequential_s": seq_wall, "null_s": null_wall,
                     "speedup": seq_wall / seek_wall, "vs_null": null_wall / seek_wall, "ok": same})
    return rows


def rss_child(path: str) -> None:
    """(child mode) Decode every frame of ``path`` and print this process's and ffmpeg's peak RSS as JSON."""
    count = sum(1 for _ in decode(probe(path)))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ffmpeg = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"frames": count, "rss_python": own, "rss_ffmpeg": ffmpeg}))


def measure_rss(short: Path, long: Path) -> list[dict]:
    """Peak RSS of a fresh process decoding a short and a long video of the same kind."""
    rows = []
    for path in (short, long):
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(path)], capture_output=True, check=True)
        stats = json.loads(out.stdout.decode().strip().splitlines()[-1])
        rows.append({"case": "rss", "video": path.name, "out_frames": stats["frames"],
                     "rss_python_mb": stats["rss_python"] / 2**20, "rss_ffmpeg_mb": stats["rss_ffmpeg"] / 2**20})
    ratio = rows[1]["rss_python_mb"] / rows[0]["rss_python_mb"]
    rows[1].update(rss_ratio=ratio, ok=ratio <= RSS_TARGET)
    return rows


def inputs(quick: bool) -> tuple[list[Path], tuple[Path, Path]]:
    """The throughput videos and the (short, long) RSS pair, made once."""
    if quick:
        videos = [make_video("dec_720p30_6s.mp4", 1280, 720, 30, 6),
                  make_video("dec_1080p30_3s.mp4", 1920, 1080, 30, 3)]
        pair = (make_video("dec_360p30_2s.mp4", 640, 360, 30, 2),
                make_video("dec_360p30_12s.mp4", 640, 360, 30, 12))
    else:
        videos = [make_video("dec_720p30_60s.mp4", 1280, 720, 30, 60),
                  make_video("dec_1080p30_30s.mp4", 1920, 1080, 30, 30)]
        pair = (make_video("dec_360p30_10s.mp4", 640, 360, 30, 10),
                make_video("dec_360p30_120s.mp4", 640, 360, 30, 120))
    return videos, pair


def sparse_inputs(quick: bool) -> list[Path]:
    """Long 720p videos with a long (x264 default) and a 1 s keyframe interval, made once."""
    seconds = 60 if quick else 300
    return [make_video(f"dec_720p30_{seconds}s.mp4", 1280, 720, 30, seconds),
            make_video(f"dec_720p30_{seconds}s_gop30.mp4", 1280, 720, 30, seconds, gop=30)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short videos, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement, best kept (default 2)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    repeats = args.repeats or (1 if args.quick else 2)
    videos, pair = inputs(args.quick)
    rows = [measure_case(video, case, repeats) for video in videos for case in CASES]
    rows += measure_rss(*pair)
    rows += [row for video in sparse_inputs(args.quick) for row in measure_sparse(video, repeats)]
    columns = ["case", "video", "src_frames", "out_frames", "vidprep_fps", "raw_fps", "null_fps", "ratio_raw",
               "ratio_null", "cpu_ratio_raw", "rss_python_mb", "rss_ffmpeg_mb", "rss_ratio", "seek_s",
               "sequential_s", "null_s", "speedup", "vs_null", "ok"]
    report("decode", columns, rows, {"targets": {"ratio_raw": RATIO_TARGET, "rss_ratio": RSS_TARGET},
                                     "quick": args.quick, "repeats": repeats})


if __name__ == "__main__":
    main()
