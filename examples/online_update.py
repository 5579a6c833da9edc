"""Online learning on a growing directory of vidprep feature shards: update a model as each new shard appears.

What it shows: watching an output directory that a vidprep run (or many array-job tasks) is still filling; shards
appear there only when complete (written to a hidden temp name, then renamed), so a new ``shard-*.h5`` is always
safe to read. Each new shard is first used to TEST the current model (prequential evaluation: accuracy on data the
model has never seen), then to train it (``--passes`` passes, default one). After every shard the checkpoint is
written to a temp file and renamed over the old one; it holds the model, the optimizer, running feature statistics
and the list of shards consumed, so a restarted run resumes where it stopped and never trains twice on a shard.
The last line printed is ``accuracy: 0.xx``: prequential accuracy over the last ``--report-last`` shards.

Input: labelled feature shards, written shard by shard (here: two videos per shard)::

    vidprep split videos/ -o clips/ --label-from-dir --clip-frames 8 --size 112 --videos-per-shard 2
    vidprep features clips/ -o feats/ --model resnet18 --weights DEFAULT     # one feature shard per clips shard
    python examples/online_update.py feats/ --checkpoint online.pt --once           # what is there, then exit
    python examples/online_update.py feats/ --checkpoint online.pt --max-idle-seconds 600   # keep watching

Shards are known by file name: copy a shard in from elsewhere under a temp name and ``mv`` it to its final name,
as vidprep does. Features ``(N,T,D)`` are mean-pooled over T; the class list is fixed by the first shard.

Mind the order: vidprep cuts its SORTED input list into shards, so with class folders the first shards hold only
the first class, and early prequential accuracy says little. A live stream (new recordings of every class) mixes
classes within each shard; to try this on a class-sorted set, rename the shards into an interleaved order.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidprep.shards import ShardSet


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("watch_dir", type=Path, help="directory that receives feature shards (shard-*.h5)")
    p.add_argument("--checkpoint", type=Path, required=True, help="model + consumed shards; resumed when present")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="pause between looks at the directory")
    p.add_argument("--max-idle-seconds", type=float, default=None, help="exit after this long without a new shard")
    p.add_argument("--once", action="store_true", help="process the shards present now, then exit")
    p.add_argument("--passes", type=int, default=1, help="training passes over each new shard")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-last", type=int, default=3, help="shards in the final accuracy line")
    return p.parse_args(argv)


class RunningStats:
    """Per-feature mean and one overall standard deviation of every row seen so far (float64 sums).

    One scale for all features rather than one per feature: per-feature deviations estimated from the first few,
    often single-class, shards are tiny for some features and would blow them up on the next shard.
    """

    def __init__(self, dim: int, state: dict[str, Any] | None = None) -> None:
        self.n = 0 if state is None else int(state["n"])
        self.sum = np.zeros(dim) if state is None else state["sum"].numpy()
        self.sumsq = np.zeros(dim) if state is None else state["sumsq"].numpy()

    def update(self, x: np.ndarray) -> None:
        self.n += len(x)
        self.sum += x.sum(axis=0)
        self.sumsq += np.square(x, dtype=np.float64).sum(axis=0)

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """(x - mean) / scale with the statistics so far (x unchanged before any update)."""
        if self.n == 0:
            return x
        mean = self.sum / self.n
        scale = np.sqrt(max(float(np.mean(self.sumsq / self.n - mean**2)), 0.0)) + 1e-6
        return ((x - mean) / scale).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """Plain types and tensors only, so the checkpoint loads with ``torch.load(weights_only=True)``."""
        return {"n": self.n, "sum": torch.from_numpy(self.sum), "sumsq": torch.from_numpy(self.sumsq)}


class Learner:
    """A linear classifier, its optimizer, feature statistics and the history of consumed shards."""

    def __init__(self, dim: int, class_names: list[str], lr: float, seed: int) -> None:
        torch.manual_seed(seed)
        self.dim, self.class_names, self.seed = dim, class_names, seed
        self.model = nn.Linear(dim, max(2, len(class_names)))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.stats = RunningStats(dim)
        self.history: list[dict[str, Any]] = []

    @classmethod
    def load(cls, path: Path, lr: float) -> Learner:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        learner = cls(ckpt["dim"], ckpt["class_names"], lr, ckpt["seed"])
        learner.model.load_state_dict(ckpt["model"])
        learner.opt.load_state_dict(ckpt["optimizer"])
        learner.stats = RunningStats(ckpt["dim"], ckpt["stats"])
        learner.history = ckpt["history"]
        return learner

    def save(self, path: Path) -> None:
        """Write the checkpoint to a temp file next to ``path``, fsync it, and rename it over ``path``."""
        ckpt = {"dim": self.dim, "class_names": self.class_names, "seed": self.seed,
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "stats": self.stats.state(), "history": self.history}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def consumed(self) -> set[str]:
        return {h["shard"] for h in self.history}

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> int:
        """Number of rows predicted correctly by the current model."""
        logits = self.model(torch.from_numpy(self.stats.standardize(x)))
        return int((logits.argmax(dim=1).numpy() == y).sum())

    def train(self, x: np.ndarray, y: np.ndarray, passes: int, batch_size: int) -> float:
        """``passes`` shuffled passes of Adam over (x, y); returns the mean loss of the last pass."""
        xt, yt = torch.from_numpy(self.stats.standardize(x)), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(self.seed + len(self.history))
        total = 0.0
        for _ in range(passes):
            total = 0.0
            for idx in torch.randperm(len(yt), generator=gen).split(batch_size):
                loss = F.cross_entropy(self.model(xt[idx]), yt[idx])
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                total += loss.item() * len(idx)
        return total / max(len(yt), 1)


def read_shard(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labelled rows of one feature shard: features (n,D) float32 (mean over T when (n,T,D)), labels, class names."""
    with ShardSet(path) as shard:
        if shard.kind != "features":
            raise ValueError(f"{path.name} is a {shard.kind} shard, not a feature shard")
        blocks = list(shard.iter_blocks(4096))
        class_names = shard.class_names
    if not blocks:
        raise ValueError(f"{path.name} has no clip rows")
    x = np.concatenate([b["features"] for b in blocks]).astype(np.float32)
    y = np.concatenate([b["label"] for b in blocks]).astype(np.int64)
    x = x.mean(axis=1) if x.ndim == 3 else x
    return x[y >= 0], y[y >= 0], class_names


def new_shards(watch_dir: Path, consumed: set[str]) -> list[Path]:
    """Complete shards (final names only; temp names start with a dot) not consumed yet, in name order."""
    return sorted(p for p in watch_dir.glob("shard-*.h5") if p.name not in consumed)


def consume(path: Path, learner: Learner | None, args: argparse.Namespace) -> Learner | None:
    """Test the model on one new shard, then train on it and save the checkpoint; returns the (new) learner."""
    try:
        x, y, class_names = read_shard(path)
    except (OSError, ValueError) as err:  # unreadable now (e.g. still being copied in): retry on the next poll
        print(f"{path.name}: skipped for now ({err})", file=sys.stderr)
        return learner
    if learner is None:
        learner = Learner(x.shape[1], class_names, args.lr, args.seed)
    if class_names != learner.class_names or x.shape[1] != learner.dim:
        sys.exit(f"{path.name}: classes {class_names} / {x.shape[1]} features differ from the checkpoint's "
                 f"{learner.class_names} / {learner.dim}; use a new --checkpoint")
    correct = learner.evaluate(x, y)
    learner.stats.update(x)
    loss = learner.train(x, y, args.passes, args.batch_size)
    learner.history.append({"shard": path.name, "rows": len(y), "correct": correct})
    learner.save(args.checkpoint)
    acc = f"{correct / len(y):.3f}" if len(y) else "n/a"
    print(f"{path.name}: {len(y)} rows, accuracy before training {acc}, training loss {loss:.4f}", flush=True)
    return learner


def recent_accuracy(history: list[dict[str, Any]], last: int) -> float:
    """Prequential accuracy over the last ``last`` consumed shards (NaN when there is none)."""
    recent = history[-last:]
    rows = sum(h["rows"] for h in recent)
    return sum(h["correct"] for h in recent) / rows if rows else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    learner = Learner.load(args.checkpoint, args.lr) if args.checkpoint.exists() else None
    if learner is not None:
        print(f"resumed {args.checkpoint}: {len(learner.history)} shards consumed")
    idle = 0.0
    while True:
        found = new_shards(args.watch_dir, learner.consumed() if learner else set())
        for path in found:
            learner = consume(path, learner, args)
        idle = 0.0 if found else idle
        if args.once or (args.max_idle_seconds is not None and idle >= args.max_idle_seconds):
            break
        time.sleep(args.poll_seconds)
        idle += args.poll_seconds
    history = learner.history if learner else []
    print(f"accuracy: {recent_accuracy(history, args.report_last):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
