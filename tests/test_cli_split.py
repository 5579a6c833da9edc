"""`vidprep split` end to end: frame-exact shards, clips, scenes, labels, file formats, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from clihelp import cli, frame_numbers, read_videos, shard_paths
from videos import FFMPEG, ffprobe_frames, relative, run


def test_all_frames_match_ffprobe_and_numbers(numbered_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = cli("split", numbered_video, "-o", out, "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip().splitlines() == [str(out / "shard-00000.h5")]
    video = read_videos(out)["numbered.mp4"]
    expected = relative(ffprobe_frames(numbered_video))
    assert np.allclose(video["pts"], expected, atol=1e-6)
    assert video["index"].tolist() == list(range(len(expected)))
    assert frame_numbers(video["rgb"]) == video["index"].tolist()
    clips = video["clips"]
    assert clips["frame_stop"].tolist() == [i + 1 for i in range(len(expected))]


def test_fps_sampling_keeps_real_pts(numbered_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("split", numbered_video, "-o", out, "--fps", "2", "--size", "60", "--executor", "serial").exit_code == 0
    video = read_videos(out)["numbered.mp4"]
    assert video["index"].tolist() == [0, 13, 25, 38, 50]
    assert np.allclose(video["pts"], video["index"] / 25.0, atol=1e-6)
    assert frame_numbers(video["rgb"]) == video["index"].tolist()
    assert video["rgb"].shape[1:] == (60, 80, 3)


def test_clip_frames_with_stride_are_frame_exact(numbered_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = cli("split", numbered_video, "-o", out, "--clip-frames", "8", "--stride", "4", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    video = read_videos(out)["numbered.mp4"]
    clips = video["clips"]
    assert len(clips["clip_index"]) == (60 - 8) // 4 + 1
    for k, (a, b) in enumerate(zip(clips["frame_start"], clips["frame_stop"])):
        assert frame_numbers(video["rgb"][a:b]) == list(range(4 * k, 4 * k + 8))
    assert video["rgb"].shape[0] == 60, "overlapping clips must not store frames twice"


def test_clip_seconds_on_vfr_selects_by_real_time(vfr_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = cli("split", vfr_video, "-o", out, "--clip-seconds", "0.5", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    video = read_videos(out)["vfr.mp4"]
    pts = video["pts"]
    assert np.allclose(pts, relative(ffprobe_frames(vfr_video)), atol=1e-6)
    clips = video["clips"]
    assert len(clips["clip_index"]) >= 3
    for a, b, start in zip(clips["frame_start"], clips["frame_stop"], clips["start_s"]):
        window = np.floor(start / 0.5 + 1e-9) * 0.5  # windows [k*0.5, k*0.5 + 0.5) on real time
        inside = np.flatnonzero((pts >= window - 1e-6) & (pts < window + 0.5 - 1e-6))
        assert list(range(a, b)) == inside.tolist()
        assert pts[a] == pytest.approx(start)


def test_tail_pad_marks_padding(numbered_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("split", numbered_video, "-o", out, "--clip-frames", "16", "--tail", "pad",
               "--executor", "serial").exit_code == 0
    clips = read_videos(out)["numbered.mp4"]["clips"]
    assert clips["padded"].tolist() == [0, 0, 0, 4]
    assert (clips["frame_stop"] - clips["frame_start"]).tolist() == [16, 16, 16, 12]


def test_rotated_and_offset_videos(rotated_video: Path, offset_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("split", rotated_video, offset_video, "-o", out, "--every", "10", "--executor", "serial").exit_code == 0
    videos = read_videos(out)
    assert videos["rotated_cw90.mp4"]["rgb"].shape[1:] == (160, 120, 3)
    offset = videos["offset.mkv"]
    assert offset["pts"][0] == 0.0
    assert offset["index"].tolist() == [0, 10, 20, 30, 40, 50]
    assert frame_numbers(offset["rgb"]) == offset["index"].tolist()


def _mp4_numbers(path: Path) -> list[int]:
    from videos import ffmpeg_rgb

    return frame_numbers(ffmpeg_rgb(path, 160, 120))


def test_mp4_and_jpg_formats_agree_with_shards(numbered_video: Path, tmp_path: Path) -> None:
    args = ["--clip-frames", "10", "--stride", "20", "--executor", "serial"]
    assert cli("split", numbered_video, "-o", tmp_path / "h5", *args).exit_code == 0
    assert cli("split", numbered_video, "-o", tmp_path / "mp4", "--format", "mp4", *args).exit_code == 0
    assert cli("split", numbered_video, "-o", tmp_path / "jpg", "--format", "jpg", *args).exit_code == 0
    shard = read_videos(tmp_path / "h5")["numbered.mp4"]
    mp4_index = [json.loads(line) for line in (tmp_path / "mp4" / "index.jsonl").read_text().splitlines()]
    assert len(mp4_index) == len(shard["clips"]["clip_index"]) == 3
    for rec, a in zip(mp4_index, shard["clips"]["frame_start"]):
        assert _mp4_numbers(tmp_path / "mp4" / rec["files"][0]) == list(range(a, a + 10))
        assert rec["ordinals"] == list(range(a, a + 10))
    jpg_index = [json.loads(line) for line in (tmp_path / "jpg" / "index.jsonl").read_text().splitlines()]
    files = [f for rec in jpg_index for f in rec["files"]]
    assert len(files) == 30 and all((tmp_path / "jpg" / f).is_file() for f in files)
    assert [r["pts_s"] for r in jpg_index] == [shard["pts"][a:a + 10].tolist() for a in shard["clips"]["frame_start"]]


@pytest.fixture(scope="session")
def cuts_video(video_dir: Path) -> Path:
    """Three visibly different sources, 30 frames each at 25 fps: hard cuts at frames 30 and 60."""
    path = video_dir / "cuts.mp4"
    if not path.exists():
        src = [f"{s}=size=160x120:rate=25,trim=duration=1.2,setpts=PTS-STARTPTS,format=yuv420p"
               for s in ("testsrc2", "mandelbrot", "smptebars")]
        graph = ";".join(f"{s}[v{i}]" for i, s in enumerate(src)) + ";[v0][v1][v2]concat=n=3:v=1:a=0[out]"
        run([FFMPEG, "-nostdin", "-v", "error", "-y", "-filter_complex", graph, "-map", "[out]",
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)])
    return path


def test_scenes_cut_at_source_boundaries(cuts_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = cli("split", cuts_video, "-o", out, "--scenes", "--clip-frames", "8", "--size", "64", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    video = read_videos(out)["cuts.mp4"]
    assert video["extra"]["scene_score"].shape == (90,)
    clips = video["clips"]
    for a, b in zip(clips["frame_start"], clips["frame_stop"]):
        assert a // 30 == (b - 1) // 30, f"clip [{a},{b}) crosses a cut"
    assert len(clips["clip_index"]) == 9
    res = cli("split", cuts_video, "-o", tmp_path / "scenes", "--scenes", "--executor", "serial")
    scenes = read_videos(tmp_path / "scenes")["cuts.mp4"]["clips"]
    assert scenes["frame_start"].tolist() == [0, 30, 60]


def _labelled_tree(root: Path, silent_video: Path, numbered_video: Path) -> Path:
    for cls, src in (("cats", silent_video), ("dogs", numbered_video)):
        (root / cls).mkdir(parents=True)
        shutil.copy(src, root / cls / "a.mp4")
    return root


def test_labels_from_dirs_and_csv(silent_video: Path, numbered_video: Path, tmp_path: Path) -> None:
    tree = _labelled_tree(tmp_path / "data", silent_video, numbered_video)
    out = tmp_path / "out"
    assert cli("split", tree, "-o", out, "--fps", "5", "--label-from-dir", "--executor", "serial").exit_code == 0
    videos = read_videos(out)
    assert set(videos["cats/a.mp4"]["clips"]["label"]) == {0}
    assert set(videos["dogs/a.mp4"]["clips"]["label"]) == {1}
    with h5py.File(shard_paths(out)[0]) as f:
        assert json.loads(f["meta/class_names"][()]) == ["cats", "dogs"]
    csv = tmp_path / "labels.csv"
    csv.write_text("video_id,label\ndogs/a.mp4,walk\n")
    out2 = tmp_path / "out2"
    assert cli("split", tree, "-o", out2, "--fps", "5", "--labels", csv, "--executor", "serial").exit_code == 0
    videos = read_videos(out2)
    assert set(videos["dogs/a.mp4"]["clips"]["label"]) == {0}
    assert set(videos["cats/a.mp4"]["clips"]["label"]) == {-1}
    csv.write_text("dogs/a.mp4\n")
    res = cli("split", tree, "-o", tmp_path / "out3", "--labels", csv, "--executor", "serial")
    assert res.exit_code == 2 and "line 1" in res.stderr


def test_resume_keeps_shards_and_refuses_other_config(numbered_video: Path, silent_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [numbered_video, silent_video, "-o", out, "--fps", "5", "--videos-per-shard", "1", "--executor", "serial"]
    assert cli("split", *args).exit_code == 0
    first = {p.name: p.stat().st_mtime_ns for p in shard_paths(out)}
    assert len(first) == 2
    shard_paths(out)[1].unlink()
    res = cli("split", *args)
    assert res.exit_code == 0
    assert res.stdout.strip().splitlines() == [str(out / "shard-00001.h5")]
    assert shard_paths(out)[0].stat().st_mtime_ns == first["shard-00000.h5"]
    res = cli("split", numbered_video, "-o", out, "--fps", "3", "--executor", "serial")
    assert res.exit_code == 2 and "different config" in res.stderr
    assert cli("split", numbered_video, "-o", out, "--fps", "3", "--overwrite", "--executor", "serial").exit_code == 0
    assert len(shard_paths(out)) == 1


def test_bad_options_fail_before_decoding(numbered_video: Path, tmp_path: Path) -> None:
    res = cli("split", numbered_video, "-o", tmp_path / "o", "--fps", "2", "--every", "3")
    assert res.exit_code == 2 and "--fps" in res.stderr
    assert not (tmp_path / "o").exists()
    res = cli("split", numbered_video, "-o", tmp_path / "o", "--tail", "sometimes")
    assert res.exit_code == 2 and "--tail" in res.stderr


def test_deinterlace_option(interlaced_video: Path, tmp_path: Path) -> None:
    stored = {}
    for mode in ("auto", "off"):
        out = tmp_path / mode
        res = cli("split", interlaced_video, "-o", out, "--fps", "5", "--deinterlace", mode, "--executor", "serial")
        assert res.exit_code == 0, res.stderr
        stored[mode] = read_videos(out)["interlaced.mkv"]
    assert stored["auto"]["index"].tolist() == stored["off"]["index"].tolist() == list(range(0, 50, 5))
    woven = stored["off"]["rgb"].astype(np.int16)
    deinterlaced = stored["auto"]["rgb"].astype(np.int16)
    adjacent_rows = [np.abs(np.diff(v, axis=1)).mean() for v in (woven, deinterlaced)]
    assert adjacent_rows[0] > 2 * adjacent_rows[1]  # measured 4.5x
    res = cli("split", interlaced_video, "-o", tmp_path / "bad", "--deinterlace", "maybe")
    assert res.exit_code == 2 and "--deinterlace" in res.stderr
