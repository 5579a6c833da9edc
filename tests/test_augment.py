"""Augmenter on synthetic clips: one draw per clip, reproducible seeds, exact sizes, exact geometry, catalog."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidprep.config import AugmentConfig
from vidprep.stages.augment import AugParams, Augmenter, apply_params, clip_entropy

T, H, W = 4, 41, 53  # odd and non-square, so H/W swaps fail loudly

CATALOG: list[dict] = [
    {},
    {"rotate": 30.0},
    {"rotate": 180.0},
    {"scale": "0.7:1.3"},
    {"crop": "37x23"},
    {"crop": "19"},
    {"crop": "37x23", "random_resized_crop": True},
    {"hflip": 0.5},
    {"hflip": 1.0},
    {"color_jitter": "0.4,0.4,0.4,0.1"},
    {"color_jitter": "0,0,0,0.5"},
    {"copies": 3, "keep_original": True},
    {"rotate": 15.0, "scale": "0.9:1.1", "crop": "37x23", "hflip": 0.5, "color_jitter": "0.2,0.2,0.2,0.05"},
]


def _ids(rows: list[dict]) -> list[str]:
    return [",".join(f"{k}={v}" for k, v in row.items()) or "identity" for row in rows]


def random_clip(t: int = T, h: int = H, w: int = W, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def smooth_clip(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """A colorful, smooth clip (random noise would make every color jitter look alike)."""
    yy, xx = np.mgrid[0:h, 0:w]
    frame = np.stack([128 + 100 * np.sin(xx / 6.0), 128 + 100 * np.cos(yy / 5.0), 60 + 0.0 * xx], -1)
    return np.repeat(np.clip(frame, 0, 255).astype(np.uint8)[None], t, axis=0)


def expected_size(row: dict) -> tuple[int, int]:
    """(H, W) the catalog row must produce from an H x W input."""
    crop = row.get("crop")
    if crop is None:
        return H, W
    w, h = (int(v) for v in crop.split("x")) if "x" in crop else (int(crop), int(crop))
    return h, w


def run(row: dict, frames: np.ndarray, *, seed: int = 7, copy_index: int = 1, clip_index: int = 0,
        video_id: str = "dir/video.mp4") -> tuple[np.ndarray, dict]:
    augmenter = Augmenter(AugmentConfig(**row), seed=seed)
    return augmenter.augment_clip(frames, video_id=video_id, clip_index=clip_index, copy_index=copy_index)


@pytest.mark.parametrize("row", CATALOG, ids=_ids(CATALOG))
def test_catalog_shape_dtype_determinism(row: dict) -> None:
    frames = smooth_clip()
    before = frames.copy()
    out, params = run(row, frames)
    assert out.shape == (T, *expected_size(row), 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(frames, before)  # input untouched
    again, params_again = run(row, frames)
    np.testing.assert_array_equal(again, out)
    assert json.loads(json.dumps(params)) == params_again


@pytest.mark.parametrize("row", CATALOG, ids=_ids(CATALOG))
def test_identical_frames_give_identical_outputs(row: dict) -> None:
    frames = np.repeat(smooth_clip(1), 6, axis=0)
    for copy_index in (1, 2):
        out, _ = run(row, frames, copy_index=copy_index)
        assert all(np.array_equal(out[i], out[0]) for i in range(len(out)))


FULL = {"rotate": 20.0, "scale": "0.8:1.2", "crop": "37x23", "hflip": 0.5, "color_jitter": "0.3,0.3,0.3,0.05"}


def test_different_copies_clips_and_videos_differ() -> None:
    frames = smooth_clip()
    reference, _ = run(FULL, frames, copy_index=1)
    for kwargs in ({"copy_index": 2}, {"clip_index": 1}, {"video_id": "dir/other.mp4"}):
        out, _ = run(FULL, frames, **kwargs)
        assert not np.array_equal(out, reference), kwargs


def test_different_seeds_differ() -> None:
    frames = smooth_clip()
    a, pa = run(FULL, frames, seed=1)
    b, pb = run(FULL, frames, seed=2)
    assert not np.array_equal(a, b) and pa != pb


def test_seed_is_stable_and_order_free() -> None:
    # A golden value: the rule must not depend on the process (Python's hash() is salted per process) and
    # changing it silently would change every published augmented shard.
    assert clip_entropy(0, "a/b.mp4", 3, 1) == 0xD38C9440AE831BD4F0E6F4D19372A821
    augmenter = Augmenter(AugmentConfig(**FULL), seed=5)
    frames = smooth_clip()
    forward = [augmenter.augment_clip(frames, video_id="v", clip_index=i, copy_index=1)[0] for i in range(3)]
    backward = [augmenter.augment_clip(frames, video_id="v", clip_index=i, copy_index=1)[0] for i in (2, 1, 0)]
    for f, b in zip(forward, backward[::-1]):
        np.testing.assert_array_equal(f, b)


@pytest.mark.parametrize("crop,in_hw,out_hw", [("37x23", (41, 53), (23, 37)), ("37x23", (11, 17), (23, 37)),
                                               ("9", (41, 53), (9, 9)), ("64x48", (41, 53), (48, 64))])
@pytest.mark.parametrize("rrc", [False, True])
def test_output_size_is_exactly_the_crop(crop: str, in_hw: tuple[int, int], out_hw: tuple[int, int],
                                         rrc: bool) -> None:
    frames = random_clip(2, *in_hw)
    out, params = run({"crop": crop, "random_resized_crop": rrc, "rotate": 10.0}, frames)
    assert out.shape == (2, *out_hw, 3)
    assert params["size"] == [out_hw[1], out_hw[0]]


def test_crop_larger_than_frame_is_centered_and_reflected() -> None:
    frames = random_clip(1, 11, 17)
    out, params = run({"crop": "37x23"}, frames)
    assert params["box"] == [-10.0, -6.0, 37.0, 23.0]
    np.testing.assert_array_equal(out[0, 6:17, 10:27], frames[0])
    np.testing.assert_array_equal(out[0, 6:17, 9], frames[0, :, 1])  # reflect_101: the edge pixel is not repeated


@pytest.mark.parametrize("angle,k", [(90.0, 1), (-90.0, -1), (180.0, 2)])
def test_rotation_by_right_angles_equals_rot90(angle: float, k: int) -> None:
    frames = random_clip(3, 29, 29)
    out = apply_params(frames, AugParams(angle=angle))
    np.testing.assert_array_equal(out, np.rot90(frames, k=k, axes=(1, 2)))


def test_flip_and_plain_crop_are_exact() -> None:
    frames = random_clip()
    np.testing.assert_array_equal(apply_params(frames, AugParams(flip=True)), frames[:, :, ::-1])
    cropped = apply_params(frames, AugParams(box=(5.0, 3.0, 37.0, 23.0), size=(37, 23)))
    np.testing.assert_array_equal(cropped, frames[:, 3:26, 5:42])
    both = apply_params(frames, AugParams(box=(5.0, 3.0, 37.0, 23.0), size=(37, 23), flip=True))
    np.testing.assert_array_equal(both, frames[:, 3:26, 5:42][:, :, ::-1])


def test_identity_params_copy_the_input() -> None:
    frames = random_clip()
    out = apply_params(frames, AugParams())
    np.testing.assert_array_equal(out, frames)
    assert out is not frames


def test_copy_numbering() -> None:
    frames = smooth_clip()
    with_original = Augmenter(AugmentConfig(copies=2, keep_original=True, rotate=30.0), seed=0)
    without = Augmenter(AugmentConfig(copies=2, rotate=30.0), seed=0)
    assert with_original.aug_indices == [0, 1, 2] and without.aug_indices == [1, 2]
    copies = list(with_original.augment_copies(frames, video_id="v", clip_index=0))
    assert [k for k, _, _ in copies] == [0, 1, 2]
    np.testing.assert_array_equal(copies[0][1], frames)
    assert copies[0][2]["original"] and copies[0][2]["aug_index"] == 0
    # aug_index k is the same draw whether or not the original is kept
    for (k, out, params), (k2, out2, params2) in zip(copies[1:], without.augment_copies(frames, video_id="v",
                                                                                        clip_index=0)):
        assert k == k2 and params == params2
        np.testing.assert_array_equal(out, out2)


def test_params_stay_in_their_ranges() -> None:
    augmenter = Augmenter(AugmentConfig(**FULL), seed=3)
    flips = []
    for clip_index in range(40):
        p = augmenter.params_for(W, H, video_id="v", clip_index=clip_index, copy_index=1)
        assert -20.0 <= p.angle <= 20.0 and 0.8 <= p.scale <= 1.2
        assert 0.7 <= p.brightness <= 1.3 and -0.05 <= p.hue <= 0.05
        assert sorted(p.order) == ["brightness", "contrast", "hue", "saturation"]
        assert 0 <= p.box[0] <= W - 37 and 0 <= p.box[1] <= H - 23
        flips.append(p.flip)
    assert 0 < sum(flips) < 40


def test_rrc_box_inside_canvas() -> None:
    augmenter = Augmenter(AugmentConfig(crop="37x23", random_resized_crop=True), seed=0)
    for clip_index in range(30):
        x, y, w, h = augmenter.params_for(W, H, video_id="v", clip_index=clip_index, copy_index=1).box
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w * h >= 0.08 * W * H - W - H


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        run({}, np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="copy_index"):
        run({}, random_clip(), copy_index=-1)
