"""Curation end to end: metrics stored at split time, --keep, `vidprep filter` (frames and features), `dedup`."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from clihelp import cli, shard_paths
from videos import FFMPEG, run

SRC = "testsrc2=size=96x64:rate=10"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A moving clip, a black clip, and two transformed copies of a mandelbrot clip (half scale, grayscale)."""
    root = tmp_path_factory.mktemp("curation")
    make = [
        ("moving.mp4", ["-f", "lavfi", "-i", SRC], []),
        ("black.mp4", ["-f", "lavfi", "-i", "color=black:size=96x64:rate=10"], []),
        ("mandel.mp4", ["-f", "lavfi", "-i", "mandelbrot=size=96x64:rate=10"], []),
    ]
    for name, inputs, vf in make:
        run([FFMPEG, "-nostdin", "-v", "error", "-y", *inputs, "-t", "2", *vf, "-pix_fmt", "yuv420p",
             "-c:v", "libx264", str(root / name)])
    for name, vf in (("mandel_half.mp4", "scale=48:32"), ("mandel_gray.mp4", "format=gray,format=yuv420p")):
        run([FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(root / "mandel.mp4"), "-vf", vf,
             "-c:v", "libx264", str(root / name)])
    return root


def split(corpus: Path, out: Path, *extra: str) -> None:
    res = cli("split", corpus, "-o", out, "--clip-seconds", "1", "--executor", "serial", *extra)
    assert res.exit_code == 0, res.stderr


def clips_by_video(out: Path) -> dict[str, dict]:
    """Plain h5py: per video, its clip quality rows, phash and the frames of each clip."""
    found: dict[str, dict] = {}
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            ids = f["videos/id"].asstr()[:]
            vid = f["clips/video_index"][:]
            quality = {k: f["clips/quality"][k][:] for k in f["clips/quality"]} if "clips/quality" in f else {}
            for i, v in enumerate(vid):
                g = f[f"frames/{v}"]
                a, b = f["clips/frame_start"][i], f["clips/frame_stop"][i]
                rec = found.setdefault(str(ids[v]), {"rows": []})
                rec["rows"].append({
                    "clip_index": int(f["clips/clip_index"][i]), "quality": {k: float(c[i]) for k, c in quality.items()},
                    "phash": f["clips/phash"][i].tolist() if "clips/phash" in f else None,
                    "index": g["index"][a:b].tolist(), "rgb": g["rgb"][a:b] if "rgb" in g else None,
                    "features": f["clips/features"][i] if "clips/features" in f else None,
                })
    return found


def test_split_stores_metrics_and_keep_drops_clips(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "all")
    videos = clips_by_video(tmp_path / "all")
    black, moving = videos["black.mp4"]["rows"][0], videos["moving.mp4"]["rows"][0]
    assert black["quality"]["black_ratio"] == 1.0 and moving["quality"]["black_ratio"] == 0.0
    assert moving["quality"]["motion"] > 1.0 and black["quality"]["motion"] < 0.3
    assert len(moving["phash"]) == 16  # 8 frames x (full frame, centre)
    with h5py.File(shard_paths(tmp_path / "all")[0], "r") as f:
        assert f["clips/quality/motion"].dtype == np.float32
    res = cli("split", corpus, "-o", tmp_path / "kept", "--clip-seconds", "1", "--executor", "serial",
              "--keep", "black_ratio < 0.5 and motion >= 0")
    assert res.exit_code == 0, res.stderr
    assert "black.mp4: --keep dropped 2 of 2 clips" in res.stderr
    kept = clips_by_video(tmp_path / "kept")
    assert "black.mp4" not in kept and len(kept["moving.mp4"]["rows"]) == 2
    assert cli("shards", "verify", tmp_path / "kept").exit_code == 0


def test_no_metrics_stores_none(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "out", "--no-metrics")
    with h5py.File(shard_paths(tmp_path / "out")[0], "r") as f:
        assert "quality" not in f["clips"] and "phash" not in f["clips"]


@pytest.mark.parametrize("args, needle", [
    (["--keep", "__import__('os')"], "unknown metric '__import__'"),
    (["--keep", "motion >> 1"], "'>' at position 9"),
    (["--keep", "motion > 1", "--no-metrics"], "--no-metrics"),
])
def test_bad_keep_is_a_usage_error_before_decoding(corpus: Path, tmp_path: Path, args: list, needle: str) -> None:
    res = cli("split", corpus, "-o", tmp_path / "out", *args)
    assert res.exit_code == 2 and needle in res.stderr, res.stderr
    assert not list((tmp_path / "out").glob("shard-*")) if (tmp_path / "out").exists() else True


def test_filter_copies_kept_clips_and_their_frames(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "all", "--videos-per-shard", "2")
    res = cli("filter", tmp_path / "all", "-o", tmp_path / "f", "--keep", "black_ratio < 0.5 and motion > 0.5")
    assert res.exit_code == 0, res.stderr
    before, after = clips_by_video(tmp_path / "all"), clips_by_video(tmp_path / "f")
    assert "black.mp4" not in after and set(after) <= set(before)
    for video, rec in after.items():
        for row in rec["rows"]:
            src = next(r for r in before[video]["rows"] if r["clip_index"] == row["clip_index"])
            assert row["quality"]["motion"] > 0.5
            assert row["index"] == src["index"] and np.array_equal(row["rgb"], src["rgb"])
            assert json.dumps(row["quality"]) == json.dumps(src["quality"]) and row["phash"] == src["phash"]
    assert cli("shards", "verify", tmp_path / "f").exit_code == 0
    with h5py.File(shard_paths(tmp_path / "f")[0], "r") as f:
        assert json.loads(f["meta/config_json"][()])["filter"]["keep"].startswith("black_ratio")
    # resume: a removed shard is redone, the others are kept untouched
    shards = shard_paths(tmp_path / "f")
    stamp = shards[-1].stat().st_mtime_ns
    shards[0].unlink()
    again = cli("filter", tmp_path / "all", "-o", tmp_path / "f", "--keep", "black_ratio < 0.5 and motion > 0.5")
    assert again.exit_code == 0 and "already done" in again.stderr
    assert shards[0].exists() and shards[-1].stat().st_mtime_ns == stamp
    assert cli("shards", "verify", tmp_path / "f").exit_code == 0
    other = cli("filter", tmp_path / "all", "-o", tmp_path / "f", "--keep", "motion > 3")
    assert other.exit_code == 2 and "different config" in other.stderr
    bad = cli("filter", tmp_path / "all", "-o", tmp_path / "g", "--keep", "motion >")
    assert bad.exit_code == 2 and "position" in bad.stderr


