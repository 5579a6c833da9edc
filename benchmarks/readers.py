"""Read throughput (clips/s) of vidprep's HDF5 reader vs the WebDataset reader over the same clips, with 0, 2 and 4
DataLoader workers.

Usage::

    python benchmarks/readers.py [--quick] [--repeats 3] [--codec jpeg|raw]

The benchmark writes its own fixed clip set twice: as frame shards with `ShardWriter` and as ``--format wds`` tars
with the same writer the wds sink uses (one sample per clip, one JPEG per frame, json metadata): 8 shards/tars of 4
videos, 16-frame clips of 112x112 noise frames (--quick: 2 of 2). The HDF5 frames are JPEG bytes by default
(``--codec jpeg``: both readers decode the very same JPEG files, so the rows compare the readers, not the codecs);
``--codec raw`` stores raw arrays in the shards instead. Each reader yields every clip once per epoch as
(B,T,C,H,W) uint8 batches of 8: `ShardIterableDataset.loader`, and ``webdataset.WebDataset(tars).decode("rgb8")``
-> stack -> ``.batched(8)`` in a DataLoader (``batch_size=None``; webdataset hands whole tars to workers). Two rows
per reader and worker count: the first epoch (worker start-up included) and a later epoch of the same persistent
workers (steady state). ``ratio_vs_hdf5`` is clips/s over the HDF5 reader's at the same workers and epoch (the
machines are shared and noisy). Writes benchmarks/results/readers.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import report  # noqa: E402

from vidprep.shards import ShardWriter, shard_name  # noqa: E402

CLIP_FRAMES, SIZE, BATCH = 16, 112, 8


def make_sets(out: Path, shards: int, videos: int, frames: int, codec: str) -> int:
    """Write the benchmark's shards (``out/h5``) and tars (``out/wds``) of the same seeded noise clips."""
    from vidprep.shards.jpeg import encode_jpeg
    from vidprep.shards.wds_tar import TarShardWriter, json_bytes, sample_key, tar_name

    rng = np.random.default_rng(0)
    clips = 0
    (out / "h5").mkdir()
    (out / "wds").mkdir()
    for s in range(shards):
        writer = ShardWriter(out / "h5" / shard_name(s), kind="frames", config={"benchmark": "readers"},
                             class_names=["a", "b"], frame_codec=codec)
        tar = TarShardWriter(out / "wds" / tar_name(s), "frames")
        for k in range(videos):
            vid = f"s{s}/v{k}.mp4"
            v = writer.add_video(vid, f"/bench/{vid}", {"fps": 25.0})
            rgb = rng.integers(0, 256, (frames, SIZE, SIZE, 3), dtype=np.uint8)
            writer.append_frames(v, rgb, np.arange(frames) / 25, np.arange(frames))
            for c in range(frames // CLIP_FRAMES):
                a = c * CLIP_FRAMES
                writer.add_clip(v, frame_start=a, frame_stop=a + CLIP_FRAMES, start_s=a / 25,
                                end_s=(a + CLIP_FRAMES) / 25, clip_index=c, label=k % 2)
                meta = {"video_id": vid, "clip_index": c, "aug_index": 0, "label": k % 2, "frames": CLIP_FRAMES}
                jpgs = [(f"{i:04d}.jpg", encode_jpeg(f, 90).tobytes()) for i, f in enumerate(rgb[a:a + CLIP_FRAMES])]
                tar.add_sample(sample_key(vid, c, 0), [("json", json_bytes(meta)), *jpgs], CLIP_FRAMES)
                clips += 1
        writer.commit()
        tar.commit({"video_ids": [f"s{s}/v{k}.mp4" for k in range(videos)], "input_ids": [], "errors": []})
    return clips


def wds_loader(out: Path, workers: int) -> Any:
    """The plain webdataset pipeline: decode jpgs, stack a clip as (T,C,H,W), batch 8, DataLoader over tars."""
    import torch
    import webdataset as wds

    def to_clip(sample: dict) -> tuple[np.ndarray, int]:
        frames = np.stack([sample[k] for k in sorted(sample) if k.endswith(".jpg")])
        return frames.transpose(0, 3, 1, 2), int(sample["json"]["label"])

    tars = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    ds = wds.WebDataset(tars, shardshuffle=False, empty_check=False).decode("rgb8").map(to_clip).batched(BATCH)
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)


def epochs_per_second(out: Path, reader: str, workers: int, epochs: int, expected: int) -> list[float]:
    """Clips/s of each epoch read by one persistent DataLoader (the first includes starting the workers); every
    epoch must read all ``expected`` clips exactly once in count."""
    import torch

    from vidprep.shards.torch import ShardIterableDataset

    torch.set_num_threads(1)
    ds = ShardIterableDataset(out / "h5", seed=0) if reader == "hdf5" else None
    loader = ds.loader(batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0) if ds is not None \
        else wds_loader(out / "wds", workers)
    rates = []
    for epoch in range(epochs):
        if ds is not None:
            ds.set_epoch(epoch)
        started, n = time.perf_counter(), 0
        for clips, _ in loader:
            n += clips.shape[0]
        rates.append(n / (time.perf_counter() - started))
        assert n == expected, f"{reader} with {workers} workers read {n} clips in epoch {epoch}, not {expected}"
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small set, one repeat (smoke run)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many loader runs per worker count")
    p.add_argument("--codec", choices=["jpeg", "raw"], default="jpeg", help="frame codec of the HDF5 shards")
    args = p.parse_args(argv)
    shards, videos, frames, repeats = (2, 2, 64, 1) if args.quick else (8, 4, 128, args.repeats)
    load_before = _loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="vidprep-bench-readers-"))
    try:
        clips = make_sets(tmp, shards, videos, frames, args.codec)
        rows = []
        for workers in (0, 2, 4):
            for reader in ("hdf5", "webdataset"):
                runs = [epochs_per_second(tmp, reader, workers, 3, clips) for _ in range(repeats)]
                for epoch, best in (("first", max(r[0] for r in runs)), ("steady", max(max(r[1:]) for r in runs))):
                    rows.append({"reader": reader, "workers": workers, "epoch": epoch, "clips_per_s": best})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = {(r["workers"], r["epoch"]): r["clips_per_s"] for r in rows if r["reader"] == "hdf5"}
    for r in rows:
        r["ratio_vs_hdf5"] = r["clips_per_s"] / base[r["workers"], r["epoch"]]
    report("readers", ["reader", "workers", "epoch", "clips_per_s", "ratio_vs_hdf5"], rows,
           {"clips": clips, "clip_shape": [CLIP_FRAMES, 3, SIZE, SIZE], "batch_size": BATCH, "hdf5_codec": args.codec,
            "wds_media": "jpg", "loadavg_before": load_before, "loadavg_after": _loadavg()})
    return 0


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
