"""Read throughput (clips/s) of the HDF5 reader, `ShardIterableDataset` through a DataLoader, with 0, 2 and 4 workers.

Usage::

    python benchmarks/readers.py [--quick] [--repeats 3] [--codec raw|jpeg]

The benchmark writes its own fixed frame-shard set with `ShardWriter` (8 shards of 4 videos, 16-frame clips of
112x112 noise frames; --quick: 2 shards of 2 videos), then reads every clip once per epoch as (B,T,C,H,W) uint8
batches of 8. Two rows per worker count: the first epoch (worker start-up included) and a later epoch of the
same persistent workers (steady state). The ratio is clips/s relative to 0 workers in the same run (the machines
are shared and noisy). It compares HDF5 readers only for now: the WebDataset rows join when the tar sink exists.
Writes benchmarks/results/readers.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import report  # noqa: E402

from vidprep.shards import ShardWriter, shard_name  # noqa: E402

CLIP_FRAMES, SIZE, BATCH = 16, 112, 8


def make_shards(out: Path, shards: int, videos: int, frames: int, codec: str) -> int:
    """Write the benchmark's shards (seeded noise frames, non-overlapping clips); returns the clip count."""
    rng = np.random.default_rng(0)
    clips = 0
    for s in range(shards):
        writer = ShardWriter(out / shard_name(s), kind="frames", config={"benchmark": "readers"},
                             class_names=["a", "b"], frame_codec=codec)
        for k in range(videos):
            v = writer.add_video(f"s{s}/v{k}.mp4", f"/bench/s{s}/v{k}.mp4", {"fps": 25.0})
            rgb = rng.integers(0, 256, (frames, SIZE, SIZE, 3), dtype=np.uint8)
            writer.append_frames(v, rgb, np.arange(frames) / 25, np.arange(frames))
            for c in range(frames // CLIP_FRAMES):
                a = c * CLIP_FRAMES
                writer.add_clip(v, frame_start=a, frame_stop=a + CLIP_FRAMES, start_s=a / 25,
                                end_s=(a + CLIP_FRAMES) / 25, clip_index=c, label=k % 2)
                clips += 1
        writer.commit()
    return clips


def epochs_per_second(out: Path, workers: int, epochs: int) -> list[float]:
    """Clips/s of each epoch read by one persistent DataLoader (the first includes starting the workers)."""
    import torch

    from vidprep.shards.torch import ShardIterableDataset

    torch.set_num_threads(1)
    ds = ShardIterableDataset(out, seed=0)
    loader = ds.loader(batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        started, n = time.perf_counter(), 0
        for clips, _ in loader:
            n += clips.shape[0]
        rates.append(n / (time.perf_counter() - started))
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small set, one repeat (smoke run)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many loader runs per worker count")
    p.add_argument("--codec", choices=["raw", "jpeg"], default="raw", help="frame codec of the shards")
    args = p.parse_args(argv)
    shards, videos, frames, repeats = (2, 2, 64, 1) if args.quick else (8, 4, 128, args.repeats)
    tmp = Path(tempfile.mkdtemp(prefix="vidprep-bench-readers-"))
    try:
        clips = make_shards(tmp, shards, videos, frames, args.codec)
        rows = []
        for workers in (0, 2, 4):
            runs = [epochs_per_second(tmp, workers, 3) for _ in range(repeats)]
            rows.append({"reader": "hdf5", "workers": workers, "epoch": "first", "clips_per_s": max(r[0] for r in runs)})
            rows.append({"reader": "hdf5", "workers": workers, "epoch": "steady",
                         "clips_per_s": max(max(r[1:]) for r in runs)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = {r["epoch"]: r["clips_per_s"] for r in rows if r["workers"] == 0}
    for r in rows:
        r["ratio_vs_0_workers"] = r["clips_per_s"] / base[r["epoch"]]
    report("readers", ["reader", "workers", "epoch", "clips_per_s", "ratio_vs_0_workers"], rows,
           {"clips": clips, "clip_shape": [CLIP_FRAMES, 3, SIZE, SIZE], "batch_size": BATCH, "codec": args.codec})
    return 0


if __name__ == "__main__":
    sys.exit(main())