def test_filter_feature_shards_carries_features(corpus: Path, tmp_path: Path) -> None:
    res = cli("features", corpus, "-o", tmp_path / "feats", "--model", "resnet18", "--weights", "none", "--fps", "4",
              "--size", "32", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    res = cli("filter", tmp_path / "feats", "-o", tmp_path / "f", "--keep", "black_ratio < 0.5")
    assert res.exit_code == 0, res.stderr
    before, after = clips_by_video(tmp_path / "feats"), clips_by_video(tmp_path / "f")
    assert "black.mp4" in before and "black.mp4" not in after
    for video, rec in after.items():
        for row, src in zip(rec["rows"], before[video]["rows"]):
            assert np.array_equal(row["features"], src["features"]) and row["index"] == src["index"]
    assert cli("shards", "verify", tmp_path / "f").exit_code == 0


def test_dedup_groups_transformed_copies_and_filter_drops_them(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "all")
    res = cli("dedup", tmp_path / "all")
    assert res.exit_code == 0, res.stderr
    records = [json.loads(line) for line in (tmp_path / "all" / "duplicates.jsonl").read_text().splitlines()]
    groups: dict[int, set] = {}
    for r in records:
        groups.setdefault(r["group"], set()).add(r["video_id"])
    mandel = {"mandel.mp4", "mandel_half.mp4", "mandel_gray.mp4"}
    assert any(g == mandel for g in groups.values()), groups
    # other groups may only hold clips of one video (the two clips of black.mp4 are the same picture)
    assert all(g <= mandel or len(g) == 1 for g in groups.values()), groups
    kept = {r["video_id"] for r in records if r["kept"]}
    assert "mandel_half.mp4" not in kept  # lower resolution is never the kept copy
    res = cli("filter", tmp_path / "all", "-o", tmp_path / "u", "--drop-duplicates")
    assert res.exit_code == 0, res.stderr
    after = clips_by_video(tmp_path / "u")
    dropped = {(r["video_id"], r["clip_index"]) for r in records if not r["kept"]}
    present = {(v, row["clip_index"]) for v, rec in after.items() for row in rec["rows"]}
    assert present and not present & dropped


def test_metrics_hashes_and_groups_agree_serial_and_process(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "serial", "--videos-per-shard", "1")
    res = cli("split", corpus, "-o", tmp_path / "process", "--clip-seconds", "1", "--executor", "process",
              "--workers", "2", "--videos-per-shard", "3")
    assert res.exit_code == 0, res.stderr
    a, b = clips_by_video(tmp_path / "serial"), clips_by_video(tmp_path / "process")
    assert a.keys() == b.keys()
    for video in a:
        for ra, rb in zip(a[video]["rows"], b[video]["rows"]):
            assert ra["phash"] == rb["phash"]
            assert json.dumps(ra["quality"]) == json.dumps(rb["quality"])  # bit-identical, NaNs included
    for out in ("serial", "process"):
        assert cli("dedup", tmp_path / out).exit_code == 0
    groups = [sorted((r["group"], r["video_id"], r["clip_index"], r["kept"]) for r in map(
        json.loads, (tmp_path / out / "duplicates.jsonl").read_text().splitlines())) for out in ("serial", "process")]
    assert groups[0] == groups[1]


def test_dedup_tier2_adds_feature_pairs_matched_by_clip_id(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "all")
    res = cli("features", corpus, "-o", tmp_path / "feats", "--model", "resnet18", "--weights", "none",
              "--clip-seconds", "1", "--size", "32", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    # cosine -1 accepts every feature pair: all clips fall into one group, the extra pairs marked tier 2
    res = cli("dedup", tmp_path / "all", "--features", tmp_path / "feats", "--cosine", "-1")
    assert res.exit_code == 0, res.stderr
    records = [json.loads(line) for line in (tmp_path / "all" / "duplicates.jsonl").read_text().splitlines()]
    assert len(records) == 10 and {r["group"] for r in records} == {0}
    assert sum(r["kept"] for r in records) == 1 and {r["tier"] for r in records} == {1, 2}
    kept = next(r for r in records if r["kept"])
    assert kept["video_id"] != "mandel_half.mp4"  # all others are 96x64, the half copy 48x32
    bad = cli("dedup", tmp_path / "all", "--features", tmp_path / "all")
    assert bad.exit_code == 2 and "not a feature shard" in bad.stderr


def test_dedup_hashes_stored_frames_when_split_without_metrics(corpus: Path, tmp_path: Path) -> None:
    from vidprep.engine.dedup_run import signatures_from_frames

    split(corpus, tmp_path / "with")
    split(corpus, tmp_path / "without", "--no-metrics")
    stored = h5py.File(shard_paths(tmp_path / "with")[0], "r")["clips/phash"][:]
    assert np.array_equal(signatures_from_frames(shard_paths(tmp_path / "without")[0]), stored)
    assert cli("dedup", tmp_path / "without").exit_code == 0
    assert cli("dedup", tmp_path / "with").exit_code == 0
    a, b = ((tmp_path / d / "duplicates.jsonl").read_text() for d in ("with", "without"))
    assert a == b and a


def test_filter_refuses_a_damaged_duplicates_table(corpus: Path, tmp_path: Path) -> None:
    split(corpus, tmp_path / "all", "--no-metrics")
    (tmp_path / "all" / "duplicates.jsonl").write_text('{"video_id": "a", "kept": false}\n[1, 2]\n')
    res = cli("filter", tmp_path / "all", "-o", tmp_path / "f", "--drop-duplicates")
    assert res.exit_code == 2 and "line 1 is not a duplicates record" in res.stderr
    assert not (tmp_path / "f").exists()
    res = cli("filter", tmp_path / "all", "-o", tmp_path / "f", "--keep", "motion > 1")
    assert res.exit_code == 3 and "no quality metric" in (tmp_path / "f" / "errors.jsonl").read_text()


def test_augmented_copies_share_their_clip_metrics(corpus: Path, tmp_path: Path) -> None:
    res = cli("augment", corpus / "moving.mp4", "-o", tmp_path / "aug", "--clip-seconds", "1", "--crop", "32",
              "--copies", "2", "--keep-original", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    with h5py.File(shard_paths(tmp_path / "aug")[0], "r") as f:
        motion, clip = f["clips/quality/motion"][:], f["clips/clip_index"][:]
        phash = f["clips/phash"][:]
        assert f["clips/aug_index"][:].tolist() == [0, 1, 2, 0, 1, 2]
    assert not np.isnan(motion).any()
    for c in (0, 1):
        assert len(set(motion[clip == c].tolist())) == 1 and (phash[clip == c] == phash[clip == c][0]).all()
