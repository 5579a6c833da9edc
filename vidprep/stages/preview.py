"""Contact sheets: original frames above processed frames, one pair of rows per clip, for eyeballing a stage.

Pure: returns an RGB array; the CLI writes the PNG.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger("vidprep.stages.preview")

LABEL_HEIGHT = 16
GAP = 2
BACKGROUND = (32, 32, 32)
TEXT_COLOR = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4


def contact_sheet(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    *,
    max_frames: int = 6,
    label: tuple[str, str] = ("original", "enhanced"),
) -> np.ndarray:
    """One RGB image: per clip, a labelled row of original frames above a row of processed frames.

    Args:
        pairs: (original, processed) uint8 clips (T,H,W,3); the processed clip may have another frame count and
            size (its frames are resized to the original row's height, keeping their aspect ratio).
        max_frames: at most this many frames per row, spread evenly over the clip (first and last included).
        label: the texts drawn above the original and the processed row.

    Returns:
        uint8 (H,W,3) RGB image on a dark background.

    Raises:
        ValueError: no pairs, ``max_frames < 1``, or a clip that is not non-empty uint8 (T,H,W,3).
    """
    if not pairs:
        raise ValueError("contact_sheet needs at least one (original, processed) pair")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    rows: list[np.ndarray] = []
    for i, (original, processed) in enumerate(pairs):
        top = frame_row(original, max_frames)
        bottom = frame_row(processed, max_frames, height=top.shape[0])
        rows += [label_band(f"clip {i}: {label[0]}", top.shape[1]), top]
        rows += [label_band(f"clip {i}: {label[1]}", bottom.shape[1]), bottom]
    return stack_rows(rows)


def pick_frames(num_frames: int, max_frames: int) -> np.ndarray:
    """Indices of at most ``max_frames`` frames spread evenly over ``num_frames`` (first and last included)."""
    count = min(num_frames, max_frames)
    return np.unique(np.round(np.linspace(0, num_frames - 1, count)).astype(int))


def frame_row(clip: np.ndarray, max_frames: int, *, height: int | None = None) -> np.ndarray:
    """Frames of ``clip`` side by side with ``GAP`` pixels between, resized to ``height`` if given."""
    _check_clip(clip)
    tiles = [_resize_to_height(clip[i], height) for i in pick_frames(clip.shape[0], max_frames)]
    h = tiles[0].shape[0]
    gap = np.full((h, GAP, 3), BACKGROUND, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


def label_band(text: str, width: int) -> np.ndarray:
    """A ``LABEL_HEIGHT`` band of background with ``text`` written at its left."""
    band = np.full((LABEL_HEIGHT, max(width, 1), 3), BACKGROUND, dtype=np.uint8)
    cv2.putText(band, text, (3, LABEL_HEIGHT - 4), _FONT, _FONT_SCALE, TEXT_COLOR, 1, cv2.LINE_AA)
    return band


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of different widths one above another, padded on the right with background."""
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        pad = np.full((r.shape[0], width - r.shape[1], 3), BACKGROUND, dtype=np.uint8)
        padded.append(np.concatenate([r, pad], axis=1))
    return np.concatenate(padded, axis=0)


def _resize_to_height(frame: np.ndarray, height: int | None) -> np.ndarray:
    """``frame`` scaled to ``height`` rows with its aspect ratio kept (area filter when shrinking)."""
    h, w = frame.shape[:2]
    if height is None or height == h:
        return np.ascontiguousarray(frame)
    new_w = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame), (new_w, height), interpolation=interp)


def _check_clip(clip: np.ndarray) -> None:
    """Reject anything but a non-empty uint8 (T,H,W,3) clip."""
    ok = isinstance(clip, np.ndarray) and clip.dtype == np.uint8 and clip.ndim == 4 and clip.shape[-1] == 3
    if not ok or clip.shape[0] == 0:
        shape = getattr(clip, "shape", None)
        raise ValueError(f"expected non-empty uint8 RGB clip (T,H,W,3), got shape {shape}")
