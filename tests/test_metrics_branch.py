"""Quality metrics on every decoded frame (their own decode branch), whatever the sampling keeps.

Truth is independent: the fixture video decoded at full rate by a plain ffmpeg to raw RGB, scaled to the analysis
size with the same swscale filter, and the motion of a clip's span computed by hand in numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from clihelp import cli, shard_paths
from videos import FFMPEG, ffmpeg_rgb, run

SIZE = (128, 96)
VIEW = (85, 64)  # analysis view: short side 64 (ANALYSIS_SHORT_SIDE), 128 * 64 / 96 = 85.3 -> 85
LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of testsrc2 at 10 fps: 40 decoded frames with steady motion."""
    path = tmp_path_factory.mktemp("metrics_branch") / "moving.mp4"
    run([FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate=10",
         "-t", "4", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)])
    return path


def split(video: Path, out: Path, *extra: str) -> list[dict]:
    """Run split (serial) and read back, per clip: its decoded ordinals (index), its quality values and phash."""
    res = cli("split", video, "-o", out, "--executor", "serial", *extra)
    assert res.exit_code == 0, res.stderr
    (path,) = shard_paths(out)
    with h5py.File(path, "r") as f:
        index = f["frames/0/index"][:]
        quality = {k: f["clips/quality"][k][:] for k in f["clips/quality"]}
        rows = []
        for i, (a, b) in enumerate(zip(f["clips/frame_start"][:], f["clips/frame_stop"][:])):
            rows.append({"index": index[a:b].tolist(), "next": int(index[b]) if b < len(index) else None,
                         "quality": {k: float(v[i]) for k, v in quality.items()}, "phash": f["clips/phash"][i].tolist(),
                         "scene_score": f["frames/0/scene_score"][:] if "scene_score" in f["frames/0"] else None})
    return rows


def full_rate_luma(video: Path) -> np.ndarray:
    """Every decoded frame at the analysis size, as float luma (N, 64, 85), by a plain ffmpeg."""
    rgb = ffmpeg_rgb(video, *VIEW, vf=f"scale=w={VIEW[0]}:h={VIEW[1]}:flags=area")
    return rgb.astype(np.float64) @ LUMA


def span(row: dict, decoded: int) -> range:
    """Documented span: from the clip's first kept ordinal to the ordinal of the next kept frame (or the end)."""
    return range(row["index"][0], row["next"] if row["next"] is not None else decoded)


def test_sparse_sampling_measures_every_decoded_frame(video: Path, tmp_path: Path) -> None:
    luma = full_rate_luma(video)
    assert len(luma) == 40
    mafd = np.r_[np.nan, np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))]
    rows = split(video, tmp_path / "fps2", "--fps", "2", "--clip-seconds", "1")
    assert len(rows) == 4 and all(len(r["index"]) == 2 for r in rows)
    for row in rows:
        ordinals = span(row, len(luma))
        assert len(ordinals) == 10  # 1 s at 10 fps: the sampled-away frames count
        values = mafd[list(ordinals)]
        expected = np.nanmean(values)
        assert row["quality"]["motion"] == pytest.approx(expected, rel=1e-3, abs=1e-3)
        assert row["quality"]["motion_max"] == pytest.approx(np.nanmax(values), rel=1e-3, abs=1e-3)
        assert row["quality"]["mean_luma"] == pytest.approx(luma[list(ordinals)].mean(), rel=1e-3)
        # what the kept frames alone give (difference of kept frames 0.5 s apart) is far from it
        a, b = row["index"]
        sampled_only = np.abs(luma[b] - luma[a]).mean()
        assert abs(sampled_only - row["quality"]["motion"]) > 0.2 * expected


def test_sparse_and_full_rate_agree_on_the_same_ordinals(video: Path, tmp_path: Path) -> None:
    sparse = split(video, tmp_path / "fps2", "--fps", "2", "--clip-seconds", "1", "--scenes")
    full = split(video, tmp_path / "all", "--clip-frames", "10", "--scenes")
    by_span = {(r["index"][0], len(span(r, 40))): r for r in full}
    assert len(sparse) == len(full) == 4
    for row in sparse:
        twin = by_span[(row["index"][0], len(span(row, 40)))]
        assert json.dumps(row["quality"]) == json.dumps(twin["quality"])  # bit-identical, NaNs included
        assert row["phash"] == twin["phash"]
        # scene statistics: the detector's per-decoded-frame scores over the same span
        scores = row["scene_score"][list(span(row, 40))]
        assert row["quality"]["scene_max"] == pytest.approx(float(scores.max()), rel=1e-6)
        assert row["quality"]["scene_mean"] == pytest.approx(float(scores.mean()), rel=1e-5)


def test_no_metrics_adds_no_branch(video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidprep.media.decode as decode_module

    seen: list[list[str]] = []
    real = decode_module.decode

    def spy(*args, branches=(), **kwargs):
        seen.append([b.name for b in branches])
        return real(*args, branches=branches, **kwargs)

    monkeypatch.setattr(decode_module, "decode", spy)
    for extra in ((), ("--no-metrics",)):
        res = cli("split", video, "-o", tmp_path / f"out{len(extra)}", "--executor", "serial", "--fps", "2", *extra)
        assert res.exit_code == 0, res.stderr
    assert seen == [["quality"], []]


def test_input_shards_measure_their_stored_frames(video: Path, tmp_path: Path) -> None:
    """No decode on shard inputs: metrics come from the stored (sampled) frames, aggregated by time."""
    res = cli("split", video, "-o", tmp_path / "frames", "--executor", "serial", "--fps", "2", "--clip-seconds", "1",
              "--no-metrics")
    assert res.exit_code == 0, res.stderr
    res = cli("enhance", tmp_path / "frames", "-o", tmp_path / "enh", "--contrast", "autolevels", "--executor",
              "serial")
    assert res.exit_code == 0, res.stderr
    (path,) = shard_paths(tmp_path / "enh")
    with h5py.File(path, "r") as f:
        rgb = f["frames/0/rgb"][:].astype(np.float64)  # 128x96 stored: scaled to 85x64 by the metrics (pyrDown-free)
        motion = f["clips/quality/motion"][:]
        starts, stops = f["clips/frame_start"][:], f["clips/frame_stop"][:]
    import cv2

    luma = np.stack([cv2.resize(f.astype(np.float32), VIEW, interpolation=cv2.INTER_LINEAR) for f in rgb]) @ LUMA
    mafd = np.r_[np.nan, np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))]
    for a, b, value in zip(starts, stops, motion):
        assert value == pytest.approx(np.nanmean(mafd[a:b]), rel=1e-3, abs=1e-3)
