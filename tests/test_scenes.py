"""Scene cuts: streaming HSV content scores and the adaptive cut rule (PySceneDetect 0.7.2 semantics), on synthetic
frames and on real encoded video."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from vidprep.stages.scenes import (
    RATIO_CAP,
    RowScatter,
    SceneScorer,
    adaptive_ratio,
    cuts_to_rows,
    find_cuts,
    scorer_rows,
    scorer_size,
)

H, W = 75, 133  # odd, non-square: a swapped H/W fails loudly
FPS = 25.0
Source = Callable[[int], np.ndarray]


def gradient(i: int) -> np.ndarray:
    """A colour gradient panning 2 px per frame."""
    x = np.linspace(0, 255, W + 80)
    img = np.empty((H, W + 80, 3))
    img[..., 0] = x[None, :]
    img[..., 1] = np.linspace(0, 255, H)[:, None]
    img[..., 2] = 90.0
    return img[:, 2 * i: 2 * i + W]


def checkerboard(i: int) -> np.ndarray:
    """Yellow/blue 12 px checkerboard sliding 1 px per frame."""
    yy, xx = np.mgrid[0:H, 0:W]
    mask = ((xx + i) // 12 + yy // 12) % 2 == 1
    img = np.empty((H, W, 3))
    img[mask] = (230, 200, 40)
    img[~mask] = (30, 60, 200)
    return img


def colour_blocks(seed: int = 3) -> Source:
    """Random-colour 8 px blocks, fixed over time (the per-frame noise is added by :func:`render`)."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.integers(0, 256, (H // 8 + 1, W // 8 + 1, 3)), np.ones((8, 8, 1)))[:H, :W]
    return lambda i: blocks


def render(images: Iterable[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Add small sensor-like noise and quantize to uint8 RGB."""
    rng = np.random.default_rng(seed)
    return [np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8) for img in images]


def shots(*parts: tuple[Source, int]) -> list[np.ndarray]:
    """Hard-cut concatenation of (source, length) shots; each shot's motion starts at its own frame 0."""
    return render(src(i) for src, n in parts for i in range(n))


def score(frames: Iterable[np.ndarray]) -> np.ndarray:
    scorer = SceneScorer()
    for f in frames:
        scorer.push(f)
    return scorer.scores


def assert_cuts_near(cuts: list[int], truth: list[int], tol: int = 1) -> None:
    assert len(cuts) == len(truth), f"cuts {cuts}, expected about {truth}"
    for got, want in zip(cuts, truth):
        assert abs(got - want) <= tol, f"cuts {cuts}, expected about {truth}"


# --- SceneScorer ---------------------------------------------------------------------------------------------------

def test_scores_shape_dtype_and_first_frame() -> None:
    frames = shots((gradient, 5))
    s = score(frames)
    assert s.shape == (5,) and s.dtype == np.float64
    assert s[0] == 0.0 and (s[1:] > 0).all()


def test_identical_frames_score_zero_and_any_size_is_accepted() -> None:
    big = np.kron(render([gradient(0)])[0], np.ones((4, 4, 1), np.uint8))
    scorer = SceneScorer()
    for _ in range(3):
        scorer.push(big)
    assert len(scorer) == 3
    assert scorer.scores.tolist() == [0.0, 0.0, 0.0]


def test_score_is_mean_abs_hsv_difference() -> None:
    black = np.zeros((H, W, 3), np.uint8)
    white = np.full((H, W, 3), 255, np.uint8)
    # black -> white: V jumps 255, H and S stay 0 -> mean over 3 channels = 85
    assert score([black, white])[1] == pytest.approx(85.0)


def test_scorer_size_is_pyscenedetects_downscale_rule() -> None:
    # factor = larger side / 256 (no downscale below 256), sizes rounded: compute_downscale_factor + cv2.resize
    assert scorer_size(160, 90) == (160, 90)
    assert scorer_size(256, 144) == (256, 144)
    assert scorer_size(1280, 720) == (256, 144)
    assert scorer_size(1920, 1080) == (256, 144)
    assert scorer_size(1000, 562) == (256, 144)  # 562 / 3.90625 = 143.87
    assert scorer_size(720, 1280) == (144, 256)  # portrait: the larger side decides


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 360), (854, 480), (3840, 2160), (720, 1280),
                                  (1440, 1080), (512, 288), (300, 200)])
def test_the_rows_the_scorer_reads_give_the_whole_frames_scores(size: tuple[int, int]) -> None:
    """Only scorer_rows() cross the decode pipe: whatever the other rows hold, cv2's resize and the scores are
    bit-identical to scoring whole frames (random pixels everywhere, other random pixels in the unsent rows)."""
    import cv2

    w, h = size
    rows = scorer_rows(w, h)
    assert rows == sorted(set(rows)) and 0 <= rows[0] and rows[-1] < h
    if (w, h) == (1280, 720):
        assert rows == list(range(2, 720, 5))  # factor 5: one row in five, no neighbour weighted
    rng = np.random.default_rng(w * h)
    whole, sparse = SceneScorer(), SceneScorer()
    scatter = RowScatter(sparse, rows, w, h)
    for _ in range(3):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        garbage = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        garbage[rows] = frame[rows]
        size2 = scorer_size(w, h)
        np.testing.assert_array_equal(cv2.resize(garbage, size2, interpolation=cv2.INTER_LINEAR),
                                      cv2.resize(frame, size2, interpolation=cv2.INTER_LINEAR))
        whole.push_bgr(frame)
        scatter.push_rows(frame[rows])
    np.testing.assert_array_equal(whole.scores, sparse.scores)
    np.testing.assert_array_equal(whole.flash_mask(), sparse.flash_mask())


def test_scorer_rejects_non_rgb_frames() -> None:
    with pytest.raises(ValueError, match="uint8 frame"):
        SceneScorer().push(np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match="uint8 frame"):
        SceneScorer().push(np.zeros((H, W, 3), np.float32))


# --- find_cuts on synthetic shots ---------------------------------------------------------------------------------

def test_hard_cuts_between_three_sources_are_found() -> None:
    frames = shots((gradient, 30), (checkerboard, 30), (colour_blocks(), 30))
    assert_cuts_near(find_cuts(score(frames)), [30, 60])


def test_slow_crossfade_is_not_a_cut() -> None:
    a, b = gradient(0), colour_blocks()(0)
    images = [a] * 15 + [(1 - t) * a + t * b for t in np.linspace(0, 1, 30)] + [b] * 15
    s = score(render(images))
    assert find_cuts(s) == []
    assert np.nanmax(adaptive_ratio(s)) < 3.0


def test_min_scene_length_suppresses_a_cut_too_soon() -> None:
    blocks = colour_blocks()
    frames = shots((gradient, 30), (checkerboard, 10), (blocks, 30))  # second cut 10 frames after the first
    s = score(frames)
    assert_cuts_near(find_cuts(s), [30])
    assert_cuts_near(find_cuts(s, min_frames=8), [30, 40])


def test_first_scene_is_measured_from_frame_zero() -> None:
    s = score(shots((gradient, 10), (checkerboard, 30)))  # a cut 10 frames into the video
    assert find_cuts(s) == []
    assert find_cuts(s, min_frames=10) == [10]


def test_cut_out_of_a_perfectly_still_shot() -> None:
    still_a = [np.full((H, W, 3), (200, 40, 40), np.uint8)] * 20
    still_b = [np.full((H, W, 3), (40, 40, 200), np.uint8)] * 20
    s = score(still_a + still_b)
    ratio = adaptive_ratio(s)
    assert ratio[20] == RATIO_CAP and np.nanmax(ratio[np.arange(40) != 20]) == 0.0
    assert find_cuts(s) == [20]


def test_small_change_out_of_a_still_shot_needs_min_content() -> None:
    frames = [np.full((H, W, 3), 100, np.uint8)] * 20 + [np.full((H, W, 3), 110, np.uint8)] * 20
    s = score(frames)
    assert adaptive_ratio(s)[20] == 0.0  # the neighbours' mean is 0 and the score is under min_content
    assert adaptive_ratio(s, min_content=3.0)[20] == RATIO_CAP
    assert find_cuts(s) == []
    assert find_cuts(s, min_content=3.0) == [20]


def test_rethresholding_is_pure_and_monotone() -> None:
    s = score(shots((gradient, 30), (checkerboard, 30), (colour_blocks(), 30)))
    loose = find_cuts(s, threshold=1.5, min_content=5.0)
    strict = find_cuts(s, threshold=8.0)
    assert set(strict) <= set(find_cuts(s)) <= set(loose)
    assert find_cuts(s) == find_cuts(s)


def test_windows_never_truncate_and_frame_zero_counts() -> None:
    s = np.array([0.0, 2.0, 2.0, 60.0, 2.0, 2.0, 90.0], np.float64)
    ratio = adaptive_ratio(s, window=2)
    assert np.isnan(ratio[[0, 1, 5, 6]]).all()  # no full window on both sides: never a cut
    assert ratio[2] == pytest.approx(2.0 / ((0.0 + 2.0 + 60.0 + 2.0) / 4))  # frame 0's 0 is a neighbour
    assert ratio[3] == pytest.approx(30.0)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_flash_filter_drops_flashes_but_keeps_real_cuts(length: int) -> None:
    images = [checkerboard(i) for i in range(60)]
    for i in range(30, 30 + length):
        images[i] = np.full((H, W, 3), 255.0)  # a 1-3-frame white flash inside a moving shot
    scorer = SceneScorer()
    for f in render(images):
        scorer.push(f)
    s, flashes = scorer.scores, scorer.flash_mask()
    assert find_cuts(s, min_frames=5) != []  # PySceneDetect's rule alone cuts on the flash
    assert find_cuts(s, min_frames=5, flashes=flashes) == []
    assert flashes.dtype == bool and flashes.shape == s.shape


def test_flash_filter_keeps_real_cuts() -> None:
    scorer = SceneScorer()
    for f in shots((gradient, 30), (checkerboard, 30), (colour_blocks(), 30)):
        scorer.push(f)
    flashes = scorer.flash_mask()
    assert not flashes[[30, 60]].any()
    assert find_cuts(scorer.scores, flashes=flashes) == find_cuts(scorer.scores)


def test_cuts_map_to_the_first_kept_frame_at_or_after_them() -> None:
    kept = np.array([0, 12, 24, 36, 48])  # decoded ordinals of the sampled rows
    assert cuts_to_rows([12, 30, 31, 47, 60], kept) == [1, 3, 4]  # 30 and 31 both land on row 3; 60 is past
    assert cuts_to_rows([], kept) == []
    assert cuts_to_rows([5], np.arange(10)) == [5]


def test_degenerate_inputs() -> None:
    assert find_cuts(np.zeros(0)) == []
    assert find_cuts(np.array([0.0])) == []
    with pytest.raises(ValueError, match="window"):
        adaptive_ratio(np.zeros(3), window=0)


# --- real encoded video -------------------------------------------------------------------------------------------

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not found")
VW, VH = 160, 120


def lavfi(source: str, seconds: float, extra: str = "") -> list[str]:
    return ["-t", str(seconds), "-f", "lavfi", "-i", f"{source}=size={VW}x{VH}:rate={FPS:g}{extra}"]


def encode(out: Path, inputs: list[str], graph: str) -> Path:
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex", f"{graph},format=yuv420p[v]",
           "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", str(out)]
    subprocess.run(cmd, check=True, timeout=60)
    return out


def decode_rgb(path: Path) -> np.ndarray:
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    raw = subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, VH, VW, 3)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scenes")
    three = lavfi("testsrc2", 1.2) + lavfi("mandelbrot", 1.2) + lavfi("smptebars", 1.2)
    dissolve = lavfi("testsrc2", 2) + lavfi("mandelbrot", 2)
    return {
        "cuts": encode(d / "cuts.mp4", three, "[0:v][1:v][2:v]concat=n=3:v=1:a=0"),
        "fade": encode(d / "fade.mp4", lavfi("testsrc2", 3), "[0:v]fade=t=in:st=0:d=1,fade=t=out:st=2:d=1"),
        "xfade": encode(d / "xfade.mp4", dissolve, "[0:v][1:v]xfade=transition=fade:duration=1:offset=0.5"),
    }


def cuts_of(path: Path) -> list[int]:
    frames = decode_rgb(path)
    return find_cuts(score(frames))


@needs_ffmpeg
def test_real_video_concat_of_three_sources(videos: dict[str, Path]) -> None:
    assert_cuts_near(cuts_of(videos["cuts"]), [30, 60])


@needs_ffmpeg
def test_real_video_fade_in_and_out_is_not_a_cut(videos: dict[str, Path]) -> None:
    # Frame 1 (first lit frame after pure black) scores ~110: hue and saturation are undefined at V=0, so they
    # jump. It is 0.04 s into the video, so min_scene_s keeps it from being a cut; everything else is smooth.
    assert cuts_of(videos["fade"]) == []


@needs_ffmpeg
def test_real_video_dissolve_is_not_a_cut(videos: dict[str, Path]) -> None:
    assert cuts_of(videos["xfade"]) == []
