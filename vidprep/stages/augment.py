"""Clip-consistent random augmentation: one parameter draw per clip, the same transform on every frame.

The pattern is torchvision v2's ``make_params`` / ``transform``: :func:`make_params` draws an :class:`AugParams`
for a clip, :func:`apply_params` applies it to every frame. Geometry (rotation, scale, crop or resized crop,
horizontal flip) is folded into one affine matrix and applied with one ``cv2.warpAffine`` per frame, so pixels are
resampled once; color jitter uses albumentations' torchvision-compatible functional ops (albumentations is imported
only when color jitter is on, because importing it also imports torch).

``A.Compose([...], seed=...)(images=clip)`` does apply one draw to every frame (checked with albumentations
2.0.8), but drawing the parameters here keeps them explicit and JSON-able for the shard, avoids building a seeded
Compose per clip, and resamples once instead of once per geometric transform.

Rules (recorded by :meth:`Augmenter.describe`):

- **Copies.** ``aug_index`` 0 always means the unaugmented clip. Augmented copies are numbered 1..K (``copies``)
  whether or not ``keep_original`` is set; ``keep_original`` only adds copy 0. So an ``aug_index`` means the same
  draw in every run with the same seed, and ``aug_index > 0`` selects exactly the augmented rows.
- **Seeds.** The random stream of a copy is a pure function of (seed, video_id, clip_index, copy_index): a 128-bit
  BLAKE2b hash of their JSON form seeds a numpy ``SeedSequence`` (never Python's salted ``hash()``), so results
  do not depend on process, worker count or order. Each option draws from its own child stream, so turning one
  option on does not change the values drawn for the others.
- **Order and geometry.** Rotate by ``angle`` (degrees, positive = counter-clockwise, as in OpenCV and
  torchvision) and zoom by ``scale`` (> 1 enlarges the content) about the frame center, on a canvas the size of
  the input; then crop; then flip the output horizontally. ``scale`` is drawn uniformly from MIN:MAX.
- **Borders.** Pixels from outside the frame (rotation corners, zoom-out, crops larger than the frame) are
  filled by reflection (``BORDER_REFLECT_101``): black wedges whose shape follows the angle would be an easy cue
  for a model to learn.
- **Crop.** ``crop`` N or WxH gives exactly that output size. A plain crop is a random window of the canvas; on an
  axis where the frame is smaller than the crop, the window is centered and the frame extended by reflection
  (same rule as above) rather than failing or silently returning a smaller clip. ``random_resized_crop`` picks a
  box of 8-100 % of the canvas area with aspect ratio in [3/4, 4/3] (torchvision's defaults and fallback) and
  resizes it to the crop size. Without ``crop`` the output keeps the input size.
- **Color jitter** ``B,C,S,H``: factors drawn as torchvision does (brightness, contrast, saturation in
  [max(0, 1 - v), 1 + v], hue shift in [-H, H] of a full turn), applied in a random order drawn once per clip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from vidprep.config import AugmentConfig, crop_size, parse_pair

log = logging.getLogger("vidprep.stages.augment")

BORDER = cv2.BORDER_REFLECT_101
RRC_AREA = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_ATTEMPTS = 10
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
_STREAMS = ("geometry", "crop", "flip", "color")


@dataclass(frozen=True)
class AugParams:
    """The parameters of one augmented copy of a clip (identity by default).

    ``box`` is the crop window (x, y, w, h) on the rotated/scaled canvas, None for the whole canvas; ``size`` the
    output (width, height), None for the input size; ``order`` the order of the color jitter operations.
    """

    angle: float = 0.0
    scale: float = 1.0
    flip: bool = False
    box: tuple[float, float, float, float] | None = None
    size: tuple[int, int] | None = None
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    order: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (lists instead of tuples)."""
        d = asdict(self)
        for key in ("box", "size", "order"):
            d[key] = None if d[key] is None else list(d[key])
        return d


def clip_entropy(seed: int, video_id: str, clip_index: int, copy_index: int) -> int:
    """A 128-bit integer that depends only on its arguments (stable across processes and Python versions)."""
    key = json.dumps([int(seed), str(video_id), int(clip_index), int(copy_index)]).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big")


def clip_rngs(entropy: int) -> dict[str, np.random.Generator]:
    """One independent generator per option group, all derived from ``entropy``."""
    children = np.random.SeedSequence(entropy).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def make_params(cfg: AugmentConfig, width: int, height: int, rngs: dict[str, np.random.Generator]) -> AugParams:
    """Draw the parameters of one copy of a ``width`` x ``height`` clip."""
    geo = rngs["geometry"]
    angle = float(geo.uniform(-cfg.rotate, cfg.rotate)) if cfg.rotate else 0.0
    scale = float(geo.uniform(*parse_pair(cfg.scale, ":", "scale"))) if cfg.scale else 1.0
    flip = bool(rngs["flip"].random() < cfg.hflip) if cfg.hflip else False
    box, size = _draw_crop(cfg, width, height, rngs["crop"])
    jitter = _draw_jitter(cfg.color_jitter, rngs["color"]) if cfg.color_jitter else {}
    return AugParams(angle=angle, scale=scale, flip=flip, box=box, size=size, **jitter)


