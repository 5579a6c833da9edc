"""write_mp4 / write_image: frame-exact clips and correct colour order; nothing half-written is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from videos import child_processes, number_frame, read_frame_number

from vidprep.errors import EncodeError
from vidprep.media.decode import decode
from vidprep.media.encode import write_image, write_mp4
from vidprep.media.probe import count_video_packets, probe


def test_write_mp4_is_frame_exact(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    order = [5, 9, 2, 2, 40, 17, 0, 33, 8, 8, 8, 21]  # repeats and jumps must survive as-is
    assert write_mp4(out, (number_frame(n, 64, 48) for n in order), fps=12.5) == len(order)
    info = probe(out)
    assert (info.width, info.height, info.pix_fmt, info.avg_fps) == (64, 48, "yuv420p", 12.5)
    assert count_video_packets(out) == len(order)
    frames = list(decode(info))
    assert [read_frame_number(f.rgb) for f in frames] == order
    assert [f.pts_s for f in frames] == pytest.approx([k / 12.5 for k in range(len(order))], abs=1e-6)


def test_write_mp4_odd_size_uses_444_and_ntsc_rate(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    frames = np.stack([number_frame(n, 33, 19) for n in range(6)])
    assert write_mp4(out, frames, fps=30000 / 1001) == 6
    info = probe(out)
    assert (info.width, info.height, info.pix_fmt) == (33, 19, "yuv444p")
    assert info.avg_fps == pytest.approx(30000 / 1001, rel=1e-9)
    decoded = [f.rgb for f in decode(info)]
    assert len(decoded) == 6 and np.abs(decoded[3].astype(int) - frames[3].astype(int)).mean() < 4


def test_write_mp4_rejects_bad_input_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="no frames"):
        write_mp4(tmp_path / "empty.mp4", [], fps=25)
    with pytest.raises(EncodeError, match="uint8 RGB"):
        write_mp4(tmp_path / "float.mp4", [np.zeros((8, 8, 3), np.float32)], fps=25)
    with pytest.raises(EncodeError, match=r"all frames must have shape \(8, 8, 3\)"):
        write_mp4(tmp_path / "mixed.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], fps=25)
    assert list(tmp_path.iterdir()) == []
    assert child_processes() == []


def test_write_mp4_failing_source_kills_ffmpeg_and_cleans_up(tmp_path: Path) -> None:
    def frames() -> Iterator[np.ndarray]:
        for n in range(3):
            yield number_frame(n, 32, 24)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_mp4(tmp_path / "broken.mp4", frames(), fps=25)
    assert list(tmp_path.iterdir()) == [] and child_processes() == []


def test_write_mp4_replaces_existing_file_atomically(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old")
    write_mp4(out, [number_frame(7, 32, 24)] * 2, fps=25)
    assert [read_frame_number(f.rgb) for f in decode(probe(out))] == [7, 7]
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_write_png_is_lossless_and_rgb_ordered(tmp_path: Path) -> None:
    import cv2

    rgb = np.zeros((11, 17, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[3, 5] = (1, 2, 3)
    write_image(tmp_path / "f.png", rgb)
    bgr = cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(bgr[..., ::-1], rgb)


def test_write_jpg_quality_and_colour(tmp_path: Path) -> None:
    import cv2

    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 220  # pure-ish red: a BGR/RGB swap would make it blue
    write_image(tmp_path / "hi.jpg", rgb, quality=95)
    write_image(tmp_path / "lo.JPEG", rgb, quality=10)
    back = cv2.imread(str(tmp_path / "hi.jpg"))[..., ::-1].astype(int)
    assert np.abs(back - rgb).mean() < 3 and back[..., 0].mean() > 200 and back[..., 2].mean() < 20
    assert (tmp_path / "lo.JPEG").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_write_image_errors(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match=r"unsupported image type \.bmp"):
        write_image(tmp_path / "x.bmp", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(EncodeError, match="uint8 RGB"):
        write_image(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(EncodeError, match="cannot write image"):
        write_image(tmp_path / "missing_dir" / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == []
