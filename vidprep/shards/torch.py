"""PyTorch datasets over vidprep shards (with collate.py, the only modules of vidprep.shards that import torch).

`ShardDataset` is map-style (random access, any sampler, e.g. ``DistributedSampler``); `ShardIterableDataset`
streams an epoch's rows in a seeded order split across distributed ranks and DataLoader workers, with per-epoch
shuffling, even splits for DDP and a resumable position. Collate functions for clips of different sizes are in
`vidprep.shards.collate`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from vidprep.shards.collate import checked_collate
from vidprep.shards.distributed import EVEN_MODES, EvenSplit, dist_rank_world, epoch_order, rank_count
from vidprep.shards.distributed import rank_positions, worker_positions
from vidprep.shards.reader import ShardSet, Transform

log = logging.getLogger("vidprep.shards.torch")

Paths = str | Path | Iterable[str | Path]
# Slots of ShardIterableDataset's shared-memory state tensor.
_EPOCH, _RESUME_EPOCH, _RESUME_SKIP, _POSITION, _IN_WORKER = range(5)


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
    """Streaming dataset split across distributed ranks and DataLoader workers, resumable mid-epoch.

    Each epoch has one global reading order (shards in a seeded random order, rows shuffled within windows of
    ``shuffle_buffer``), the same in every process; rank r of ``world_size`` reads a contiguous block of it, and its
    DataLoader workers take turns batch by batch (`vidprep.shards.distributed` explains the plan). So every clip is
    read exactly once per epoch across all ranks and workers, and the same (seed, epoch) gives the same order.

    Arguments:
        path: an output directory, a shard file, or a list of either.
        shuffle: False reads the shards in file order, rows in order (and ignores ``shuffle_buffer``).
        shuffle_buffer: rows are shuffled within windows of this many consecutive rows (0 or 1 = no row shuffle).
        seed: seeds the order; all ranks must use the same seed.
        batch_size: the DataLoader's batch size (set for you by `loader`). Workers take whole batches in turn, so
            the loader returns rows in plan order and a resume position in samples is exact.
        rank, world_size: default: torch.distributed when initialized (build the dataset after
            ``init_process_group``), else the RANK and WORLD_SIZE environment variables, else 0 and 1.
        even_split: None (ranks get N // world or one more), "drop" (every rank gets N // world; the last rows of
            the epoch's order are left out) or "pad" (every rank gets ceil(N / world); rows from the start of the
            order are read twice). Use one of them in DDP: equal counts per rank keep collective ops from hanging.
        transform: applied to the clip tensor (T,C,H,W) uint8 or the features tensor.
        sample: builds the sample from a `ShardSet` item dict instead (e.g. to return video ids); ``transform``
            is then not applied.
        rows: read only these global rows (numbered shard after shard, as in `ShardSet`), e.g. a training split
            that holds out whole videos; each epoch's order is the full order restricted to them.

    The epoch and the resume point live in a small shared-memory tensor made at construction: a DataLoader's
    workers get this same memory (under fork, spawn and forkserver), so `set_epoch` and `load_state_dict` reach
    ``persistent_workers=True`` workers too; each worker reads them when its iteration starts.
    """

    def __init__(self, path: Paths, *, shuffle: bool = True, shuffle_buffer: int = 1000, seed: int = 0,
                 batch_size: int = 1, rank: int | None = None, world_size: int | None = None,
                 even_split: EvenSplit = None, transform: Callable[[torch.Tensor], Any] | None = None,
                 normalization: Transform | None = None, sample: Callable[[dict[str, Any]], Any] | None = None,
                 rows: Iterable[int] | None = None) -> None:
        if even_split not in EVEN_MODES:
            raise ValueError(f"even_split must be one of {EVEN_MODES}, got {even_split!r}")
        self.shards = ShardSet(path, normalization=normalization)
        self.paths = self.shards.paths
        self.shuffle, self.shuffle_buffer, self.seed, self.batch_size = shuffle, shuffle_buffer, seed, batch_size
        self.rank, self.world_size = dist_rank_world(rank, world_size)
        self.even_split = even_split
        self.transform, self.sample = transform, sample
        self.rows = None if rows is None else np.unique(np.fromiter(rows, dtype=np.int64))
        if self.rows is not None and len(self.rows) and not 0 <= self.rows[0] <= self.rows[-1] < len(self.shards):
            raise ValueError(f"rows must be in [0, {len(self.shards)})")
        self._shared = torch.tensor([0, -1, 0, 0, 0], dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The epoch whose order the next iteration reads."""
        return int(self._shared[_EPOCH])

    def set_epoch(self, epoch: int) -> None:
        """Read the order of ``epoch`` from the next iteration on (same seed and epoch = same order)."""
        if epoch != self.epoch:
            self._shared[_EPOCH] = epoch
            self._shared[_POSITION] = 0

    def __len__(self) -> int:
        """Rows this rank reads per epoch (all its workers together)."""
        total = len(self.shards) if self.rows is None else len(self.rows)
        return rank_count(total, self.rank, self.world_size, self.even_split)

    def state_dict(self, samples_consumed: int | None = None) -> dict[str, Any]:
        """The resume position: epoch and samples of this epoch consumed by this rank (plus what must not change).

        With ``num_workers=0`` the dataset counts the samples it handed out; with workers pass
        ``samples_consumed`` (e.g. batches done x batch size): a loader's workers read ahead of the training loop.
        """
        if samples_consumed is None:
            if int(self._shared[_IN_WORKER]):
                raise ValueError("this dataset is read by DataLoader workers, which read ahead of training: pass "
                                 "state_dict(samples_consumed=N), N = samples of this epoch the loop has consumed")
            samples_consumed = int(self._shared[_POSITION])
        return {"epoch": self.epoch, "samples_consumed": int(samples_consumed), "seed": self.seed,
                "shuffle": self.shuffle, "shuffle_buffer": self.shuffle_buffer, "world_size": self.world_size,
                "rank": self.rank, "even_split": self.even_split, "num_samples": len(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at ``state``: its epoch, skipping the samples it had consumed (only in that epoch).

        Raises:
            ValueError: the state was saved with another seed, shuffle, world size, rank or split mode (the order
                or this rank's part of it would differ, so the position would mean other samples).
        """
        for key in ("seed", "shuffle", "shuffle_buffer", "world_size", "rank", "even_split"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: state was saved with {key}={state[key]!r}, "
                                 f"this dataset has {key}={getattr(self, key)!r}")
        epoch, skip = int(state["epoch"]), int(state["samples_consumed"])
        self._shared[_EPOCH], self._shared[_RESUME_EPOCH] = epoch, epoch
        self._shared[_RESUME_SKIP], self._shared[_POSITION] = skip, skip

    def loader(self, batch_size: int | None = 1, **kwargs: Any) -> DataLoader:
        """A DataLoader over this dataset with the same ``batch_size`` as the plan and `checked_collate`
        (pass ``collate_fn=pad_collate`` for clips of different sizes; ``batch_size=None`` yields single samples)."""
        self.batch_size = batch_size or 1
        if batch_size is None:
            return DataLoader(self, batch_size=None, **kwargs)
        kwargs.setdefault("collate_fn", checked_collate)
        return DataLoader(self, batch_size=batch_size, **kwargs)

    def _plan(self, worker: int, num_workers: int) -> tuple[np.ndarray, int]:
        """Global rows this worker reads this epoch, and the rank position of its first row."""
        epoch = self.epoch
        skip = int(self._shared[_RESUME_SKIP]) if int(self._shared[_RESUME_EPOCH]) == epoch else 0
        order = epoch_order(self.shards.shard_sizes, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
                            shuffle_buffer=self.shuffle_buffer)
        if self.rows is not None:
            order = order[np.isin(order, self.rows)]
        positions = rank_positions(len(order), self.rank, self.world_size, self.even_split)
        mine = worker_positions(len(positions), skip, worker, num_workers, self.batch_size)
        log.debug("rank %d/%d worker %d/%d epoch %d: %d rows from position %d", self.rank, self.world_size,
                  worker, num_workers, epoch, len(mine), skip)
        return order[positions[mine]], skip

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        rows, skip = self._plan(info.id, info.num_workers) if info else self._plan(0, 1)
        if info is not None:
            self._shared[_IN_WORKER] = 1
        else:
            self._shared[_POSITION] = skip
        for k, row in enumerate(rows.tolist()):
            item = self.shards[row]
            sample = self.sample(item) if self.sample is not None else to_sample(item, self.transform)
            if info is None:
                self._shared[_POSITION] = skip + k + 1  # counted when handed out: a state saved after using it
            yield sample
