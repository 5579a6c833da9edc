"""Clip planning over sampled pts: frame-exact ranges, tails, real-time windows on VFR pts, scene segments."""

from __future__ import annotations

import numpy as np
import pytest

from vidprep.config import SplitConfig
from vidprep.stages.split import plan_clips
from vidprep.types import ClipSpec


def cfr(n: int, fps: float = 25.0) -> np.ndarray:
    """pts of n frames at a constant rate, 0 = first frame."""
    return np.arange(n) / fps


def ranges(clips: list[ClipSpec]) -> list[tuple[int, int, int]]:
    return [(c.frame_start, c.frame_stop, c.padded) for c in clips]


def test_no_options_gives_one_clip_per_frame() -> None:
    pts = cfr(5)
    clips = plan_clips(pts, SplitConfig())
    assert ranges(clips) == [(i, i + 1, 0) for i in range(5)]
    assert [c.clip_index for c in clips] == list(range(5))
    assert clips[2].start_s == pytest.approx(0.08)
    assert clips[2].end_s == pytest.approx(0.12)
    assert clips[-1].end_s == pytest.approx(0.16 + 0.04)


def test_clip_frames_stride_rows_are_exact() -> None:
    clips = plan_clips(cfr(40), SplitConfig(clip_frames=8, stride=4))
    assert len(clips) == 9
    for k, c in enumerate(clips):
        assert (c.clip_index, c.frame_start, c.frame_stop, c.padded) == (k, 4 * k, 4 * k + 8, 0)
        assert c.num_frames == 8
        assert c.start_s == pytest.approx(4 * k / 25)
        assert c.end_s == pytest.approx((4 * k + 8) / 25)


def test_stride_defaults_to_clip_length() -> None:
    assert ranges(plan_clips(cfr(24), SplitConfig(clip_frames=8))) == [(0, 8, 0), (8, 16, 0), (16, 24, 0)]


def test_stride_larger_than_clip_leaves_gaps() -> None:
    assert ranges(plan_clips(cfr(14), SplitConfig(clip_frames=4, stride=6))) == [(0, 4, 0), (6, 10, 0)]


@pytest.mark.parametrize(
    ("tail", "expected_last"),
    [("drop", (8, 16, 0)), ("keep", (16, 21, 0)), ("pad", (16, 21, 3))],
)
def test_tail_modes(tail: str, expected_last: tuple[int, int, int]) -> None:
    clips = plan_clips(cfr(21), SplitConfig(clip_frames=8, tail=tail))
    assert ranges(clips)[-1] == expected_last
    assert len(clips) == (2 if tail == "drop" else 3)
    if tail == "pad":
        assert clips[-1].num_frames == 8
        assert clips[-1].end_s == pytest.approx(21 / 25)


def test_tail_with_overlap_emits_only_the_first_partial_window() -> None:
    clips = plan_clips(cfr(10), SplitConfig(clip_frames=8, stride=4, tail="pad"))
    assert ranges(clips) == [(0, 8, 0), (4, 10, 2)]


def test_no_tail_clip_when_full_windows_cover_the_end() -> None:
    clips = plan_clips(cfr(12), SplitConfig(clip_frames=8, stride=4, tail="keep"))
    assert ranges(clips) == [(0, 8, 0), (4, 12, 0)]


@pytest.mark.parametrize(("tail", "expected"), [("drop", []), ("keep", [(0, 5, 0)]), ("pad", [(0, 5, 11)])])
def test_video_shorter_than_one_clip(tail: str, expected: list[tuple[int, int, int]]) -> None:
    assert ranges(plan_clips(cfr(5), SplitConfig(clip_frames=16, tail=tail))) == expected


@pytest.mark.parametrize("cfg", [SplitConfig(), SplitConfig(clip_frames=4), SplitConfig(clip_seconds=1.0),
                                 SplitConfig(scenes=True), SplitConfig(clip_frames=4, tail="pad")])
def test_empty_input_gives_no_clips(cfg: SplitConfig) -> None:
    assert plan_clips(np.zeros(0), cfg) == []


def test_clip_seconds_on_constant_rate_lands_on_exact_boundaries() -> None:
    clips = plan_clips(cfr(30), SplitConfig(clip_seconds=0.4))
    assert ranges(clips) == [(0, 10, 0), (10, 20, 0), (20, 30, 0)]
    assert [c.end_s for c in clips] == pytest.approx([0.4, 0.8, 1.2])


def test_clip_seconds_selects_frames_by_real_time_on_vfr() -> None:
    pts = np.array([0.0, 0.1, 0.15, 0.2, 0.9, 1.0, 1.05, 1.5, 1.9, 2.3, 3.1, 3.2])
    clips = plan_clips(pts, SplitConfig(clip_seconds=1.0), frame_duration_s=0.1)
    # [0,1) -> rows 0..4, [1,2) -> rows 5..8, [2,3) -> row 9, [3,4) partial (video ends at 3.3) -> dropped
    assert ranges(clips) == [(0, 5, 0), (5, 9, 0), (9, 10, 0)]
    assert [c.start_s for c in clips] == [0.0, 1.0, 2.3]
    assert [c.end_s for c in clips] == [1.0, 2.3, 3.1]
    assert [c.clip_index for c in clips] == [0, 1, 2]


def test_clip_seconds_skips_windows_without_frames() -> None:
    pts = np.array([0.0, 0.2, 0.4, 2.6, 2.8, 3.0, 3.2])
    clips = plan_clips(pts, SplitConfig(clip_seconds=0.5, tail="keep"), frame_duration_s=0.2)
    # windows [0.5, 2.5) hold no frame: skipped, and clip_index stays consecutive
    assert ranges(clips) == [(0, 3, 0), (3, 5, 0), (5, 7, 0)]
    assert [c.clip_index for c in clips] == [0, 1, 2]


def test_clip_seconds_with_overlapping_stride() -> None:
    clips = plan_clips(cfr(20, fps=10), SplitConfig(clip_seconds=1.0, clip_stride=0.5))
    assert ranges(clips) == [(0, 10, 0), (5, 15, 0), (10, 20, 0)]


@pytest.mark.parametrize(("tail", "expected_last"), [("drop", (8, 16, 0)), ("keep", (16, 20, 0)),
                                                     ("pad", (16, 20, 4))])
def test_clip_seconds_tails(tail: str, expected_last: tuple[int, int, int]) -> None:
    clips = plan_clips(cfr(20, fps=8), SplitConfig(clip_seconds=1.0, tail=tail))
    assert ranges(clips)[-1] == expected_last


def test_clip_seconds_short_video() -> None:
    pts = cfr(3, fps=10)
    assert plan_clips(pts, SplitConfig(clip_seconds=2.0)) == []
    assert ranges(plan_clips(pts, SplitConfig(clip_seconds=2.0, tail="keep"))) == [(0, 3, 0)]
    assert ranges(plan_clips(pts, SplitConfig(clip_seconds=2.0, tail="pad"))) == [(0, 3, 17)]


def test_clips_never_cross_cuts() -> None:
    cuts = [13, 30]
    clips = plan_clips(cfr(50), SplitConfig(clip_frames=8, stride=4, tail="keep", scenes=True), cuts)
    bounds = [0, *cuts, 50]
    for c in clips:
        seg = max(i for i, b in enumerate(bounds[:-1]) if b <= c.frame_start)
        assert c.frame_stop <= bounds[seg + 1]
    assert ranges(clips) == [(0, 8, 0), (4, 12, 0), (8, 13, 0),
                             (13, 21, 0), (17, 25, 0), (21, 29, 0), (25, 30, 0),
                             (30, 38, 0), (34, 42, 0), (38, 46, 0), (42, 50, 0)]
    assert [c.clip_index for c in clips] == list(range(len(clips)))


def test_clip_seconds_windows_restart_at_each_scene() -> None:
    clips = plan_clips(cfr(30, fps=10), SplitConfig(clip_seconds=1.0, scenes=True), [15])
    assert ranges(clips) == [(0, 10, 0), (15, 25, 0)]
    assert clips[1].start_s == pytest.approx(1.5)


def test_scenes_only_gives_one_clip_per_segment() -> None:
    pts = cfr(90)
    clips = plan_clips(pts, SplitConfig(scenes=True), [30, 60], frame_duration_s=0.04)
    assert ranges(clips) == [(0, 30, 0), (30, 60, 0), (60, 90, 0)]
    assert [c.start_s for c in clips] == pytest.approx([0.0, 1.2, 2.4])
    assert [c.end_s for c in clips] == pytest.approx([1.2, 2.4, 3.6])


def test_scenes_without_cuts_is_one_clip() -> None:
    assert ranges(plan_clips(cfr(7), SplitConfig(scenes=True))) == [(0, 7, 0)]


def test_single_frame_without_duration_has_zero_length() -> None:
    (clip,) = plan_clips(np.array([0.0]), SplitConfig())
    assert (clip.start_s, clip.end_s) == (0.0, 0.0)


@pytest.mark.parametrize("cuts", [[0], [5], [3, 2], [2, 2]])
def test_bad_cuts_are_rejected(cuts: list[int]) -> None:
    with pytest.raises(ValueError, match="cuts"):
        plan_clips(cfr(5), SplitConfig(scenes=True), cuts)


def test_bad_pts_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        plan_clips(np.array([0.0, 0.2, 0.1]), SplitConfig())
    with pytest.raises(ValueError, match="frame_duration_s"):
        plan_clips(cfr(3), SplitConfig(), frame_duration_s=0.0)