def _draw_crop(
    cfg: AugmentConfig, width: int, height: int, rng: np.random.Generator
) -> tuple[tuple[float, float, float, float] | None, tuple[int, int] | None]:
    """The crop window on the canvas and the output size (None, None without ``crop``)."""
    if not cfg.crop:
        return None, None
    cw, ch = crop_size(cfg.crop)
    if cfg.random_resized_crop:
        return rrc_box(width, height, rng), (cw, ch)
    return (_crop_start(width, cw, rng), _crop_start(height, ch, rng), float(cw), float(ch)), (cw, ch)


def _crop_start(length: int, crop: int, rng: np.random.Generator) -> float:
    """Random window start on one axis; centered (reaching outside the frame) when the crop is longer."""
    if length >= crop:
        return float(rng.integers(0, length - crop + 1))
    return float(-((crop - length) // 2))


def rrc_box(width: int, height: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """torchvision's RandomResizedCrop box: area and log-aspect drawn uniformly, center-crop fallback."""
    area = width * height
    log_lo, log_hi = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
    for _ in range(RRC_ATTEMPTS):
        target = area * rng.uniform(*RRC_AREA)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return float(rng.integers(0, width - w + 1)), float(rng.integers(0, height - h + 1)), float(w), float(h)
    ratio = width / height
    w, h = width, height
    if ratio < RRC_RATIO[0]:
        h = round(width / RRC_RATIO[0])
    elif ratio > RRC_RATIO[1]:
        w = round(height * RRC_RATIO[1])
    return float((width - w) // 2), float((height - h) // 2), float(w), float(h)


def _draw_jitter(spec: str, rng: np.random.Generator) -> dict[str, Any]:
    """Color jitter factors and their order, drawn as torchvision's ColorJitter does."""
    b, c, s, h = (float(p) for p in spec.split(","))
    ranges = {"brightness": b, "contrast": c, "saturation": s}
    out: dict[str, Any] = {k: float(rng.uniform(max(0.0, 1.0 - v), 1.0 + v)) for k, v in ranges.items() if v > 0}
    if h > 0:
        out["hue"] = float(rng.uniform(-h, h))
    active = {**ranges, "hue": h}
    out["order"] = tuple(JITTER_OPS[i] for i in rng.permutation(len(JITTER_OPS)) if active[JITTER_OPS[i]] > 0)
    return out


def geometry_matrix(params: AugParams, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The 2x3 matrix mapping output pixels to input pixels, and the output (width, height)."""
    out_w, out_h = params.size or (width, height)
    x, y, bw, bh = params.box or (0.0, 0.0, float(width), float(height))
    sx, sy = bw / out_w, bh / out_h
    flip = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if params.flip else np.eye(3)
    crop = np.array([[sx, 0.0, x + 0.5 * sx - 0.5], [0.0, sy, y + 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    rotate = np.vstack([cv2.getRotationMatrix2D(center, params.angle, params.scale), [0.0, 0.0, 1.0]])
    matrix = np.linalg.inv(rotate) @ crop @ flip
    return np.round(matrix[:2], 9), (int(out_w), int(out_h))


def apply_params(frames: np.ndarray, params: AugParams) -> np.ndarray:
    """Apply one parameter set to every frame of a uint8 RGB clip (T,H,W,3); returns a new array."""
    _check_frames(frames)
    out = warp_frames(frames, params)
    if params.order:
        for i in range(out.shape[0]):
            out[i] = jitter_frame(out[i], params)
    return out


def warp_frames(frames: np.ndarray, params: AugParams) -> np.ndarray:
    """The geometric part of ``params`` on every frame: one ``cv2.warpAffine`` each (a copy when identity)."""
    height, width = frames.shape[1:3]
    matrix, (out_w, out_h) = geometry_matrix(params, width, height)
    if (out_w, out_h) == (width, height) and np.array_equal(matrix, np.eye(3)[:2]):
        return frames.copy()
    out = np.empty((frames.shape[0], out_h, out_w, 3), dtype=np.uint8)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for i in range(frames.shape[0]):
        cv2.warpAffine(np.ascontiguousarray(frames[i]), matrix, (out_w, out_h), out[i], flags, BORDER)
    return out


@cache
def _albumentations_functional() -> ModuleType:
    """albumentations' pixel functional ops, imported on first use: importing albumentations also imports torch
    (seconds per worker), which geometry-only augmentation never needs."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from albumentations.augmentations.pixel import functional

    return functional


def jitter_frame(frame: np.ndarray, params: AugParams) -> np.ndarray:
    """Color jitter of one (H,W,3) uint8 frame with albumentations' torchvision-compatible functional ops."""
    apf = _albumentations_functional()
    ops = {
        "brightness": lambda img: apf.adjust_brightness_torchvision(img, params.brightness),
        "contrast": lambda img: apf.adjust_contrast_torchvision(img, params.contrast),
        "saturation": lambda img: apf.adjust_saturation_torchvision(img, params.saturation),
        "hue": lambda img: apf.adjust_hue_torchvision(img, params.hue),
    }
    for op in params.order:
        frame = ops[op](frame)
    return frame


class Augmenter:
    """Augmented copies of clips, reproducible from (seed, video_id, clip_index, copy_index).

    :attr:`aug_indices` lists the copies to make per clip (0 = original, only with ``keep_original``).
    """

    def __init__(self, cfg: AugmentConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        log.debug("augmenter: %s seed=%d", cfg.model_dump(), self.seed)

    @property
    def aug_indices(self) -> list[int]:
        """The ``aug_index`` of every copy made per clip: [0, 1..K] with keep_original, else [1..K]."""
        first = 0 if self.cfg.keep_original else 1
        return list(range(first, self.cfg.copies + 1))

    def params_for(self, width: int, height: int, *, video_id: str, clip_index: int, copy_index: int) -> AugParams:
        """The parameters copy ``copy_index`` of this clip gets (identity for copy 0)."""
        if copy_index < 0:
            raise ValueError(f"copy_index must be >= 0, got {copy_index}")
        if copy_index == 0:
            return AugParams()
        rngs = clip_rngs(clip_entropy(self.seed, video_id, clip_index, copy_index))
        return make_params(self.cfg, width, height, rngs)

    def augment_clip(
        self, frames: np.ndarray, *, video_id: str, clip_index: int, copy_index: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Copy ``copy_index`` of a uint8 RGB clip (T,H,W,3) and the JSON-able parameters applied to it.

        Copy 0 is the unaugmented clip (a copy of the input) whatever the options.
        """
        _check_frames(frames)
        height, width = frames.shape[1:3]
        params = self.params_for(width, height, video_id=video_id, clip_index=clip_index, copy_index=copy_index)
        out = frames.copy() if copy_index == 0 else apply_params(frames, params)
        return out, {"aug_index": int(copy_index), "original": copy_index == 0, **params.to_dict()}

    def augment_copies(
        self, frames: np.ndarray, *, video_id: str, clip_index: int
    ) -> Iterator[tuple[int, np.ndarray, dict[str, Any]]]:
        """Every copy of a clip listed in :attr:`aug_indices`, as (aug_index, frames, params)."""
        for k in self.aug_indices:
            out, params = self.augment_clip(frames, video_id=video_id, clip_index=clip_index, copy_index=k)
            yield k, out, params

    def describe(self) -> dict[str, Any]:
        """Options, seed and fixed rules of this augmenter, for the shard's config record."""
        return {
            **self.cfg.model_dump(mode="json"),
            "seed": self.seed,
            "aug_indices": self.aug_indices,
            "seed_rule": "blake2b-128 of JSON [seed, video_id, clip_index, copy_index] -> numpy SeedSequence",
            "geometry": "rotate (CCW) + scale about center, crop, then hflip; one cv2.warpAffine, bilinear",
            "border": "reflect_101",
            "rrc_area": list(RRC_AREA),
            "rrc_ratio": list(RRC_RATIO),
            "color_jitter_rule": "torchvision ColorJitter factors, random order, albumentations functional ops",
        }


def _check_frames(frames: np.ndarray) -> None:
    """Reject anything but a non-empty uint8 (T,H,W,3) clip."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        shape, dtype = getattr(frames, "shape", None), getattr(frames, "dtype", None)
        raise ValueError(f"expected uint8 RGB frames (T,H,W,3), got shape {shape} dtype {dtype}")


def center_view(frames: np.ndarray, crop: str | None) -> np.ndarray:
    """Copy 0 of an augmented clip: the frames center-cropped to the crop size (unchanged without --crop), scaled up
    first when smaller, so every stored run of an augmented video shares one frame size."""
    if not crop:
        return frames
    w, h = crop_size(crop)
    H, W = frames.shape[1:3]
    if H < h or W < w:
        scale = max(h / H, w / W)
        size = (max(w, round(W * scale)), max(h, round(H * scale)))
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        H, W = frames.shape[1:3]
    top, left = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(frames[:, top : top + h, left : left + w])
