"""Distributed readers: ranks x workers split, per-epoch shuffles, even splits, set_epoch with persistent workers,
resume from a state dict, DistributedSampler over ShardDataset, and the collates for clips of different sizes.

The truth is the set of clips written (each clip named by its video id and clip index): every epoch must read each
exactly once across ranks and workers. The 2-process run is real: torch.multiprocessing spawn, gloo backend.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import ddp_worker
from ddp_worker import clip_key, keys_of
from vidprep.shards import ShardSet, ShardWriter, shard_name
from vidprep.shards.collate import MixedSizesError, checked_collate, pad_collate
from vidprep.shards.torch import ShardDataset, ShardIterableDataset

CLIPS = {"a.mp4": 5, "b.mp4": 4, "c.mp4": 6, "d.mp4": 3, "e.mp4": 5}  # 23 clips: odd, so ranks differ by one
ALL = sorted(f"{v}#{c}" for v, n in CLIPS.items() for c in range(n))


def write_shard(path: Path, videos: dict[str, tuple[int, int, int]]) -> Path:
    """A frame shard: video id -> (clips, height, width); clip c of a video is frames [c, c+1] (frame c's
    pixels hold c); the clip count also sets the frames (clips + 1)."""
    w = ShardWriter(path, kind="frames", config={"split": {"clip_frames": 2}}, class_names=["x", "y"])
    for k, (vid, (n, h, wd)) in enumerate(videos.items()):
        v = w.add_video(vid, f"/src/{vid}", {"fps": 10.0, "width": wd, "height": h})
        frames = np.stack([np.full((h, wd, 3), i, np.uint8) for i in range(n + 1)])
        w.append_frames(v, frames, np.arange(n + 1) / 10, np.arange(n + 1))
        for c in range(n):
            w.add_clip(v, frame_start=c, frame_stop=c + 2, start_s=c / 10, end_s=(c + 2) / 10, clip_index=c,
                       label=k % 2)
    return w.commit().path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three shards of 2, 2 and 1 videos (23 clips of 2 frames, 6x8 pixels)."""
    out = tmp_path_factory.mktemp("ddp_shards")
    names = list(CLIPS)
    for k, group in enumerate((names[:2], names[2:4], names[4:])):
        write_shard(out / shard_name(k), {v: (CLIPS[v], 6, 8) for v in group})
    return out


def test_every_worker_and_rank_plan_covers_each_clip_once(shards: Path) -> None:
    """Without processes: rank x worker plans (any batch size) partition each epoch."""
    for world, workers, batch in ((1, 1, 1), (2, 2, 2), (3, 2, 4), (4, 3, 1)):
        seen = []
        for rank in range(world):
            ds = ShardIterableDataset(shards, seed=1, rank=rank, world_size=world, batch_size=batch,
                                      sample=clip_key)
            for w in range(workers):
                seen += [clip_key(ds.shards[int(r)]) for r in ds._plan(w, workers)[0]]
        assert sorted(seen) == ALL, (world, workers, batch)


@pytest.fixture(scope="module")
def ddp_run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two spawned ranks (gloo) reading the shards; what each read (see tests/ddp_worker.py)."""
    out = tmp_path_factory.mktemp("ddp_run")
    torch.multiprocessing.spawn(ddp_worker.rank_main, args=(str(shards), str(out), f"file://{out}/init"), nprocs=2)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_ranks_read_each_clip_exactly_once_per_epoch(ddp_run: list[dict]) -> None:
    assert [r["world"] for r in ddp_run] == [2, 2] and [r["rank"] for r in ddp_run] == [0, 1]
    assert sorted(r["len"] for r in ddp_run) == [11, 12]
    for epoch in range(3):
        per_rank = [r["epochs"][epoch] for r in ddp_run]
        assert sorted(per_rank[0] + per_rank[1]) == ALL, epoch
        assert sorted(len(x) for x in per_rank) == [11, 12]


def test_shuffles_differ_between_epochs_and_repeat_for_the_seed(ddp_run: list[dict]) -> None:
    orders = [ddp_run[0]["epochs"][e] + ddp_run[1]["epochs"][e] for e in range(3)]
    assert len({tuple(o) for o in orders}) == 3
    assert [r["again_epoch0"] for r in ddp_run] == [r["epochs"][0] for r in ddp_run]


def test_persistent_workers_follow_set_epoch_and_return_plan_order(ddp_run: list[dict], shards: Path) -> None:
    """The persistent loader's epoch e equals a single-process read of epoch e (in order), so set_epoch reached
    the workers and the loader returns rows in the plan's order."""
    for r in ddp_run:
        for epoch in range(3):
            ds = ShardIterableDataset(shards, seed=3, shuffle_buffer=4, rank=r["rank"], world_size=2,
                                      sample=clip_key)
            ds.set_epoch(epoch)
            assert list(ds) == r["epochs"][epoch]


