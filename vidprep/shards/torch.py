"""PyTorch datasets over vidprep shards; the only module of vidprep.shards that imports torch.

`ShardDataset` is map-style (random access, any sampler); `ShardIterableDataset` streams shards in a shuffled
order with a bounded shuffle buffer, each DataLoader worker taking its own subset of shards.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from vidprep.shards.reader import ShardSet, Transform

log = logging.getLogger("vidprep.shards.torch")

Paths = str | Path | Iterable[str | Path]


def to_sample(item: dict[str, Any], transform: Callable[[torch.Tensor], Any] | None) -> tuple[Any, int]:
    """(tensor, label) from a ShardSet item: frames as uint8 (T,C,H,W), else the features row."""
    if "frames" in item:
        x = torch.from_numpy(np.ascontiguousarray(item["frames"].transpose(0, 3, 1, 2)))
    else:
        x = torch.from_numpy(np.ascontiguousarray(item["features"]))
    return (transform(x) if transform is not None else x), int(item["label"])


class ShardDataset(Dataset):
    """Map-style dataset: item i is (frames uint8 tensor (T,C,H,W) or features tensor, label int).

    Safe with ``num_workers > 0`` under fork, spawn and forkserver: files open lazily in each worker.
    """

    def __init__(self, path: Paths, transform: Callable[[torch.Tensor], Any] | None = None, *,
                 normalization: Transform | None = None) -> None:
        self.shards = ShardSet(path, normalization=normalization)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return to_sample(self.shards[i], self.transform)

    @property
    def class_names(self) -> list[str]:
        """Class names stored in the shards (index = label)."""
        return self.shards.class_names


class ShardIterableDataset(IterableDataset):
    """Streaming dataset: shards in a seeded random order, split across DataLoader workers, rows shuffled within
    a buffer of ``shuffle_buffer`` items (0 or 1 = sequential). Call `set_epoch` for a new order each epoch.

    Shards are the unit of work split among workers, so use at least as many shards as workers.
    """

    def __init__(self, path: Paths, *, shuffle_buffer: int = 1000, seed: int = 0,
                 transform: Callable[[torch.Tensor], Any] | None = None,
                 normalization: Transform | None = None) -> None:
        self.paths = ShardSet(path).paths
        self.shuffle_buffer, self.seed, self.epoch = shuffle_buffer, seed, 0
        self.transform, self.normalization = transform, normalization

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffle for the next iteration (same seed and epoch = same order)."""
        self.epoch = epoch

    def shards_for_worker(self) -> list[str]:
        """This worker's shards: the seeded shard order (same in all workers), every num_workers-th one."""
        order = list(self.paths)
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        info = get_worker_info()
        mine = order if info is None else order[info.id::info.num_workers]
        log.debug("worker %s reads %d of %d shards", info.id if info else 0, len(mine), len(order))
        return mine

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        info = get_worker_info()
        rng = random.Random(self.seed * 1_000_003 + self.epoch * 1009 + (info.id + 1 if info else 0))
        buffer: list[tuple[Any, int]] = []
        for path in self.shards_for_worker():
            with ShardSet(path, normalization=self.normalization) as shard:
                for item in shard:
                    buffer.append(to_sample(item, self.transform))
                    if len(buffer) >= max(1, self.shuffle_buffer):
                        yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer
