"""contact_sheet: layout, frame picking, resizing of processed rows, labels, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from vidprep.stages.preview import BACKGROUND, GAP, LABEL_HEIGHT, contact_sheet, pick_frames


def clip(t: int, h: int, w: int, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_layout_of_one_pair() -> None:
    original = clip(10, 37, 23)
    sheet = contact_sheet([(original, clip(10, 37, 23, seed=1))], max_frames=3)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape == (2 * (LABEL_HEIGHT + 37), 3 * 23 + 2 * GAP, 3)
    # top row starts with the first original frame, then a gap, then the middle frame
    np.testing.assert_array_equal(sheet[LABEL_HEIGHT : LABEL_HEIGHT + 37, :23], original[0])
    np.testing.assert_array_equal(sheet[LABEL_HEIGHT : LABEL_HEIGHT + 37, 23 + GAP : 46 + GAP], original[4])
    assert (sheet[LABEL_HEIGHT : LABEL_HEIGHT + 37, 23 : 23 + GAP] == BACKGROUND).all()


def test_processed_row_is_resized_to_the_original_height() -> None:
    original, processed = clip(4, 40, 30), clip(4, 20, 25)
    sheet = contact_sheet([(original, processed)], max_frames=4)
    bottom_width = 4 * 50 + 3 * GAP  # 20x25 scaled to height 40 -> 50 wide
    assert sheet.shape == (2 * (LABEL_HEIGHT + 40), max(4 * 30 + 3 * GAP, bottom_width), 3)
    bottom = sheet[2 * LABEL_HEIGHT + 40 :]
    assert (bottom[:, bottom_width:] == BACKGROUND).all()


def test_several_clips_stack_and_pad() -> None:
    sheet = contact_sheet([(clip(2, 16, 16), clip(2, 16, 16)), (clip(6, 24, 40), clip(6, 12, 20))], max_frames=6)
    assert sheet.shape == (2 * (LABEL_HEIGHT + 16) + 2 * (LABEL_HEIGHT + 24), 6 * 40 + 5 * GAP, 3)


def test_labels_are_drawn() -> None:
    sheet = contact_sheet([(clip(1, 30, 30), clip(1, 30, 30))], label=("before", "after"))
    band = sheet[:LABEL_HEIGHT]
    assert (band != BACKGROUND).any()


def test_pick_frames_spreads_and_includes_ends() -> None:
    assert pick_frames(10, 3).tolist() == [0, 4, 9]
    assert pick_frames(2, 6).tolist() == [0, 1]
    assert pick_frames(1, 6).tolist() == [0]


@pytest.mark.parametrize(
    "pairs,kwargs",
    [
        ([], {}),
        ([(clip(1, 8, 8), clip(1, 8, 8))], {"max_frames": 0}),
        ([(clip(1, 8, 8).astype(np.float32), clip(1, 8, 8))], {}),
        ([(clip(1, 8, 8), clip(0, 8, 8))], {}),
    ],
)
def test_rejects_bad_input(pairs: list, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        contact_sheet(pairs, **kwargs)
