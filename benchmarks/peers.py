"""vidprep side by side with a stand-in for video_features' pipelines (benchmarks/peer_pipeline.py), same inputs.

Usage::

    python benchmarks/peers.py [--rounds 3] [--quick]

The three cases of the performance issue, each timed as a fresh process (start-up included), alternating the two
tools round by round; the table gives the median of rounds 2.. (round 1 warms the page cache) and the peak RSS:

- resnet18 at 1 fps on 720p 60 s (`vidprep features --fps 1` vs re-encode at 1 fps + OpenCV + batch-1);
- resnet18 on every frame of 480p 10 s (`--every 1` vs OpenCV + batch-1);
- r2plus1d_18 16-frame clips of 480p 10 s (vidprep's defaults: 15 fps, 16-frame clips, short side 128; and the
  same work as the peer, every frame with clip stride 16, in a second row) vs whole-video decode + batch-1 clips.

vidprep runs with its defaults (executor, threads, precision: bf16 where the CPU has it natively), weights `none`.
The ratio is peer seconds ÷ vidprep seconds (target >= 1.5 on each case). Writes benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import VIDPREP, make_video, report, run_measured  # noqa: E402

PEER = [sys.executable, str(Path(__file__).resolve().parent / "peer_pipeline.py")]


def timed(argv: list[str], out_flag: bool) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="vidprep-peers-"))
    try:
        return run_measured([*argv, *(["-o", str(out / "o"), "-q"] if out_flag else [])])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def case(name: str, vidprep_args: list[str], peer_args: list[str], rounds: int) -> dict:
    runs: dict[str, list[tuple[float, int]]] = {"vidprep": [], "peer": []}
    for _ in range(rounds):
        runs["vidprep"].append(timed([*VIDPREP, "features", *vidprep_args, "--weights", "none"], True))
        runs["peer"].append(timed([*PEER, *peer_args], False))
    kept = {k: v[1:] or v for k, v in runs.items()}
    vid = statistics.median(t for t, _ in kept["vidprep"])
    peer = statistics.median(t for t, _ in kept["peer"])
    return {"case": name, "vidprep_s": vid, "peer_s": peer, "ratio": peer / vid,
            "vidprep_rss_mib": max(r for _, r in runs["vidprep"]) / 2**20,
            "peer_rss_mib": max(r for _, r in runs["peer"]) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short inputs, two rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    a720 = make_video("a720_10s.mp4" if args.quick else "a720_60s.mp4", 1280, 720, 30, 10 if args.quick else 60)
    b480 = make_video("b480_4s.mp4" if args.quick else "b480_10s.mp4", 854, 480, 25, 4 if args.quick else 10)
    rows = [
        case("resnet18 1 fps, 720p", [str(a720), "--model", "resnet18", "--fps", "1"],
             ["resnet18", str(a720), "--fps", "1"], rounds),
        case("resnet18 every frame, 480p", [str(b480), "--model", "resnet18", "--every", "1"],
             ["resnet18", str(b480)], rounds),
        case("r2plus1d_18 clips, 480p (vidprep defaults)", [str(b480), "--model", "r2plus1d_18"],
             ["r2plus1d_18", str(b480)], rounds),
        case("r2plus1d_18 clips, 480p (same work: every frame)", [str(b480), "--model", "r2plus1d_18",
             "--every", "1", "--clip-frames", "16", "--stride", "16", "--size", "128"],
             ["r2plus1d_18", str(b480)], rounds),
    ]
    report("peers", ["case", "vidprep_s", "peer_s", "ratio", "vidprep_rss_mib", "peer_rss_mib"], rows,
           {"target": "ratio >= 1.5 on each case, memory advantage kept"})


if __name__ == "__main__":
    main()
