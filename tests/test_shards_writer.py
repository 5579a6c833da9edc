"""ShardWriter and format.validate on synthetic numpy data (no videos)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import vidprep
from vidprep.errors import ShardError
from vidprep.shards import ShardWriter, shard_name, validate
from vidprep.shards.manifest import cleanup_temp, find_temp

UNICODE_IDS = ['vidéo "quoted" 1.mp4', "a b/c'd ✓/清.mkv", "plain"]


def pixels(n: int, h: int, w: int, tag: int) -> np.ndarray:
    """Frames whose pixels encode (tag, frame number), so misplaced rows show up."""
    rgb = np.zeros((n, h, w, 3), np.uint8)
    rgb[..., 0] = tag
    rgb[..., 1] = np.arange(n, dtype=np.uint8)[:, None, None]
    rgb[..., 2] = np.arange(w, dtype=np.uint8)[None, None, :]
    return rgb


def write_videos(w: ShardWriter, sizes: list[tuple[str, int, int, int]]) -> list[int]:
    """Add videos (id, frames, h, w) with their frames; returns their numbers."""
    vs = []
    for k, (vid, n, h, wd) in enumerate(sizes):
        v = w.add_video(vid, f"/data/{vid}", {"fps": 25.0, "width": wd, "height": h, "codec": "h264"})
        w.append_frames(v, pixels(n, h, wd, k) if w.store_frames else None, np.arange(n) / 25.0, np.arange(n) * 2)
        vs.append(v)
    return vs


def test_round_trip_frames_odd_sizes_unicode_ids(tmp_path: Path) -> None:
    path = tmp_path / shard_name(0)
    with ShardWriter(path, kind="frames", config={"split": {"fps": 1}}, class_names=["cat", "dog"]) as w:
        sizes = [(UNICODE_IDS[0], 6, 11, 17), (UNICODE_IDS[1], 4, 5, 8), (UNICODE_IDS[2], 3, 11, 17)]
        v0, v1, v2 = write_videos(w, sizes)
        w.add_clip(v1, frame_start=1, frame_stop=4, start_s=0.04, end_s=0.16, clip_index=0, label=1, padded=2)
        w.add_clip(v0, frame_start=0, frame_stop=3, start_s=0.0, end_s=0.12, clip_index=0, label=0,
                   aug_params={"angle": 3.5, "flip": True})
        w.add_clip(v2, frame_start=0, frame_stop=3, start_s=0.0, end_s=0.12, clip_index=0)
        w.add_clip(v0, frame_start=3, frame_stop=6, start_s=0.12, end_s=0.24, clip_index=1, aug_index=2)
        w.set_video_array(v0, "scene_score", np.linspace(0, 1, 6))
        w.set_meta("errors_json", json.dumps([{"video_id": "x"}]))
        summary = w.commit()
    assert summary.path == path and path.exists() and not find_temp(tmp_path)
    assert (summary.videos, summary.clips, summary.frames) == (3, 4, 13)
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and summary.bytes == path.stat().st_size
    assert summary.video_ids == tuple(UNICODE_IDS)
    assert validate(path) == []
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "vidprep-shard" and f.attrs["format_version"] == 1
        assert f.attrs["kind"] == "frames" and f.attrs["vidprep_version"] == vidprep.__version__
        assert json.loads(f["meta/config_json"].asstr()[()]) == {"split": {"fps": 1}}
        assert json.loads(f["meta/class_names"].asstr()[()]) == ["cat", "dog"]
        assert list(f["videos/id"].asstr()[:]) == UNICODE_IDS
        assert f["videos/clip_offset"][:].tolist() == [0, 2, 3, 4]
        assert f["clips/video_index"][:].tolist() == [0, 0, 1, 2]
        assert f["clips/clip_index"][:].tolist() == [0, 1, 0, 0]
        assert f["clips/aug_index"].dtype == np.int16 and f["clips/aug_index"][:].tolist() == [0, 2, 0, 0]
        assert f["clips/padded"][:].tolist() == [0, 0, 2, 0]
        assert json.loads(f["clips/aug_params"].asstr()[0]) == {"angle": 3.5, "flip": True}
        assert f["clips/aug_params"].asstr()[1] == ""
        assert f["frames/0/rgb"].shape == (6, 11, 17, 3) and f["frames/1/rgb"].shape == (4, 5, 8, 3)
        np.testing.assert_array_equal(f["frames/1/rgb"][:], pixels(4, 5, 8, 1))
        assert f["frames/1/pts_s"].dtype == np.float64 and f["frames/1/index"][:].tolist() == [0, 2, 4, 6]
        np.testing.assert_allclose(f["frames/0/scene_score"][:], np.linspace(0, 1, 6))
        assert "features" not in f["clips"]
        assert json.loads(f["meta/errors_json"][()].decode()) == [{"video_id": "x"}]


def test_jpeg_codec_round_trip(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / shard_name(1), kind="frames", config={}, frame_codec="jpeg", jpeg_quality=95)
    v = w.add_video("j", "/j.mp4", {})
    smooth = np.broadcast_to(np.linspace(0, 255, 17, dtype=np.uint8)[None, None, :, None], (2, 11, 17, 3)).copy()
    assert w.append_frames(v, smooth, np.array([0.0, 0.5]), np.array([0, 1])) == 0
    np.testing.assert_allclose(w.read_frames(v, 0, 2), smooth, atol=12)
    w.add_clip(v, frame_start=0, frame_stop=2, start_s=0, end_s=0.5, clip_index=0)
    path = w.commit().path
    assert validate(path) == []
    with h5py.File(path, "r") as f:
        assert f["frames/0/jpeg"].shape == (2,) and "rgb" not in f["frames/0"]
        assert h5py.check_vlen_dtype(f["frames/0/jpeg"].dtype) == np.uint8
        assert bytes(f["frames/0/jpeg"][0][:2]) == b"\xff\xd8"


@pytest.mark.parametrize(("shape", "dtype"), [((7,), np.float32), ((3, 5), np.float16), ((4,), np.uint8)])
def test_features_spill_and_reorder(tmp_path: Path, shape: tuple[int, ...], dtype: type) -> None:
    w = ShardWriter(tmp_path / shard_name(0), kind="features", config={"features": {"model": "m"}},
                    store_frames=False, feature_buffer_bytes=64)
    vs = write_videos(w, [("a", 10, 4, 4), ("b", 10, 4, 4), ("c", 10, 4, 4)])
    order = [(2, 0), (0, 0), (1, 0), (0, 1), (2, 1), (1, 1)]  # (video, clip): deliberately not sorted by video
    for v, c in order:
        w.add_clip(vs[v], frame_start=c, frame_stop=c + 2, start_s=c, end_s=c + 1, clip_index=c,
                   features=np.full(shape, 10 * v + c, dtype))
    w.drop_video(vs[1])
    path = w.commit().path
    assert validate(path) == []
    with h5py.File(path, "r") as f:
        assert "rgb" not in f["frames/0"] and f["frames/0/pts_s"].shape == (10,)
        feats = f["clips/features"]
        assert feats.shape == (4, *shape) and feats.dtype == dtype
        assert feats[:].reshape(4, -1)[:, 0].tolist() == [0, 1, 20, 21]
        assert list(f["videos/id"].asstr()[:]) == ["a", "c"]


def test_drop_video_renumbers_groups(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / shard_name(0), kind="frames", config={})
    vs = write_videos(w, [("a", 3, 5, 6), ("b", 3, 7, 6), ("c", 2, 9, 6)])
    for v in vs:
        w.add_clip(v, frame_start=0, frame_stop=2, start_s=0, end_s=1, clip_index=0)
    w.drop_video(vs[0])
    with pytest.raises(ShardError):
        w.append_frames(vs[0], pixels(1, 5, 6, 0), [0.0], [0])
    summary = w.commit()
    assert summary.video_ids == ("b", "c") and summary.frames == 5
    with h5py.File(summary.path, "r") as f:
        assert sorted(f["frames"]) == ["0", "1"] and f["frames/1/rgb"].shape == (2, 9, 6, 3)
        assert f["frames/1/rgb"][0, 0, 0, 0] == 2


def test_validate_catches_corruption(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / shard_name(0), kind="frames", config={})
    vs = write_videos(w, [("a", 4, 3, 5), ("b", 4, 3, 5)])
    for v in vs:
        w.add_clip(v, frame_start=0, frame_stop=4, start_s=0, end_s=1, clip_index=0)
    path = w.commit().path
    with h5py.File(path, "r+") as f:
        f["videos/clip_offset"][:] = [0, 2, 1]
    assert any("clip_offset" in p for p in validate(path))
    with h5py.File(path, "r+") as f:
        f["videos/clip_offset"][:] = [0, 1, 2]
        f["clips/frame_stop"][1] = 9
    assert any("point past" in p for p in validate(path))
    with h5py.File(path, "r+") as f:
        f["clips/frame_stop"][1] = 4
        f["clips/video_index"][:] = [1, 0]
    assert any("video_index" in p for p in validate(path))
    with h5py.File(path, "r+") as f:
        del f.attrs["format_version"]
    assert any("format_version" in p for p in validate(path))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert validate(tmp_path / "junk.h5")[0].startswith("cannot open")


def test_abort_and_context_manager_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / shard_name(0), kind="frames", config={}) as w:
            write_videos(w, [("a", 2, 3, 3)])
            raise RuntimeError("decode failed")
    with ShardWriter(tmp_path / shard_name(1), kind="frames", config={}) as w:
        write_videos(w, [("a", 2, 3, 3)])
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_a_shard_error(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / shard_name(0), kind="frames", config={})
    v = w.add_video("a", "/a", {})
    with pytest.raises(ShardError, match="already"):
        w.add_video("a", "/a", {})
    with pytest.raises(ShardError, match="uint8"):
        w.append_frames(v, np.zeros((1, 3, 3, 3), np.float32), [0.0], [0])
    w.append_frames(v, pixels(1, 3, 3, 0), [0.0], [0])
    with pytest.raises(ShardError, match="jpeg"):
        w.append_frames(v, pixels(1, 4, 3, 0), [0.1], [1])
    with pytest.raises(ShardError, match="features"):
        w.add_clip(v, frame_start=0, frame_stop=1, start_s=0, end_s=0, clip_index=0, features=np.zeros(3))
    w.add_clip(v, frame_start=0, frame_stop=5, start_s=0, end_s=0, clip_index=0)
    with pytest.raises(ShardError, match="point past"):
        w.commit()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ShardError):
        ShardWriter(tmp_path / shard_name(0), kind="frames", config={}, store_frames=False)


def test_empty_shard_is_valid(tmp_path: Path) -> None:
    summary = ShardWriter(tmp_path / shard_name(0), kind="features", config={}).commit()
    assert (summary.videos, summary.clips) == (0, 0) and validate(summary.path) == []


CRASH_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np
    from vidprep.shards import ShardWriter
    w = ShardWriter(sys.argv[1], kind="frames", config={})
    v = w.add_video("a", "/a", {})
    w.append_frames(v, np.zeros((8, 32, 32, 3), np.uint8), np.arange(8.0), np.arange(8))
    w.add_clip(v, frame_start=0, frame_stop=8, start_s=0, end_s=1, clip_index=0)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sigkill_mid_write_leaves_only_a_temp_file(tmp_path: Path) -> None:
    final = tmp_path / shard_name(3)
    env = {**os.environ, "PYTHONPATH": str(Path(vidprep.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(final)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not final.exists()
    temps = find_temp(tmp_path)
    assert len(temps) == 1 and temps[0].name.startswith(".shard-00003.h5.tmp-")
    assert cleanup_temp(tmp_path) == temps
    assert list(tmp_path.iterdir()) == []


def test_cleanup_keeps_temp_of_live_writer(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / shard_name(0), kind="frames", config={})
    assert cleanup_temp(tmp_path) == [] and w.temp_path.exists()
    w.abort()
    assert not w.temp_path.exists()


def test_import_is_light() -> None:
    code = ("import sys, vidprep.shards as s; s.ShardSet, s.ShardWriter, s.validate; "
            "import vidprep.shards.inspect, vidprep.shards.manifest; "
            "bad = [m for m in ('torch', 'cv2', 'vidprep.stages') if m in sys.modules]; assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": str(Path(vidprep.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
