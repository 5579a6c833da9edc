"""Batch clips of different sizes: a padding collate with a mask, and a default collate whose error says what to do.

Scene clips and ``--clip-seconds`` clips have different frame counts, and videos of different sizes have different
frame sizes, so torch's default collate (which stacks) cannot batch them. `pad_collate` pads every clip to the
largest T, H and W of its batch and returns a mask of the real pixels; `checked_collate` is torch's default
collate that, instead of torch's bare "stack expects each tensor to be equal size", names the shapes it met and
the ways out.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Sequence

import torch
from torch.utils.data import default_collate

log = logging.getLogger("vidprep.shards.collate")


class MixedSizesError(ValueError):
    """Clips of different shapes were put into one batch by a collate that stacks."""


def pad_collate(batch: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collate ``(clip (T,C,H,W), label)`` samples of any T, H, W into ``(clips, labels, mask)``.

    ``clips`` is (B, T_max, C, H_max, W_max) with zeros after each clip's own frames and below/right of its pixels;
    ``mask`` is (B, T_max, H_max, W_max) bool, True on real pixels; ``labels`` is (B,) int64. Feature rows
    ((D,) or (T,D)) pad along T the same way and their mask is (B, T_max).
    """
    clips = [torch.as_tensor(x) for x, _ in batch]
    labels = torch.as_tensor([int(y) for _, y in batch], dtype=torch.int64)
    if not clips:
        raise ValueError("pad_collate got an empty batch")
    if clips[0].dim() == 4:
        return _pad_frames(clips), labels, _pad_frames_mask(clips)
    return _pad_rows(clips, labels)


def _pad_frames(clips: list[torch.Tensor]) -> torch.Tensor:
    t, c, h, w = (max(x.shape[d] for x in clips) for d in range(4))
    out = clips[0].new_zeros((len(clips), t, c, h, w))
    for k, x in enumerate(clips):
        out[k, : x.shape[0], :, : x.shape[2], : x.shape[3]] = x
    return out


def _pad_frames_mask(clips: list[torch.Tensor]) -> torch.Tensor:
    t, h, w = (max(x.shape[d] for x in clips) for d in (0, 2, 3))
    mask = torch.zeros((len(clips), t, h, w), dtype=torch.bool)
    for k, x in enumerate(clips):
        mask[k, : x.shape[0], : x.shape[2], : x.shape[3]] = True
    return mask


def _pad_rows(rows: list[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Feature rows: (D,) rows stack as they are (mask all True); (T,D) rows pad along T."""
    if rows[0].dim() == 1:
        return torch.stack(rows), labels, torch.ones(len(rows), dtype=torch.bool)
    t = max(x.shape[0] for x in rows)
    out = rows[0].new_zeros((len(rows), t, *rows[0].shape[1:]))
    mask = torch.zeros((len(rows), t), dtype=torch.bool)
    for k, x in enumerate(rows):
        out[k, : x.shape[0]] = x
        mask[k, : x.shape[0]] = True
    return out, labels, mask


def checked_collate(batch: list[Any]) -> Any:
    """torch's ``default_collate``, raising `MixedSizesError` naming the shapes and the fixes when clips differ."""
    shapes = _tensor_shapes(batch)
    if len(set(shapes)) > 1:
        counts = ", ".join(f"{tuple(s)} x{n}" for s, n in sorted(Counter(shapes).items()))
        raise MixedSizesError(
            f"cannot stack clips of different shapes into one batch: {counts}. Clips differ in frame count "
            "(scene or --clip-seconds clips) or frame size (videos of different sizes). Use "
            "collate_fn=vidprep.shards.collate.pad_collate (pads T/H/W, returns clips, labels, mask), "
            "batch_size=1, a transform that resizes every clip to one shape, or split with --clip-frames and --size "
            "so all clips share one shape")
    return default_collate(batch)


def _tensor_shapes(batch: Sequence[Any]) -> list[tuple[int, ...]]:
    """Shape of the first tensor of each sample (the clip of a (clip, label) pair), when samples hold tensors."""
    shapes = []
    for sample in batch:
        first = sample[0] if isinstance(sample, (tuple, list)) and sample else sample
        if not isinstance(first, torch.Tensor):
            return []
        shapes.append(tuple(first.shape))
    return shapes
