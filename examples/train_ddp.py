"""Train the frame classifier of train_frame_classifier.py with DistributedDataParallel; report held-out accuracy.

What it shows: `vidprep.shards.torch.ShardIterableDataset` in DDP. Each rank reads its own part of every epoch
(rank and world size come from the process group), ``even_split="pad"`` gives every rank the same number of
batches (so the gradient all-reduce never waits for a rank that ran out), ``set_epoch`` reshuffles each epoch,
and ``rows=`` restricts reading to the training videos. The held-out clips are evaluated by all ranks together
(each a `DistributedSampler` part of a map-style `ShardDataset`, counts summed with all_reduce).

``--batch-size`` is the global batch: each of the ``--nproc`` ranks takes ``batch_size // nproc`` clips per step,
so a run takes as many optimizer steps as the single-process example and reaches the same accuracy. It starts its
ranks itself (torch.multiprocessing spawn, gloo backend: CPU; use nccl and one GPU per rank for GPUs)::

    vidprep split videos/ -o clips/ --label-from-dir --clip-frames 8 --size 64
    python examples/train_ddp.py clips/ --nproc 2 --epochs 10

The last line printed is ``accuracy: 0.xx`` (held-out clips, all ranks together).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the single-process example, for its model and split
import train_frame_classifier as single  # noqa: E402

from vidprep.shards.torch import ShardDataset, ShardIterableDataset  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shard_dir", help="directory of frame shards from `vidprep split --label-from-dir`")
    p.add_argument("--nproc", type=int, default=2, help="ranks (processes) to start")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16, help="global batch size (split across the ranks)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seeds the video split, the weights and the batch order")
    p.add_argument("--val-fraction", type=float, default=0.25, help="share of each class's videos held out")
    p.add_argument("--input-size", type=int, default=64, help="frames are resized to SIZE x SIZE")
    p.add_argument("--width", type=int, default=16, help="channels of the first conv layer (doubled per layer)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per rank")
    return p.parse_args(argv)


def train_epoch(model: torch.nn.Module, loader: DataLoader, opt: torch.optim.Optimizer) -> float:
    """One pass over this rank's part of the epoch; returns the mean loss over all ranks."""
    model.train()
    total = torch.zeros(2)
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()  # DDP averages the gradients of all ranks here
        opt.step()
        total += torch.tensor([loss.item() * len(y), len(y)])
    dist.all_reduce(total)
    return float(total[0] / total[1].clamp(min=1))


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader) -> float:
    """Held-out accuracy over all ranks' parts."""
    model.eval()
    counts = torch.zeros(2)
    for x, y in loader:
        counts += torch.tensor([float((model(x).argmax(dim=1) == y).sum()), len(y)])
    dist.all_reduce(counts)
    return float(counts[0] / counts[1].clamp(min=1))


def rank_main(rank: int, args: argparse.Namespace, split: dict, init: str, log_path: str) -> None:
    """One rank: join the group, train with DDP, and (rank 0) write the epoch lines to ``log_path``."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=args.nproc,
                            timeout=datetime.timedelta(minutes=5))
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    transform = functools.partial(single.to_input, size=args.input_size)
    train = ShardIterableDataset(args.shard_dir, rows=split["train"], seed=args.seed, even_split="pad",
                                 transform=transform)
    per_rank = max(1, args.batch_size // args.nproc)
    # Ranks started by spawn inherit the spawn start method; forking DataLoader workers spares each a fresh torch import.
    context = "fork" if args.workers > 0 and sys.platform == "linux" else None
    train_loader = train.loader(batch_size=per_rank, num_workers=args.workers,
                                persistent_workers=args.workers > 0, multiprocessing_context=context)
    held = Subset(ShardDataset(args.shard_dir, transform=transform), split["val"])
    val_loader = DataLoader(held, batch_size=per_rank, sampler=DistributedSampler(held, shuffle=False),
                            num_workers=args.workers, multiprocessing_context=context)
    model = DistributedDataParallel(single.ClipCNN(split["classes"], args.width))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    lines = []
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        loss = train_epoch(model, train_loader, opt)
        accuracy = evaluate(model, val_loader)
        lines.append(f"epoch {epoch + 1}/{args.epochs}  loss {loss:.4f}  held-out accuracy {accuracy:.3f}")
    if rank == 0:
        Path(log_path).write_text(json.dumps({"lines": lines, "accuracy": accuracy}))
    # Every rank reaches here before any tears its group down: a rank that exits while another's gloo connection
    # to it is still in use can abort that rank ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = ShardDataset(args.shard_dir)
    if data.shards.kind != "frames":
        sys.exit(f"{args.shard_dir} holds {data.shards.kind} shards; this example needs frames (vidprep split)")
    ids, label, per_video = single.video_labels(data.shards.paths)
    held_out = single.split_videos(per_video, args.val_fraction, args.seed)
    if not held_out:
        sys.exit("no held-out videos: need labelled shards (--label-from-dir) and >= 2 videos per class")
    split = {"train": [i for i, vid in enumerate(ids) if label[i] >= 0 and vid not in held_out],
             "val": [i for i, vid in enumerate(ids) if label[i] >= 0 and vid in held_out],
             "classes": len(data.class_names) or int(label.max()) + 1}
    print(f"train: {len(split['train'])} clips; held out: {len(split['val'])} clips of {len(held_out)} videos; "
          f"{args.nproc} ranks, {max(1, args.batch_size // args.nproc)} clips per rank and step", flush=True)
    with tempfile.TemporaryDirectory(prefix="vidprep-ddp-") as tmp:
        log_path = str(Path(tmp) / "log.json")
        # Spawned ranks import the function by module name: "train_ddp" (the examples folder is on sys.path), also
        # when this file was loaded under another name (tests load it with importlib).
        import train_ddp

        torch.multiprocessing.spawn(train_ddp.rank_main, args=(args, split, f"file://{tmp}/init", log_path), nprocs=args.nproc)
        result = json.loads(Path(log_path).read_text())
    print("\n".join(result["lines"]))
    print(f"accuracy: {result['accuracy']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