def test_even_split_gives_equal_counts(ddp_run: list[dict]) -> None:
    drop, pad = [r["drop"] for r in ddp_run], [r["pad"] for r in ddp_run]
    assert [len(x) for x in drop] == [11, 11] and len(set(drop[0] + drop[1])) == 22
    assert set(drop[0] + drop[1]) < set(ALL)
    assert [len(x) for x in pad] == [12, 12] and sorted(set(pad[0] + pad[1])) == ALL
    assert sorted(Counter(pad[0] + pad[1]).values()) == [1] * 22 + [2]


def test_distributed_sampler_over_shard_dataset(ddp_run: list[dict], shards: Path) -> None:
    got = [r["sampler"] for r in ddp_run]
    assert len(got[0]) == len(got[1]) == 12 and sorted(set(got[0] + got[1])) == ALL
    ds = ShardDataset(shards)
    for rank in range(2):  # the same split without a process group: the sampler only needs rank and replicas
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=1)
        sampler.set_epoch(1)
        assert [clip_key(ds.shards[i]) for i in sampler] == got[rank]


@pytest.mark.parametrize("workers", [0, 2])
def test_state_dict_resume_continues_where_it_stopped(shards: Path, workers: int) -> None:
    def make() -> ShardIterableDataset:
        return ShardIterableDataset(shards, seed=9, shuffle_buffer=3, rank=1, world_size=2, sample=clip_key)

    full = make()
    full.set_epoch(2)
    whole = list(full)
    ds = make()
    ds.set_epoch(2)
    loader = ds.loader(batch_size=2, num_workers=workers)
    consumed: list[str] = []
    for batch in loader:
        consumed += batch
        if len(consumed) == 6:
            break
    state = ds.state_dict() if workers == 0 else ds.state_dict(samples_consumed=len(consumed))
    assert state["epoch"] == 2 and state["samples_consumed"] == 6
    resumed = make()
    resumed.load_state_dict(json.loads(json.dumps(state)))  # a state survives JSON (checkpoints)
    rest = keys_of(resumed.loader(batch_size=2, num_workers=workers))
    assert consumed + rest == whole
    resumed.set_epoch(3)  # the next epoch is read whole again
    fresh = make()
    fresh.set_epoch(3)
    assert keys_of(resumed.loader(batch_size=2, num_workers=workers)) == list(fresh) and len(fresh) == 12


def test_state_dict_refuses_another_world_and_guesses_nothing_with_workers(shards: Path) -> None:
    ds = ShardIterableDataset(shards, rank=0, world_size=2, sample=clip_key)
    with pytest.raises(ValueError, match="world_size=2"):
        ShardIterableDataset(shards, rank=0, world_size=4).load_state_dict(ds.state_dict())
    list(ds.loader(batch_size=2, num_workers=1))
    with pytest.raises(ValueError, match="samples_consumed"):
        ds.state_dict()


