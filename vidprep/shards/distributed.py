"""Which clip rows a distributed rank and a DataLoader worker read in an epoch: pure numpy planning, no I/O.

The plan is a function of (shard sizes, seed, epoch, rank, world size) only, so every rank and every worker
computes the same global order on its own and takes its part without talking to the others:

1. **Global order** (`epoch_order`): the shards in a seeded random order (new each epoch), their rows one after
   the other, then shuffled within windows of ``shuffle_buffer`` consecutive rows. Reading stays mostly sequential
   inside a shard (HDF5 chunks are read once), while shards and rows still mix.
2. **Rank split** (`rank_positions`): rank r takes a contiguous block of the global order (again for locality).
   Block sizes differ by at most one; ``even="drop"`` drops the tail so every rank gets ``N // world`` rows,
   ``even="pad"`` repeats rows from the start of the order so every rank gets ``ceil(N / world)``. Equal counts
   matter in DDP: a rank that runs out first would wait forever in the next collective op of the others.
3. **Worker split** (`worker_positions`): the rank's rows after the resume point are cut into batches of
   ``batch_size``; worker w takes batches w, w + num_workers, ... This is the order in which a DataLoader asks its
   workers for batches, so the loader returns the rank's rows exactly in plan order (when its ``batch_size`` is
   the same), which is what makes "samples consumed" an exact resume position.
"""

from __future__ import annotations

import logging
import os
from typing import Literal, Sequence

import numpy as np

log = logging.getLogger("vidprep.shards.distributed")

EvenSplit = Literal["drop", "pad"] | None
EVEN_MODES = (None, "drop", "pad")


def dist_rank_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): the arguments when given, else torch.distributed when initialized, else the RANK and
    WORLD_SIZE environment variables (set by torchrun, SLURM wrappers, ...), else (0, 1)."""
    if rank is None or world_size is None:
        auto_rank, auto_world = _detect()
        rank = auto_rank if rank is None else rank
        world_size = auto_world if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


def _detect() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # torch is optional for this module; the environment still tells
        pass
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise ValueError(f"RANK/WORLD_SIZE environment variables must be integers: {err}") from None


def epoch_order(sizes: Sequence[int], *, seed: int, epoch: int, shuffle: bool, shuffle_buffer: int) -> np.ndarray:
    """Global row numbers (rows of all shards, numbered shard after shard) in this epoch's reading order."""
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if not shuffle:
        return np.arange(starts[-1], dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    shard_order = rng.permutation(len(sizes))
    rows = [np.arange(starts[s], starts[s + 1], dtype=np.int64) for s in shard_order]
    order = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if shuffle_buffer > 1 and len(order) > 1:
        window = np.arange(len(order)) // shuffle_buffer
        order = order[np.lexsort((rng.random(len(order)), window))]  # a random permutation inside each window
    return order


def rank_count(n: int, rank: int, world_size: int, even: EvenSplit) -> int:
    """How many rows rank ``rank`` reads of ``n``."""
    if even == "drop":
        return n // world_size
    if even == "pad":
        return -(-n // world_size) if n else 0
    return n * (rank + 1) // world_size - n * rank // world_size


def rank_positions(n: int, rank: int, world_size: int, even: EvenSplit) -> np.ndarray:
    """Positions in the global order (of length ``n``) that rank ``rank`` reads, in order."""
    if even not in EVEN_MODES:
        raise ValueError(f"even_split must be one of {EVEN_MODES}, got {even!r}")
    count = rank_count(n, rank, world_size, even)
    if even is None:
        start = n * rank // world_size
    else:
        start = rank * count
    positions = np.arange(start, start + count, dtype=np.int64)
    return positions % n if n else positions  # "pad": wrap around to the first rows


def worker_positions(count: int, skip: int, worker: int, num_workers: int, batch_size: int) -> np.ndarray:
    """Indices into the rank's ``count`` rows that worker ``worker`` reads: rows from ``skip`` on, cut into batches
    of ``batch_size``, every ``num_workers``-th batch starting at batch ``worker``."""
    rest = np.arange(min(max(skip, 0), count), count, dtype=np.int64)
    batch = (np.arange(len(rest)) // max(1, batch_size)) % max(1, num_workers)
    return rest[batch == worker]
