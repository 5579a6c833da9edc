"""Train a small CNN video classifier on vidprep frame shards and report held-out accuracy.

What it shows: reading clips of frames with `vidprep.shards.torch.ShardDataset`, holding out whole VIDEOS (never
clips of a video seen in training, so no leakage between neighbouring clips), and a tiny per-frame 2D CNN whose
frame embeddings are averaged over time. The last line printed is ``accuracy: 0.xx`` (held-out clips).

Input: frame shards with labels, one class per folder (``videos/<class>/<name>.mp4``)::

    vidprep split videos/ -o clips/ --label-from-dir --clip-frames 8 --size 64      # clips of 8 frames
    vidprep split videos/ -o frames/ --label-from-dir --fps 2 --size 64             # or single frames
    python examples/train_frame_classifier.py clips/ --epochs 10

Clips of one batch must have the same number of frames (``--clip-frames``, or single frames); with
``--clip-seconds``/``--scenes`` use ``--batch-size 1``. Frames are resized to ``--input-size`` squares, so videos of
different sizes mix. Needs h5py, numpy, torch; runs on the CPU in seconds for small sets.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from vidprep.shards import ShardSet
from vidprep.shards.torch import ShardDataset


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shard_dir", help="directory of frame shards from `vidprep split --label-from-dir`")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seeds the video split, the weights and the batch order")
    p.add_argument("--val-fraction", type=float, default=0.25, help="share of each class's videos held out")
    p.add_argument("--input-size", type=int, default=64, help="frames are resized to SIZE x SIZE")
    p.add_argument("--width", type=int, default=16, help="channels of the first conv layer (doubled per layer)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def video_labels(paths: list[str]) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """Per clip row: its video id and label; per labelled video: its label (clip columns only, no pixels)."""
    ids: list[str] = []
    labels: list[np.ndarray] = []
    for block in ShardSet(paths, frames=False).iter_blocks(4096):
        ids.extend(block["video_id"])
        labels.append(block["label"])
    label = np.concatenate(labels)
    per_video = {vid: int(y) for vid, y in zip(ids, label) if y >= 0}
    return ids, label, per_video


def split_videos(per_video: dict[str, int], fraction: float, seed: int) -> set[str]:
    """Held-out video ids: ``fraction`` of each class's videos (at least one when a class has two or more)."""
    by_class: dict[int, list[str]] = defaultdict(list)
    for vid in sorted(per_video):
        by_class[per_video[vid]].append(vid)
    rng = random.Random(seed)
    held_out: set[str] = set()
    for label in sorted(by_class):
        vids = by_class[label]
        rng.shuffle(vids)
        k = min(len(vids) - 1, max(1, round(fraction * len(vids)))) if fraction > 0 else 0
        held_out.update(vids[:k])
    return held_out


def to_input(clip: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T,C,H,W) -> float (T,C,size,size), roughly zero-mean and unit-scale."""
    x = clip.float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - 0.5) / 0.25


class ClipCNN(nn.Module):
    """Three stride-2 conv blocks applied to every frame, global average pool, mean over time, linear head."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.frames = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B,T,C,H,W) -> logits (B, num_classes)."""
        b, t = x.shape[:2]
        per_frame = self.frames(x.flatten(0, 1)).view(b, t, -1)
        return self.head(per_frame.mean(dim=1))


def train_epoch(model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, device: str) -> float:
    """One pass over ``loader``; returns the mean loss."""
    model.train()
    total, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, n = total + loss.item() * len(y), n + len(y)
    return total / max(n, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str) -> float:
    """Share of clips whose predicted class is their label."""
    model.eval()
    correct, n = 0, 0
    for x, y in loader:
        pred = model(x.to(device)).argmax(dim=1).cpu()
        correct, n = correct + int((pred == y).sum()), n + len(y)
    return correct / max(n, 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    data = ShardDataset(args.shard_dir, transform=functools.partial(to_input, size=args.input_size))
    if data.shards.kind != "frames":
        sys.exit(f"{args.shard_dir} holds {data.shards.kind} shards; this example needs frames (vidprep split)")
    ids, label, per_video = video_labels(data.shards.paths)
    held_out = split_videos(per_video, args.val_fraction, args.seed)
    if not held_out:
        sys.exit("no held-out videos: need labelled shards (--label-from-dir) and >= 2 videos per class")
    train_rows = [i for i, vid in enumerate(ids) if label[i] >= 0 and vid not in held_out]
    val_rows = [i for i, vid in enumerate(ids) if label[i] >= 0 and vid in held_out]
    num_classes = len(data.class_names) or int(label.max()) + 1
    print(f"train: {len(train_rows)} clips of {len(per_video) - len(held_out)} videos; "
          f"held out: {len(val_rows)} clips of {len(held_out)} videos; classes: {data.class_names}")

    gen = torch.Generator().manual_seed(args.seed)
    train = DataLoader(Subset(data, train_rows), batch_size=args.batch_size, shuffle=True, generator=gen,
                       num_workers=args.workers)
    val = DataLoader(Subset(data, val_rows), batch_size=args.batch_size, num_workers=args.workers)
    model = ClipCNN(num_classes, args.width).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(model, train, opt, args.device)
        accuracy = evaluate(model, val, args.device)
        print(f"epoch {epoch}/{args.epochs}  loss {loss:.4f}  held-out accuracy {accuracy:.3f}", flush=True)
    print(f"accuracy: {accuracy:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
