"""`vidprep split` throughput as a ratio to the decode limit measured in the same run, and peak RSS vs length.

Usage::

    python benchmarks/split.py [--quick] [--repeats 2]

(a) one 720p30 60 s video, `--fps 2 --size 224` to shards; (b) 20 short 480p videos, `--clip-frames 16 --size 112`.
The decode limit is ffmpeg running vidprep's own decode command (same sampling and scale filters) with the rawvideo
output thrown away; the ratio is limit time / vidprep time (1.0 = vidprep adds nothing). vidprep is timed as the
real CLI in a fresh process, start-up included. Peak RSS compares a 10 s and a 120 s input (target within 10%).
Writes benchmarks/results/split.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import VIDPREP, best_of, make_video, report  # noqa: E402

from vidprep.media.decode import decode_argv  # noqa: E402
from vidprep.media.probe import probe  # noqa: E402
from vidprep.types import Sampling, SizeSpec  # noqa: E402


def decode_limit(paths: list[Path], sampling: Sampling, size: SizeSpec, repeats: int) -> float:
    """Seconds ffmpeg needs for vidprep's decode of every path, output to /dev/null."""
    total = 0.0
    for path in paths:
        argv = decode_argv(probe(path), sampling, size)  # rawvideo on stdout, which run_measured discards
        total += best_of(repeats, argv)[0]
    return total


def split_time(inputs: list[Path], args: list[str], repeats: int, executor: str) -> tuple[float, int]:
    """Wall seconds and peak RSS of the CLI on fresh output directories."""
    best, rss = float("inf"), 0
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="vidprep-bench-"))
        try:
            wall, peak = best_of(1, [*VIDPREP, "split", *map(str, inputs), "-o", str(out / "o"), *args, "-q",
                                     "--executor", executor])
        finally:
            shutil.rmtree(out, ignore_errors=True)
        best, rss = min(best, wall), max(rss, peak)
    return best, rss


def case(name: str, inputs: list[Path], seconds: float, args: list[str], sampling: Sampling, size: SizeSpec,
         repeats: int, executors: list[str]) -> list[dict]:
    limit = decode_limit(inputs, sampling, size, repeats)
    rows = []
    for executor in executors:
        wall, rss = split_time(inputs, args, repeats, executor)
        rows.append({"case": name, "executor": executor, "video_s": seconds, "decode_limit_s": limit,
                     "vidprep_s": wall, "video_s_per_s": seconds / wall, "ratio": limit / wall,
                     "peak_rss_mib": rss / 2**20})
    return rows


def rss_case(repeats: int, quick: bool) -> list[dict]:
    rows = []
    for seconds in (10, 30 if quick else 120):
        path = make_video(f"rss_{seconds}s_480p.mp4", 854, 480, 25, seconds)
        wall, rss = split_time([path], ["--size", "224"], 1, "serial")
        rows.append({"case": f"rss {seconds}s every frame", "executor": "serial", "video_s": seconds,
                     "vidprep_s": wall, "peak_rss_mib": rss / 2**20})
    rows.append({"case": "rss long/short", "ratio": rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs, one repeat (smoke run)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    long_s = 10 if args.quick else 60
    a720 = make_video(f"a720_{long_s}s.mp4", 1280, 720, 30, long_s)
    short = [make_video(f"b480_{i:02d}.mp4", 854, 480, 25, 2 if args.quick else 5) for i in range(20)]
    rows = case("a: 720p fps2 size224", [a720], long_s, ["--fps", "2", "--size", "224"], Sampling("fps", 2),
                SizeSpec(short_side=224), repeats, ["serial"])
    rows += case("b: 20x480p clip16 size112", short, 20 * (2 if args.quick else 5),
                 ["--clip-frames", "16", "--size", "112", "--videos-per-shard", "4"], Sampling(),
                 SizeSpec(short_side=112), repeats, ["serial", "process"])
    rows += rss_case(repeats, args.quick)
    report("split", ["case", "executor", "video_s", "decode_limit_s", "vidprep_s", "video_s_per_s", "ratio",
                     "peak_rss_mib"], rows, {"target": "ratio >= 0.8; rss long/short within 1.10"})


if __name__ == "__main__":
    main()
