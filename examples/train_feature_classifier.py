"""Train a linear (or one-hidden-layer MLP) classifier on vidprep feature shards; report held-out accuracy.

What it shows: loading every feature row with `vidprep.shards.ShardSet.iter_blocks` (feature shards are small),
mean-pooling per-frame features ``(N,T,D)`` to ``(N,D)``, holding out whole VIDEOS (so clips of one video are never
on both sides), standardizing with training-set statistics, and training in a few seconds on the CPU. The last line
printed is ``accuracy: 0.xx`` (held-out clips).

Input: feature shards with labels, one class per folder (``videos/<class>/<name>.mp4``)::

    vidprep split videos/ -o clips/ --label-from-dir --clip-frames 8 --size 112
    vidprep features clips/ -o feats/ --model resnet18 --weights DEFAULT     # (N,512), frames mean-pooled
    vidprep features clips/ -o feats_t/ --model resnet18 --pool none          # or (N,T,512): pooled here
    python examples/train_feature_classifier.py feats/ --epochs 30

(``vidprep features videos/ -o feats/ --label-from-dir --model resnet18 --fps 1`` works straight from videos too.)
Without network access use ``--weights none`` (random, seeded weights) or ``--weights PATH`` to a state dict.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidprep.shards import ShardSet


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shard_dir", help="directory of feature shards from `vidprep features` (labelled)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--hidden", type=int, default=0, help="0 = linear classifier, H = MLP with H hidden units")
    p.add_argument("--seed", type=int, default=0, help="seeds the video split, the weights and the batch order")
    p.add_argument("--val-fraction", type=float, default=0.25, help="share of each class's videos held out")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def load_features(shard_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """All rows: features (N,D) float32 ((N,T,D) mean-pooled over T), labels (N,), video ids (N,), class names."""
    shards = ShardSet(shard_dir)
    if shards.kind != "features":
        sys.exit(f"{shard_dir} holds {shards.kind} shards; run `vidprep features` on it first")
    feats, labels, ids = [], [], []
    for block in shards.iter_blocks(4096):
        x = block["features"].astype(np.float32)
        feats.append(x.mean(axis=1) if x.ndim == 3 else x)
        labels.append(block["label"])
        ids.append(block["video_id"])
    return np.concatenate(feats), np.concatenate(labels), np.concatenate(ids), shards.class_names


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


def make_model(dim: int, num_classes: int, hidden: int) -> nn.Module:
    """Linear classifier, or an MLP with one hidden layer of ``hidden`` units."""
    if hidden <= 0:
        return nn.Linear(dim, num_classes)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, num_classes))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace,
          x_val: torch.Tensor, y_val: torch.Tensor) -> float:
    """Minibatch Adam for ``args.epochs`` epochs, printing the loss and held-out accuracy; returns the last one."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(y), generator=gen).split(args.batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        accuracy = evaluate(model, x_val, y_val)
        print(f"epoch {epoch}/{args.epochs}  loss {total / len(y):.4f}  held-out accuracy {accuracy:.3f}",
              flush=True)
    return accuracy


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of rows whose predicted class is their label."""
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    feats, labels, ids, class_names = load_features(args.shard_dir)
    keep = labels >= 0
    feats, labels, ids = feats[keep], labels[keep], ids[keep]
    per_video = {str(vid): int(y) for vid, y in zip(ids, labels)}
    held_out = split_videos(per_video, args.val_fraction, args.seed)
    if not held_out:
        sys.exit("no held-out videos: need labelled shards (--label-from-dir) and >= 2 videos per class")
    is_val = np.array([str(vid) in held_out for vid in ids])
    mean, std = feats[~is_val].mean(axis=0), feats[~is_val].std(axis=0) + 1e-6
    x = torch.from_numpy((feats - mean) / std).to(args.device)
    y = torch.from_numpy(labels).long().to(args.device)
    val = torch.from_numpy(is_val).to(args.device)
    print(f"train: {int((~is_val).sum())} rows of {len(per_video) - len(held_out)} videos; held out: "
          f"{int(is_val.sum())} rows of {len(held_out)} videos; {feats.shape[1]} features; classes: {class_names}")
    num_classes = len(class_names) or int(labels.max()) + 1
    model = make_model(feats.shape[1], num_classes, args.hidden).to(args.device)
    accuracy = train(model, x[~val], y[~val], args, x[val], y[val])
    print(f"accuracy: {accuracy:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
