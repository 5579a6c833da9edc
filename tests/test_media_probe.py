"""probe(): metadata and display geometry from ffprobe; one-line errors that name the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from videos import FFMPEG, ffprobe_frames, ffprobe_pict_types, run

from vidprep.errors import DependencyError, InputError, ProbeError
from vidprep.media import ffmpeg
from vidprep.media.probe import (count_video_packets, display_size, is_vfr, normalize_rotation, parse_ratio, probe,
                                 start_early)


def test_numbered_video_metadata(numbered_video: Path) -> None:
    info = probe(numbered_video)
    assert info.path == str(numbered_video.absolute())
    assert (info.coded_width, info.coded_height, info.width, info.height) == (160, 120, 160, 120)
    assert info.codec == "h264" and "mp4" in info.container.split(",")
    assert info.avg_fps == pytest.approx(25.0) and info.real_fps == pytest.approx(25.0) and not info.vfr
    assert info.num_frames == 60 and info.duration_s == pytest.approx(2.4, abs=0.05)
    assert (info.rotation, info.sar, info.bit_depth, info.has_alpha, info.has_audio) == (0, 1.0, 8, False, False)
    assert info.to_dict()["pix_fmt"] == "yuv420p"


def test_fixture_has_b_frames(numbered_video: Path) -> None:
    assert "B" in ffprobe_pict_types(numbered_video)


def test_audio_stream_detected(audio_video: Path, silent_video: Path) -> None:
    assert probe(audio_video).has_audio is True
    assert probe(silent_video).has_audio is False


@pytest.mark.parametrize(("fixture", "rotation"), [("rotated_video", 90), ("rotated_ccw_video", 270)])
def test_rotation_is_clockwise_and_swaps_display_size(fixture: str, rotation: int,
                                                       request: pytest.FixtureRequest) -> None:
    info = probe(request.getfixturevalue(fixture))
    assert info.rotation == rotation
    assert (info.coded_width, info.coded_height, info.width, info.height) == (160, 120, 120, 160)


def test_sar_resampled_to_square_display_size(sar_video: Path) -> None:
    info = probe(sar_video)
    assert info.sar == 2.0
    assert (info.coded_width, info.coded_height, info.width, info.height) == (80, 60, 160, 60)


def test_vfr_flag_and_offset_start(vfr_video: Path, offset_video: Path) -> None:
    assert probe(vfr_video).vfr is True
    info = probe(offset_video)
    assert info.start_time_s == pytest.approx(10.0, abs=0.01)
    assert info.num_frames is None  # matroska has no frame count; it must stay unknown, not guessed


def test_odd_size_and_high_bit_depth(odd_size_video: Path, make_video: Callable[..., Path]) -> None:
    odd = probe(odd_size_video)
    assert (odd.width, odd.height, odd.pix_fmt) == (17, 11, "yuv444p")
    ten = probe(make_video("ten_bit.mkv", "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-crf", "0"))
    assert (ten.bit_depth, ten.has_alpha) == (10, False)


def test_packet_count_matches_decoded_frames(numbered_video: Path, vfr_video: Path) -> None:
    assert count_video_packets(numbered_video) == len(ffprobe_frames(numbered_video)) == 60
    assert count_video_packets(vfr_video) == 60


def test_early_probe_is_taken_once_with_the_same_result_or_error(numbered_video: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """start_early runs ffprobe on a thread; the next probe(path) returns exactly what a direct probe returns (no
    second ffprobe), a later one probes again; an error surfaces at probe(), not at start_early."""
    import threading

    direct = probe(numbered_video)
    calls: list[str] = []  # the thread each ffprobe ran on
    run_tool = ffmpeg.run_tool
    monkeypatch.setattr(ffmpeg, "run_tool",
                        lambda argv, **kw: calls.append(threading.current_thread().name) or run_tool(argv, **kw))
    start_early(numbered_video)
    assert probe(numbered_video) == direct and calls == ["vidprep-probe-early"]
    assert probe(numbered_video) == direct and calls == ["vidprep-probe-early", "MainThread"]
    start_early(tmp_path / "missing.mp4")
    with pytest.raises(InputError):
        probe(tmp_path / "missing.mp4")


def test_empty_file_is_probe_error_naming_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ProbeError, match=r"empty\.mp4: empty file"):
        probe(empty)


def test_text_file_is_probe_error_naming_file(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 10)
    with pytest.raises(ProbeError) as err:
        probe(fake)
    message = str(err.value)
    assert message.startswith(str(fake)) and "\n" not in message and "ffprobe failed" in message


def test_unsupported_container_is_rejected(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    run([FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine", "-t", "0.2", str(wav)])
    with pytest.raises(ProbeError, match="container format 'wav' is not supported"):
        probe(wav)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    m4a = tmp_path / "tone.m4a"
    run([FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine", "-t", "0.2", "-c:a", "aac", str(m4a)])
    with pytest.raises(ProbeError, match=r"tone\.m4a: no video stream \(streams: audio\)"):
        probe(m4a)


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="not a regular file"):
        probe(tmp_path)


def test_probe_timeout_is_probe_error(numbered_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffmpeg, "ffprobe_argv", lambda *a, **k: ["sleep", "5"])
    with pytest.raises(ProbeError, match="timed out after 0.3 s"):
        probe(numbered_video, timeout_s=0.3)


def test_tools_present_and_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    ffmpeg.require_ffmpeg()
    versions = ffmpeg.tool_versions()
    assert set(versions) == {"ffmpeg", "ffprobe"} and all(any(c.isdigit() for c in v) for v in versions.values())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DependencyError, match="apt-get install -y ffmpeg"):
        ffmpeg.require_ffmpeg()


@pytest.mark.parametrize(("raw", "expected"),
                         [(-90, 270), (90, 90), (270, 270), (-180, 180), (360, 0), (44, 0), (46, 90)])
def test_normalize_rotation(raw: float, expected: int) -> None:
    assert normalize_rotation(raw) == expected


def test_geometry_and_rate_helpers() -> None:
    assert display_size(80, 60, 2.0, 0) == (160, 60)
    assert display_size(80, 60, 2.0, 90) == (60, 160)
    assert display_size(720, 480, 8 / 9, 0) == (640, 480)
    assert parse_ratio("30000/1001") == pytest.approx(29.97, abs=1e-3)
    assert parse_ratio("0/0") == 0.0 and parse_ratio(None) == 0.0 and parse_ratio("2:1") == 2.0
    assert is_vfr(29.97, 30.0) is False and is_vfr(24.3, 30.0) is True and is_vfr(0.0, 30.0) is False
