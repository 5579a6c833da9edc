"""Quality metrics against hand-computed values on constructed frames, pHash, and the --keep language."""

from __future__ import annotations

import numpy as np
import pytest

from vidprep.stages import quality as q
from vidprep.stages.keep_expr import MAX_DEPTH, MAX_LENGTH, KeepError, parse, tokenize
from vidprep.stages.phash import clip_signature, frame_hashes, hamming

SIZE = (48, 64)  # short side below the analysis size: frames are measured as given


def gray(level: float, h: int = SIZE[0], w: int = SIZE[1]) -> np.ndarray:
    return np.full((h, w, 3), level, np.uint8)


def run(frames: list[np.ndarray], pts: list[float] | None = None) -> dict[str, np.ndarray]:
    step = q.QualityMetrics()
    step.start({})
    step.push(np.stack(frames), np.asarray(pts if pts is not None else np.arange(len(frames)) / 10.0))
    return step.finish()


def test_motion_is_mean_absolute_luma_difference() -> None:
    per = run([gray(10), gray(30), gray(30), gray(70)])
    assert np.isnan(per["mafd"][0])
    assert per["mafd"][1:].tolist() == pytest.approx([20, 0, 40], abs=1e-3)
    agg = q.aggregate(per, per["pts_s"], 0.0, 1.0)
    assert agg["motion"] == pytest.approx(20.0, abs=1e-3)
    assert agg["motion_std"] == pytest.approx(np.std([20, 0, 40]), abs=1e-3)
    assert agg["motion_max"] == pytest.approx(40.0, abs=1e-3)
    assert agg["frozen_ratio"] == pytest.approx(1 / 3)  # one of three pairs identical
    assert agg["mean_luma"] == pytest.approx(35.0, abs=1e-3)


def test_chunks_continue_the_difference_across_pushes() -> None:
    step = q.QualityMetrics()
    step.push(np.stack([gray(10)]), np.array([0.0]))
    step.push(np.stack([gray(15)]), np.array([0.1]))
    assert step.finish()["mafd"][1] == pytest.approx(5.0, abs=1e-3)


