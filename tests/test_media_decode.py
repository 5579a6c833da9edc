"""decode(): exact frame sequence, timestamps and ordinals; sampling; geometry; errors; process cleanup."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from videos import (FFMPEG, child_processes, expected_fps_ordinals, ffmpeg_rgb, ffprobe_frames, read_frame_number,
                    relative, run)

from vidprep.errors import ConfigError, DecodeError
from vidprep.media.decode import decode, decode_argv, output_size
from vidprep.media.ffmpeg import FfmpegProcess
from vidprep.media.probe import probe
from vidprep.media.seek import uniform_indices
from vidprep.types import DecodedFrame, Sampling, SizeSpec


def frames_of(path: Path, sampling: Sampling = Sampling(), size: SizeSpec = SizeSpec(),
              **kw: object) -> list[DecodedFrame]:
    return list(decode(probe(path), sampling, size, **kw))


def numbers(frames: list[DecodedFrame]) -> list[int]:
    return [read_frame_number(f.rgb) for f in frames]


@pytest.fixture(scope="module")
def all_frames(numbered_video: Path) -> list[DecodedFrame]:
    return frames_of(numbered_video)


def test_every_frame_with_ffprobe_timestamps_and_ordinals(all_frames: list[DecodedFrame],
                                                          numbered_video: Path) -> None:
    truth = relative(ffprobe_frames(numbered_video))
    assert len(all_frames) == len(truth) == 60
    assert [f.pts_s for f in all_frames] == pytest.approx(truth, abs=1e-6)
    assert [f.index for f in all_frames] == list(range(60)) == numbers(all_frames)
    first = all_frames[0].rgb
    assert first.dtype == np.uint8 and first.shape == (120, 160, 3) and first.flags.c_contiguous


def test_vfr_timestamps_are_real(vfr_video: Path) -> None:
    frames = frames_of(vfr_video)
    truth = relative(ffprobe_frames(vfr_video))
    gaps = np.diff(truth)
    assert gaps.max() > 3 * gaps.min()  # the fixture really is uneven
    assert [f.pts_s for f in frames] == pytest.approx(truth, abs=1e-6)
    assert [f.index for f in frames] == list(range(60)) == numbers(frames)


@pytest.mark.parametrize("fps", [2.0, 7.5])
def test_fps_sampling_picks_first_frame_at_or_after_each_tick(vfr_video: Path, fps: float) -> None:
    frames = frames_of(vfr_video, Sampling("fps", fps))
    truth = ffprobe_frames(vfr_video)
    expected = expected_fps_ordinals(truth, fps)
    assert [f.index for f in frames] == expected == numbers(frames)
    assert [f.pts_s for f in frames] == pytest.approx([relative(truth)[i] for i in expected], abs=1e-6)


def test_fps_sampling_on_constant_rate(numbered_video: Path) -> None:
    # 25 fps, ticks every 0.5 s: frames at 0, 0.52, 1.0, 1.52, 2.0 s (0.5 and 1.5 s fall between frames).
    assert [f.index for f in frames_of(numbered_video, Sampling("fps", 2))] == [0, 13, 25, 38, 50]


def test_fps_above_source_rate_never_duplicates(numbered_video: Path) -> None:
    frames = frames_of(numbered_video, Sampling("fps", 100), SizeSpec(short_side=24))
    assert [f.index for f in frames] == list(range(60))


def test_every_n(numbered_video: Path) -> None:
    frames = frames_of(numbered_video, Sampling("every", 7))
    assert [f.index for f in frames] == list(range(0, 60, 7)) == numbers(frames)
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(0, 60, 7)], abs=1e-6)


def test_every_1_is_decoded_as_every_frame(numbered_video: Path, all_frames: list[DecodedFrame]) -> None:
    """--every 1 runs the plain all-frames decode (no select, one showinfo): same frames, pts and ordinals."""
    from vidprep.config import SplitConfig

    assert SplitConfig(every=1).sampling() == Sampling() and SplitConfig(every=2).sampling() == Sampling("every", 2)
    every1 = frames_of(numbered_video, Sampling("every", 1))
    assert [(f.index, f.pts_s) for f in every1] == [(f.index, f.pts_s) for f in all_frames]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(every1, all_frames, strict=True))


def test_uniform_n(numbered_video: Path) -> None:
    frames = frames_of(numbered_video, Sampling("uniform", 7))
    assert uniform_indices(60, 7) == [4, 12, 21, 30, 38, 47, 55]
    assert [f.index for f in frames] == [4, 12, 21, 30, 38, 47, 55] == numbers(frames)
    more_than_there_are = frames_of(numbered_video, Sampling("uniform", 100), SizeSpec(short_side=24))
    assert [f.index for f in more_than_there_are] == list(range(60))


@pytest.mark.parametrize(("total", "count"), [(60, 1), (60, 59), (61, 60), (1000, 37), (7, 7), (3, 10)])
def test_uniform_indices_are_segment_middles(total: int, count: int) -> None:
    idx = uniform_indices(total, count)
    assert len(idx) == min(total, count) and idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < total
    if count < total:
        assert all(abs(i - (k + 0.5) * total / count) < 1 for k, i in enumerate(idx))


def test_offset_video_starts_at_zero(offset_video: Path) -> None:
    frames = frames_of(offset_video, Sampling("every", 10))
    assert probe(offset_video).start_time_s == pytest.approx(10.0, abs=0.01)
    assert [f.index for f in frames] == list(range(0, 60, 10)) == numbers(frames)
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(0, 60, 10)], abs=1e-3)
    assert frames[0].pts_s == 0.0
    ticks = frames_of(offset_video, Sampling("fps", 2), SizeSpec(short_side=24))
    assert [f.index for f in ticks] == [0, 13, 25, 38, 50]  # the first tick is the first frame, not t=0 of the file


@pytest.mark.parametrize(("fixture", "turns"), [("rotated_video", 1), ("rotated_ccw_video", 3)])
def test_rotation_applied_like_ffmpeg_autorotate(fixture: str, turns: int, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    frames = frames_of(path, Sampling("every", 15))
    assert frames[0].rgb.shape == (160, 120, 3)
    # Undo the display rotation (np.rot90 turns counter-clockwise) and the number reads again.
    assert [read_frame_number(np.rot90(f.rgb, turns)) for f in frames] == [0, 15, 30, 45]
    reference = ffmpeg_rgb(path, 120, 160)  # plain ffmpeg, autorotate on
    assert all(np.array_equal(f.rgb, reference[f.index]) for f in frames)


def test_sar_video_comes_out_square_pixel(sar_video: Path) -> None:
    frames = frames_of(sar_video)
    assert len(frames) == 30 and frames[0].rgb.shape == (60, 160, 3)
    assert numbers(frames) == list(range(30))


def test_byte_equal_to_plain_ffmpeg_same_filter(numbered_video: Path, all_frames: list[DecodedFrame]) -> None:
    assert np.array_equal(np.stack([f.rgb for f in all_frames]), ffmpeg_rgb(numbered_video, 160, 120))
    resized = frames_of(numbered_video, size=SizeSpec(width=80, height=50))
    reference = ffmpeg_rgb(numbered_video, 80, 50, vf="scale=w=80:h=50:flags=bicubic")
    assert np.array_equal(np.stack([f.rgb for f in resized]), reference)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p"])
def test_odd_and_even_widths_byte_equal_to_one_step_rgb24(make_video: Callable[..., Path], pix_fmt: str) -> None:
    """Odd output widths go through planar gbrp (filtergraph.rgb_route) for speed; the pixels must equal ffmpeg's
    plain one-step ``scale,format=rgb24`` (noisy saturated colours: any chroma-path change would show)."""
    video = make_video(f"chroma_{pix_fmt}.mkv", "-c:v", "libx264", "-crf", "0", "-pix_fmt", pix_fmt,
                       source="testsrc2=size=96x54:rate=5:duration=1,noise=alls=30:allf=t")
    for width, height in ((81, 47), (80, 46), (17, 9)):
        ours = np.stack([f.rgb for f in frames_of(video, size=SizeSpec(width=width, height=height))])
        reference = ffmpeg_rgb(video, width, height, vf=f"scale=w={width}:h={height}:flags=bicubic")
        assert ours.shape == reference.shape and np.array_equal(ours, reference), (pix_fmt, width)


def test_short_side_and_center_crop(numbered_video: Path) -> None:
    info = probe(numbered_video)
    assert output_size(info, SizeSpec(short_side=60)) == (80, 60)
    assert output_size(info, SizeSpec(short_side=60, center_crop=40)) == (40, 40)
    scaled = frames_of(numbered_video, Sampling("every", 20), SizeSpec(short_side=60))
    cropped = frames_of(numbered_video, Sampling("every", 20), SizeSpec(short_side=60, center_crop=40))
    assert scaled[0].rgb.shape == (60, 80, 3) and numbers(scaled) == [0, 20, 40]
    assert all(np.array_equal(c.rgb, s.rgb[10:50, 20:60]) for c, s in zip(cropped, scaled, strict=True))


def test_decoding_twice_is_identical(numbered_video: Path, all_frames: list[DecodedFrame]) -> None:
    again = frames_of(numbered_video)
    assert all(np.array_equal(a.rgb, b.rgb) and a.pts_s == b.pts_s and a.index == b.index
               for a, b in zip(all_frames, again, strict=True))


def test_odd_size(odd_size_video: Path) -> None:
    frames = frames_of(odd_size_video)
    assert len(frames) == len(ffprobe_frames(odd_size_video)) and frames[0].rgb.shape == (11, 17, 3)
    assert frames_of(odd_size_video, Sampling("every", 10), SizeSpec(short_side=5))[0].rgb.shape == (5, 8, 3)


def test_pixel_formats_convert_to_8bit_rgb(make_video: Callable[..., Path], tmp_path: Path) -> None:
    alpha = tmp_path / "alpha.mov"
    rgba = np.tile(np.array([0x33, 0x66, 0x99, 0x80], np.uint8), (3, 24, 32, 1))
    run([FFMPEG, "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgba", "-s", "32x24", "-i", "pipe:0",
         "-c:v", "png", str(alpha)], stdin=rgba.tobytes())
    assert probe(alpha).has_alpha
    rgb = frames_of(alpha)[0].rgb
    assert np.all(rgb == np.array([0x33, 0x66, 0x99], np.uint8))  # alpha dropped, colour kept (not composited)
    gray = make_video("gray.mkv", "-c:v", "ffv1", "-pix_fmt", "gray", source="testsrc2=size=32x24:rate=5")
    g = frames_of(gray)[0].rgb
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2]) and g.std() > 10
    smooth = "testsrc2=size=64x48:rate=5,gblur=sigma=6"  # smooth, so chroma interpolation differences stay small
    ten = make_video("smooth10.mkv", "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv420p10le", source=smooth)
    eight = make_video("smooth8.mkv", "-c:v", "libx264", "-crf", "0", "-pix_fmt", "yuv420p", source=smooth)
    a, b = frames_of(ten)[3].rgb.astype(int), frames_of(eight)[3].rgb.astype(int)
    assert a.shape == b.shape == (48, 64, 3) and a.std() > 20
    assert np.abs(a - b).mean() < 1.5 and np.abs(a - b).max() <= 8  # same picture; only rounding differs


def test_early_break_kills_and_reaps_ffmpeg(numbered_video: Path) -> None:
    gen = decode(probe(numbered_video), prefetch=2)
    assert child_processes() == []  # nothing starts before iteration
    next(gen)
    assert len(child_processes()) == 1
    gen.close()
    assert child_processes() == []
    for frame in decode(probe(numbered_video)):
        if frame.index == 3:
            break
    deadline = time.monotonic() + 5  # the abandoned generator is finalized by refcounting
    while child_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child_processes() == []


def test_exception_in_consumer_cleans_up(numbered_video: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        for frame in decode(probe(numbered_video), prefetch=1):
            if frame.index == 5:
                raise KeyboardInterrupt
    assert child_processes() == []


def test_max_pixels_rejected_before_decoding(numbered_video: Path) -> None:
    info = probe(numbered_video)
    with pytest.raises(DecodeError, match=r"numbered\.mp4: source frame has 19200 pixels"):
        decode(info, max_pixels=10_000)
    with pytest.raises(DecodeError, match="output frame has 1000000 pixels"):
        decode(info, size=SizeSpec(width=1000, height=1000), max_pixels=200_000)
    assert child_processes() == []


def test_bad_sampling_values(numbered_video: Path) -> None:
    info = probe(numbered_video)
    for bad in (Sampling("fps", 0), Sampling("every", 2.5), Sampling("uniform", -1)):
        with pytest.raises(ConfigError):
            decode(info, bad)


def test_truncated_file_yields_clean_prefix(offset_video: Path, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(offset_video.read_bytes()[: offset_video.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="vidprep.media.decode"):
        frames = frames_of(cut)  # ffmpeg exits 0 after "File ended prematurely": no error, a clean prefix
    assert "File ended prematurely" in caplog.text and str(cut) in caplog.text
    assert 5 < len(frames) < 60
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [f.pts_s for f in frames] == pytest.approx(relative(ffprobe_frames(cut)), abs=1e-6)
    shown = numbers(frames)  # B-frames whose packets were cut off are missing near the end
    assert shown[:20] == list(range(20)) and shown == sorted(set(shown))


def test_garbage_file_is_decode_error_naming_file(numbered_video: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    info = dataclasses.replace(probe(numbered_video), path=str(junk))
    with pytest.raises(DecodeError) as err:
        list(decode(info))
    assert str(err.value).startswith(str(junk)) and "ffmpeg failed" in str(err.value) and "\n" not in str(err.value)
    assert child_processes() == []


def test_argv_is_safe(numbered_video: Path) -> None:
    argv = decode_argv(probe(numbered_video), Sampling("fps", 2), SizeSpec(short_side=32))
    joined = " ".join(argv)
    assert argv[argv.index("-i") + 1] == f"file:{numbered_video.absolute()}"
    for flag in ("-nostdin", "-noautorotate", "-format_whitelist", "-protocol_whitelist file", "-fps_mode passthrough"):
        assert flag in joined
    assert "hls" not in argv[argv.index("-format_whitelist") + 1] and "-safe" not in argv


def test_idle_timeout_kills_stalled_process() -> None:
    start = time.monotonic()
    with FfmpegProcess(["sleep", "30"], path="stall", idle_timeout_s=0.4) as proc:
        reason = proc.failure()
    assert reason is not None and "no progress for 0.4 s" in reason
    assert time.monotonic() - start < 5


def test_idle_clock_stops_while_caller_is_busy() -> None:
    with FfmpegProcess(["sleep", "30"], path="slow consumer", idle_timeout_s=1.0) as proc:
        with proc.paused():  # what the decode reader does while its queue is full
            time.sleep(2.0)
        assert proc.timed_out is None and proc.proc.poll() is None
        reason = proc.failure()
    assert reason is not None and "no progress" in reason


def combing(frames: list[DecodedFrame]) -> float:
    """Mean |row y - row y+1| over |row y - row y+2|: about 1 for progressive pictures, well above for woven fields."""
    rows = np.stack([f.rgb for f in frames]).astype(np.float32).mean(axis=3)
    return float(np.abs(np.diff(rows, axis=1)).mean() / np.abs(rows[:, 2:] - rows[:, :-2]).mean())


def test_deinterlace_auto_weaves_flagged_streams_and_keeps_frames(interlaced_video: Path) -> None:
    info = probe(interlaced_video)
    assert info.interlaced
    off, auto, on = (frames_of(interlaced_video, deinterlace=m) for m in ("off", "auto", "on"))
    assert len(off) == len(auto) == len(on) == 50
    for other in (auto, on):
        assert [f.pts_s for f in other] == [f.pts_s for f in off]
        assert [f.index for f in other] == [f.index for f in off]
    assert combing(off) > 1.5 * combing(auto)  # the fixture combs, and bwdif removes it
    assert combing(on) == pytest.approx(combing(auto), rel=0.05)
    assert "bwdif" in " ".join(decode_argv(info, deinterlace="auto"))
    sampled = frames_of(interlaced_video, Sampling("fps", 5), deinterlace="auto")
    assert [f.index for f in sampled] == list(range(0, 50, 5))


def test_deinterlace_auto_leaves_progressive_streams_alone(numbered_video: Path) -> None:
    info = probe(numbered_video)
    assert not info.interlaced
    assert "bwdif" not in " ".join(decode_argv(info))
    assert "bwdif" in " ".join(decode_argv(info, deinterlace="on"))
    on = frames_of(numbered_video, deinterlace="on")
    assert [f.index for f in on] == list(range(60)) == numbers(on)
    with pytest.raises(ConfigError, match="deinterlace"):
        decode(info, deinterlace="yes")


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_hdr_is_tone_mapped_to_sdr(transfer: str, make_video: Callable[..., Path]) -> None:
    """testsrc2 mastered to 10-bit BT.2020 PQ / HLG with SDR white at 100 nits comes back near the SDR original."""
    source = "testsrc2=size=96x72:rate=25"
    sdr = make_video("sdr_reference.mp4", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv444p",
                     source=source)
    to_hdr = (f"format=gbrpf32le,zscale=tin=bt709:pin=bt709:min=gbr:rin=full:t={transfer}:p=bt2020:m=bt2020nc:"
              f"r=tv:npl=100,format=yuv420p10le")
    hdr = make_video(f"hdr_{transfer}.mp4", "-c:v", "libx264", "-preset", "veryfast", "-color_primaries", "bt2020",
                     "-color_trc", transfer, "-colorspace", "bt2020nc", source=f"{source},{to_hdr}")
    info = probe(hdr)
    assert info.color_transfer == transfer and info.bit_depth == 10
    assert "tonemap" in " ".join(decode_argv(info)) and "tonemap" not in " ".join(decode_argv(probe(sdr)))
    reference = np.stack([f.rgb for f in frames_of(sdr)]).astype(np.float32)
    mapped = np.stack([f.rgb for f in frames_of(hdr)]).astype(np.float32)
    untouched = ffmpeg_rgb(hdr, 96, 72).astype(np.float32)  # plain swscale, as without tone mapping
    assert mapped.shape == reference.shape == untouched.shape
    assert np.abs(mapped - reference).mean() < 0.65 * np.abs(untouched - reference).mean()  # measured 0.43, 0.48


HDR_SOURCE = "testsrc2=size=96x72:rate=25"
TO_PQ = ("format=gbrpf32le,zscale=tin=bt709:pin=bt709:min=gbr:rin=full:t=smpte2084:p=bt2020:m=bt2020nc:r=tv:npl=100,"
         "format=yuv420p10le")


@pytest.fixture(scope="module")
def pq_transfer_only(make_video: Callable[..., Path]) -> Path:
    """10-bit HEVC mastered to BT.2020 PQ but tagged with its transfer only (no primaries, no matrix), as some
    cameras and re-muxers write it: zscale alone refuses it ("no path between colorspaces")."""
    if "libx265" not in run([FFMPEG, "-hide_banner", "-encoders"]).decode():
        pytest.skip("this ffmpeg has no libx265 encoder")
    return make_video("hdr_pq_trc_only.mp4", "-c:v", "libx265", "-x265-params", "log-level=error", "-color_trc",
                      "smpte2084", source=f"{HDR_SOURCE},{TO_PQ}")


def _sdr_reference(make_video: Callable[..., Path]) -> np.ndarray:
    sdr = make_video("sdr_reference.mp4", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv444p",
                     source=HDR_SOURCE)
    return np.stack([f.rgb for f in frames_of(sdr)]).astype(np.float32)


def test_hdr_tagged_only_by_transfer_is_tone_mapped_with_bt2020_assumed(pq_transfer_only: Path,
                                                                         make_video: Callable[..., Path]) -> None:
    info = probe(pq_transfer_only)
    assert (info.codec, info.bit_depth, info.color_transfer) == ("hevc", 10, "smpte2084")
    assert info.color_primaries == "" and info.color_space == ""  # what ffprobe reports: the tags are missing
    assert "setparams=color_primaries=bt2020:colorspace=bt2020nc" in " ".join(decode_argv(info))
    reference = _sdr_reference(make_video)
    mapped = np.stack([f.rgb for f in frames_of(pq_transfer_only)]).astype(np.float32)
    untouched = ffmpeg_rgb(pq_transfer_only, 96, 72).astype(np.float32)
    assert mapped.shape == reference.shape == untouched.shape
    assert np.abs(mapped - reference).mean() < 0.65 * np.abs(untouched - reference).mean()


def test_failed_tone_mapping_falls_back_to_plain_conversion(pq_transfer_only: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A tone-mapping chain that ffmpeg rejects: the frames still come, once each, converted without it."""
    from vidprep.media import filtergraph

    monkeypatch.setattr(filtergraph, "TONEMAP_FILTERS", ("zscale=t=linear:no_such_option=1",))
    with caplog.at_level("WARNING", logger="vidprep.media.decode"):
        frames = frames_of(pq_transfer_only)
    assert [f.index for f in frames] == list(range(25))
    assert [f.pts_s for f in frames] == pytest.approx(relative(ffprobe_frames(pq_transfer_only)), abs=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "WITHOUT tone mapping" in warnings[0], warnings
    plain = ffmpeg_rgb(pq_transfer_only, 96, 72).astype(np.float32)  # swscale, as the fallback converts
    assert np.abs(np.stack([f.rgb for f in frames]).astype(np.float32) - plain).mean() < 2.0
    sampled = frames_of(pq_transfer_only, Sampling("every", 5))  # the fallback keeps the sampling
    assert [f.index for f in sampled] == list(range(0, 25, 5))


def test_split_keeps_hdr_video_tagged_only_by_transfer(pq_transfer_only: Path, tmp_path: Path,
                                                       make_video: Callable[..., Path]) -> None:
    """The CLI: the partly tagged HDR file lands in the shard (exit 0, no error record), near the SDR original."""
    from clihelp import cli, read_videos

    out = tmp_path / "out"
    result = cli("split", pq_transfer_only, "-o", out, "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    assert not (out / "errors.jsonl").exists() or not (out / "errors.jsonl").read_text().strip()
    stored = read_videos(out)[pq_transfer_only.name]["rgb"].astype(np.float32)
    reference = _sdr_reference(make_video)
    assert stored.shape == reference.shape
    assert np.abs(stored - reference).mean() < 0.65 * np.abs(ffmpeg_rgb(pq_transfer_only, 96, 72) - reference).mean()