def test_rank_and_world_from_environment(shards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = ShardIterableDataset(shards)
    assert (ds.rank, ds.world_size, len(ds)) == (2, 3, 8)  # 23 * 3 // 3 - 23 * 2 // 3
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="rank 3"):
        ShardIterableDataset(shards)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clips of different frame sizes (6x8 and 4x10) and frame counts (2, plus a 3-frame clip)."""
    out = tmp_path_factory.mktemp("mixed")
    path = write_shard(out / shard_name(0), {"small.mp4": (2, 6, 8), "wide.mp4": (1, 4, 10)})
    w = ShardWriter(out / shard_name(1), kind="frames", config={}, class_names=["x", "y"])
    v = w.add_video("long.mp4", "/src/long.mp4", {})
    w.append_frames(v, np.full((3, 5, 5, 3), 7, np.uint8), np.arange(3) / 10, np.arange(3))
    w.add_clip(v, frame_start=0, frame_stop=3, start_s=0, end_s=0.3, clip_index=0, label=1)
    w.commit()
    return path.parent


def test_pad_collate_pads_to_the_largest_clip_with_a_mask(mixed: Path) -> None:
    ds = ShardDataset(mixed)
    clips, labels, mask = next(iter(DataLoader(ds, batch_size=4, collate_fn=pad_collate)))
    assert clips.shape == (4, 3, 3, 6, 10) and clips.dtype == torch.uint8 and labels.tolist() == [0, 0, 1, 1]
    assert mask.shape == (4, 3, 6, 10)
    for k in range(4):
        x, _ = ds[k]
        t, _, h, w = x.shape
        assert torch.equal(clips[k, :t, :, :h, :w], x)
        assert int(mask[k].sum()) == t * h * w and bool(mask[k, :t, :h, :w].all())
        assert int(clips[k].sum()) == int(x.sum())  # zeros outside


def test_pad_collate_feature_rows() -> None:
    x, y, m = pad_collate([(torch.ones(2, 3), 0), (torch.ones(4, 3), 1)])
    assert x.shape == (2, 4, 3) and m.tolist() == [[True, True, False, False], [True] * 4] and y.tolist() == [0, 1]


def test_mixed_sizes_error_names_shapes_and_fix(mixed: Path) -> None:
    loader = ShardIterableDataset(mixed, shuffle=False).loader(batch_size=4)
    with pytest.raises(MixedSizesError) as err:
        next(iter(loader))
    text = str(err.value)
    assert "(2, 3, 6, 8) x2" in text and "(2, 3, 4, 10) x1" in text and "(3, 3, 5, 5) x1" in text
    assert re.search(r"pad_collate", text) and "batch_size=1" in text
    same = checked_collate([(torch.zeros(2, 3, 4, 4), 0), (torch.zeros(2, 3, 4, 4), 1)])
    assert same[0].shape == (2, 2, 3, 4, 4)
    assert len(ShardSet(mixed)) == 4


def test_rows_restrict_every_epoch_to_a_split(shards: Path) -> None:
    full = ShardSet(shards)
    keep = [i for i in range(len(full)) if full[i]["video_id"] != "c.mp4"]  # hold out one whole video
    want = sorted(k for k in ALL if not k.startswith("c.mp4"))
    for epoch in range(2):
        seen = []
        for rank in range(2):
            ds = ShardIterableDataset(shards, rows=keep, rank=rank, world_size=2, even_split="pad", sample=clip_key)
            ds.set_epoch(epoch)
            assert len(ds) == 9
            seen += keys_of(ds.loader(batch_size=2, num_workers=0))
        assert len(seen) == 18 and sorted(set(seen)) == want
    with pytest.raises(ValueError, match="rows"):
        ShardIterableDataset(shards, rows=[len(full)])


def test_set_epoch_reaches_persistent_spawn_workers(shards: Path) -> None:
    """The shared epoch also reaches workers started with spawn (the dataset is pickled to them)."""
    ds = ShardIterableDataset(shards, seed=4, sample=clip_key)
    loader = ds.loader(batch_size=3, num_workers=2, persistent_workers=True, multiprocessing_context="spawn")
    for epoch in (0, 1, 5):
        ds.set_epoch(epoch)
        plain = ShardIterableDataset(shards, seed=4, sample=clip_key)
        plain.set_epoch(epoch)
        assert keys_of(loader) == list(plain), epoch