def test_ti_is_std_of_frame_difference() -> None:
    a = gray(100)
    b = a.copy()
    b[:, : SIZE[1] // 2] = 140  # half the picture changes by 40 levels: std of the difference is 20
    per = run([a, b])
    assert per["ti"][1] == pytest.approx(20.0, abs=1e-3)


def test_si_of_a_vertical_edge() -> None:
    y = np.zeros(SIZE, np.float32)
    y[:, SIZE[1] // 2:] = 100.0
    # Sobel x of a step of 100 is 400 on the two columns beside it, 0 elsewhere (interior pixels).
    inner = np.zeros((SIZE[0] - 2, SIZE[1] - 2))
    inner[:, SIZE[1] // 2 - 2: SIZE[1] // 2] = 400.0
    assert q.spatial_information(y) == pytest.approx(inner.std(), rel=1e-5)


def test_laplacian_variance_of_a_single_dot() -> None:
    y = np.zeros((11, 11), np.float32)
    y[5, 5] = 10.0
    lap = np.zeros((9, 9))
    lap[4, 4] = -40.0
    lap[3, 4] = lap[5, 4] = lap[4, 3] = lap[4, 5] = 10.0
    assert q.laplacian_variance(y) == pytest.approx(lap.var(), rel=1e-5)


def test_blur_orders_sharp_and_blurred() -> None:
    import cv2

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, SIZE).astype(np.float32)
    assert q.crete_blur(sharp) < 0.3
    assert q.crete_blur(cv2.GaussianBlur(sharp, (0, 0), 1.5)) < q.crete_blur(cv2.GaussianBlur(sharp, (0, 0), 3))
    assert q.crete_blur(cv2.GaussianBlur(sharp, (0, 0), 3)) > 0.5
    assert q.crete_blur(np.full(SIZE, 50, np.float32)) == 1.0


def test_black_frames_follow_blackdetect_defaults() -> None:
    almost = gray(20)  # every pixel <= 25.5
    mixed = gray(20)
    mixed[: SIZE[0] // 10] = 200  # 10% bright: fewer than 98% dark
    per = run([almost, mixed, gray(26)])
    assert per["black"].tolist() == [1.0, 0.0, 0.0]
    assert q.aggregate(per, per["pts_s"], 0, 1)["black_ratio"] == pytest.approx(1 / 3)


def test_letterbox_fraction() -> None:
    frame = gray(120)
    frame[:6] = 0
    frame[-6:] = 10  # 12 of 48 rows dark: 25% of the area
    assert q.border_fraction(frame[..., 0].astype(np.float32)) == pytest.approx(0.25)
    pillar = gray(120)
    pillar[:, :8] = 0
    pillar[:, -8:] = 0  # 16 of 64 columns
    assert q.border_fraction(pillar[..., 0].astype(np.float32)) == pytest.approx(0.25)
    assert q.border_fraction(gray(0)[..., 0].astype(np.float32)) == 1.0


def test_colorfulness_hasler_suesstrunk() -> None:
    frame = np.zeros((1, 2, 2, 3), np.float32)
    frame[0, 0, :] = (255, 0, 0)  # rg = 255, yb = 127.5
    frame[0, 1, :] = (0, 0, 255)  # rg = 0, yb = -255
    rg, yb = np.array([255, 255, 0, 0.0]), np.array([127.5, 127.5, -255, -255])
    want = np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert q.colorfulness(frame)[0] == pytest.approx(want, rel=1e-5)
    assert q.colorfulness(np.stack([gray(90)]).astype(np.float32))[0] == 0.0


def test_analysis_view_is_downscaled_and_size_independent() -> None:
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (48, 64, 3), np.uint8)
    big = np.repeat(np.repeat(small, 10, axis=0), 10, axis=1)  # 480x640, same picture
    a, b = run([small, small]), run([big, big])
    assert b["luma"][0] == pytest.approx(a["luma"][0], abs=0.5)
    assert q.QualityMetrics()._small(big).shape[:2] == (64, 85)  # 480 -> 240 -> 120 (pyrDown) -> 64 (linear)


def test_aggregate_uses_the_clip_time_span_and_scene_scores() -> None:
    per = run([gray(0), gray(10), gray(30), gray(60)], pts=[0.0, 0.5, 1.0, 1.5])
    per["scene_score"] = np.array([0, 1, 5, 2], np.float32)
    late = q.aggregate(per, per["pts_s"], 1.0, 2.0)
    assert late["motion"] == pytest.approx(25.0, abs=1e-3)  # frames at 1.0 and 1.5: differences 20 and 30
    assert late["scene_max"] == 5 and late["scene_mean"] == pytest.approx(3.5)
    assert set(late) == set(q.METRICS) and all(v.dtype == np.float32 for v in late.values())
    assert np.isnan(q.aggregate(run([gray(5)]), np.array([0.0]), 0, 1)["motion"])


def test_phash_is_robust_to_scale_and_crop_and_separates_content() -> None:
    import cv2

    rng = np.random.default_rng(2)
    base = cv2.GaussianBlur(rng.integers(0, 256, (120, 160)).astype(np.float32), (0, 0), 6)
    other = cv2.GaussianBlur(rng.integers(0, 256, (120, 160)).astype(np.float32), (0, 0), 6)
    half = cv2.resize(base, (80, 60), interpolation=cv2.INTER_AREA)
    cropped = base[6:114, 8:152]  # 10% of each side removed, centred
    h = frame_hashes(np.stack([base, other]))
    assert h.shape == (2, 2) and h.dtype == np.uint64
    assert hamming(h[0, 0], frame_hashes(half[None])[0, 0]) <= 6
    assert hamming(h[0, 1], frame_hashes(cropped[None])[0, 0]) == 0  # the crop is the original's centre view
    assert hamming(h[0, 0], h[1, 0]) > 16
    assert hamming(np.uint64(0b1011), np.uint64(0b0001)) == 2


def test_clip_signature_picks_evenly_spaced_frames() -> None:
    hashes = np.arange(10, dtype=np.uint64)
    sig = clip_signature(hashes, np.arange(10) * 0.5, 1.0, 3.0)  # frames 2..5 at 1.0, 1.5, 2.0, 2.5
    # times 1.125, 1.375, ..., 2.875 (steps of 0.25); nearest frame of each
    assert sig.tolist() == [2, 3, 3, 4, 4, 5, 5, 5]
    views = np.stack([hashes, hashes + 100], axis=1)
    assert clip_signature(views, np.arange(10) * 0.5, 1.0, 3.0).tolist() == [2, 3, 3, 4, 4, 5, 5, 5,
                                                                           102, 103, 103, 104, 104, 105, 105, 105]


def test_pair_similarity_counts_frames_matched_by_any_view() -> None:
    from vidprep.stages.dedup import candidate_pairs, groups, keeper_order, pair_similarity

    a = np.array([[1, 2, 3, 4, 11, 12, 13, 14]], np.uint64)  # 4 frames x (full, centre)
    b = np.array([[11, 2, 99 << 40, 77 << 50, 5 << 30, 6 << 30, 7 << 30, 8 << 30]], np.uint64)
    sigs = np.concatenate([a, b])
    # exact matches only: a's frame 0 (its centre 11 is b's 11) and frame 1 (2); b's frames 0 and 1 likewise
    assert pair_similarity(sigs, np.array([[0, 1]]), 0, views=2)[0] == pytest.approx(0.5)
    assert candidate_pairs(sigs).tolist() == [[0, 1]]
    assert groups(4, np.array([[2, 3], [0, 3]])).tolist() == [0, 1, 0, 0]
    assert keeper_order(np.array([100, 400, 400]), np.array([9.0, 1.0, 2.0])).tolist() == [2, 1, 0]


KNOWN = tuple(q.METRICS)


@pytest.mark.parametrize("text, values, want", [
    ("motion > 1.5 and black_ratio < 0.5", {"motion": 2, "black_ratio": 0.1}, True),
    ("motion > 1.5 and black_ratio < 0.5", {"motion": 1, "black_ratio": 0.1}, False),
    ("not (motion <= 1) or blur >= .9", {"motion": 0.5, "blur": 0.95}, True),
    ("motion == 2 and blur != 3e-1", {"motion": 2, "blur": 0.3}, False),
    ("-1 < motion", {"motion": 0}, True),
    ("not not motion >= 0", {"motion": float("nan")}, False),  # NaN compares false
])
def test_keep_expressions_evaluate(text: str, values: dict, want: bool) -> None:
    assert parse(text, KNOWN).evaluate(values) is want


@pytest.mark.parametrize("text, needle", [
    ("__import__('os').system('id')", "'__import__' at position 1"),
    ("motion > 1; rm -rf /", "';' at position 11"),
    ("motion.__class__ > 1", "'.' at position 7"),
    ("foo > 1", "unknown metric 'foo' at position 1; known metrics: motion"),
    ("motion >", "unexpected end of expression at position 9"),
    ("motion > 1 and", "expected a metric name or a number"),
    ("(motion > 1", "expected ')'"),
    ("motion > 1)", "')' at position 11"),
    ("motion", "expected a comparison"),
    ("motion > > 1", "'>' at position 10"),
    ("motion > 1 && blur < 1", "character '&' at position 12"),
    ("motion > 1e999", "not finite"),
    ("and > 1", "'and' at position 1"),
    ("", "end of expression at position 1"),
    ("motion > 1 motion < 2", "'motion' at position 12"),
])
def test_invalid_and_hostile_expressions_name_the_token(text: str, needle: str) -> None:
    with pytest.raises(KeepError) as err:
        parse(text, KNOWN)
    assert needle in str(err.value)


def test_very_long_and_deeply_nested_input_is_refused_cleanly() -> None:
    with pytest.raises(KeepError, match="at most"):
        parse("motion > 1 and " * 1000 + "motion > 1", KNOWN)
    with pytest.raises(KeepError, match="nests deeper"):
        parse("(" * (MAX_DEPTH + 1) + "motion > 1" + ")" * (MAX_DEPTH + 1), KNOWN)
    with pytest.raises(KeepError, match="nests deeper"):
        parse("not " * 1000 + "motion > 1", KNOWN)
    ok = "(" * (MAX_DEPTH - 1) + "motion > 1" + ")" * (MAX_DEPTH - 1)
    assert parse(ok, KNOWN).evaluate({"motion": 2})
    assert len(tokenize("x" * MAX_LENGTH)) == 2
    assert tokenize("a ? b")[-1].kind == "bad"
