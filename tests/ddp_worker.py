"""Code run inside the 2-process (torch.multiprocessing spawn, gloo) tests of tests/test_ddp_readers.py.

A separate small module, so spawned ranks import only this (not pytest fixtures). Each rank writes what it read
to ``<tmp>/rank<r>.json``; the test process compares the ranks.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from vidprep.shards.torch import ShardDataset, ShardIterableDataset

# A spawned rank inherits the spawn start method, so its DataLoader workers would each import torch again (many
# seconds on a busy machine); fork them instead (the spawn case has its own test in test_ddp_readers.py).
FORK = "fork"


def clip_key(item: dict[str, Any]) -> str:
    """A sample that names its clip: ``<video_id>#<clip_index>``."""
    return f"{item['video_id']}#{item['clip_index']}"


def keys_of(loader: DataLoader) -> list[str]:
    """Clip keys in the order the loader returns them (batches of strings are lists)."""
    return [k for batch in loader for k in (batch if isinstance(batch, list) else [batch])]


def even_epoch(shards: str, mode: str) -> list[str]:
    """One epoch in an even-split mode, with an all_reduce per batch as DDP does (a rank that ran out first
    would leave the other waiting forever; the group timeout turns that into an error)."""
    ds = ShardIterableDataset(shards, seed=5, batch_size=2, even_split=mode, sample=clip_key)
    seen: list[str] = []
    for batch in ds.loader(batch_size=2, num_workers=2, multiprocessing_context=FORK):
        dist.all_reduce(torch.ones(1))
        seen.extend(batch)
    return seen


def rank_main(rank: int, shards: str, out: str, init: str) -> None:
    """One rank: persistent-worker epochs, a second dataset with the same seed, even splits, DistributedSampler."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    result: dict[str, Any] = {"rank": rank, "world": dist.get_world_size()}
    ds = ShardIterableDataset(shards, seed=3, shuffle_buffer=4, sample=clip_key)
    loader = ds.loader(batch_size=2, num_workers=2, persistent_workers=True, multiprocessing_context=FORK)
    epochs = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        epochs.append(keys_of(loader))
    result["epochs"] = epochs
    result["len"] = len(ds)
    again = ShardIterableDataset(shards, seed=3, shuffle_buffer=4, sample=clip_key)
    result["again_epoch0"] = keys_of(again.loader(batch_size=2, num_workers=2, multiprocessing_context=FORK))
    result["drop"] = even_epoch(shards, "drop")
    result["pad"] = even_epoch(shards, "pad")
    mapped = ShardDataset(shards)
    sampler = DistributedSampler(mapped, shuffle=True, seed=1)
    sampler.set_epoch(1)
    result["sampler"] = [mapped.shards[i]["video_id"] + f"#{mapped.shards[i]['clip_index']}" for i in sampler]
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":  # manual run: python tests/ddp_worker.py SHARDS OUT
    torch.multiprocessing.spawn(rank_main, args=(sys.argv[1], sys.argv[2], f"file://{sys.argv[2]}/init"), nprocs=2)
