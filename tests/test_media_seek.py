"""Sparse sampling by seeking: the packet index, the run plan, and seek decodes equal to the sequential decode."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from videos import ffprobe_frames, read_frame_number, relative

import vidprep.media.decode as decode_module
import vidprep.media.filtergraph as filtergraph
from vidprep.media.decode import decode
from vidprep.media.probe import NO_PTS, PacketScan, probe, scan_video_packets
from vidprep.media.seek import FrameIndex, SeekRun, plan_runs, sampled_ordinals, worth_seeking
from vidprep.types import DecodedFrame, Sampling, SizeSpec

LONG_FRAMES = 1000  # over MIN_SEEK_FRAMES, so sparse sampling seeks
SEEK_LOG = "vidprep.media.decode"


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1000 number-encoded frames, 96x72, 25 fps, H.264 with B-frames and a keyframe every 30 frames."""
    from videos import encode_numbered

    return encode_numbered(tmp_path_factory.mktemp("seek") / "long.mp4", LONG_FRAMES, width=96, height=72)


@pytest.fixture(scope="module")
def long_vfr_offset_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same frames with uneven gaps (40 ms, every 7th frame 120 ms), starting at 10 s, in Matroska."""
    from videos import encode_numbered

    vf = "settb=1/1000,setpts='(0.04*N+0.08*floor(N/7))/TB'"
    return encode_numbered(tmp_path_factory.mktemp("seek") / "long_vfr.mkv", LONG_FRAMES, width=96, height=72,
                           vf=vf, args=("-enc_time_base", "1/1000", "-output_ts_offset", "10"))


def frames(path: Path, sampling: Sampling, *, seek: bool) -> list[DecodedFrame]:
    return list(decode(probe(path), sampling, SizeSpec(), seek=seek))


def assert_same(got: list[DecodedFrame], want: list[DecodedFrame]) -> None:
    assert [f.index for f in got] == [f.index for f in want]
    assert [f.pts_s for f in got] == [f.pts_s for f in want]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, want))
    assert [read_frame_number(f.rgb) for f in got] == [f.index for f in got]


def seeks_logged(caplog: pytest.LogCaptureFixture) -> int:
    """Number of seek plans decode() chose (from its debug log)."""
    return sum(1 for r in caplog.records if r.name == SEEK_LOG and "seeks" in r.getMessage())


# --- FrameIndex ------------------------------------------------------------------------------------------------

def scan(pts: list[int], dts: list[int] | None = None, key: str = "", discard: str = "") -> PacketScan:
    """A packet scan from lists; ``key``/``discard`` are strings of packet positions marked, e.g. "03"."""
    n = len(pts)
    return PacketScan(Fraction(1, 100), np.array(pts, np.int64), np.array(dts or list(range(n)), np.int64),
                      np.array([str(i) in key for i in range(n)]), np.array([str(i) in discard for i in range(n)]))


def test_index_orders_b_frames_and_drops_discarded_and_leading_packets() -> None:
    # decode order: a P before the first keyframe, I0 P3 B1 B2 (discarded), I4 B... pts sorted out
    index = FrameIndex.from_packets(scan([9, 0, 3, 1, 2, 4], key="15", discard="4"))
    assert index is not None
    assert index.pts.tolist() == [0, 1, 3, 4] and index.keyframe_pts.tolist() == [0, 4]
    assert index.ordinal_of(3) == 2 and index.ordinal_of(2) is None
    assert index.keyframe_before(2) == 0 and index.keyframe_before(3) == 4
    assert index.seconds(4) == pytest.approx(0.04)


@pytest.mark.parametrize("packets", [
    scan([0, 1, 2]),  # no keyframe
    scan([0, NO_PTS, 2], key="0"),  # a frame without pts
    scan([0, 1, 1], key="0"),  # two frames at the same time
])
def test_index_refuses_what_it_cannot_tell_exactly(packets: PacketScan) -> None:
    assert FrameIndex.from_packets(packets) is None


def test_index_of_real_files_matches_ffprobe_frames(long_vfr_offset_video: Path, vfr_video: Path) -> None:
    for path in (long_vfr_offset_video, vfr_video):
        index = FrameIndex.from_packets(scan_video_packets(path))
        assert index is not None
        want = relative(ffprobe_frames(path))
        assert [index.seconds(p) for p in index.pts] == pytest.approx(want, abs=1e-6)


def test_sampled_ordinals_equal_the_select_filter(vfr_video: Path) -> None:
    index = FrameIndex.from_packets(scan_video_packets(vfr_video))
    for sampling in (Sampling("fps", 2), Sampling("fps", 7.5), Sampling("every", 7), Sampling("uniform", 9)):
        want = [f.index for f in decode(probe(vfr_video), sampling, SizeSpec(short_side=16), seek=False)]
        assert sampled_ordinals(index, sampling) == want, sampling


# --- plan ------------------------------------------------------------------------------------------------------

def gop_index(frames: int, gop: int) -> FrameIndex:
    pts = np.arange(frames, dtype=np.int64)
    return FrameIndex(Fraction(1, 25), pts, pts[::gop].copy())


def test_plan_merges_within_a_gop_and_seeks_across_gops() -> None:
    index = gop_index(1000, 50)
    runs = plan_runs(index, [10, 20, 210, 990], startup=20)
    assert runs == [SeekRun(0, 0, (10, 20)), SeekRun(200, 200, (210,)), SeekRun(950, 950, (990,))]
    assert worth_seeking(index, runs, 20)


def test_plan_decodes_on_when_that_is_cheaper_than_a_seek() -> None:
    index = gop_index(1000, 50)
    runs = plan_runs(index, list(range(0, 1000, 10)), startup=20)
    assert len(runs) == 2 and runs[0].targets[-1] < runs[1].targets[0]  # split only at the 64-target cap
    assert not worth_seeking(index, runs, 20)


def test_plan_caps_targets_per_run() -> None:
    runs = plan_runs(gop_index(1000, 1000), list(range(200)), startup=20)
    assert [len(r.targets) for r in runs] == [64, 64, 64, 8]


# --- seek decode -----------------------------------------------------------------------------------------------

@pytest.fixture()
def cheap_seeks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Price a seek at 5 frames: at 96x72 the real cost model rightly decodes on instead of seeking."""
    monkeypatch.setattr(decode_module, "startup_frames", lambda pixels: 5.0)


@pytest.mark.parametrize("sampling", [Sampling("uniform", 7), Sampling("every", 97), Sampling("fps", 0.3)])
@pytest.mark.parametrize("video", ["long_video", "long_vfr_offset_video"])
@pytest.mark.usefixtures("cheap_seeks")
def test_seek_decode_equals_sequential_decode(video: str, sampling: Sampling, request: pytest.FixtureRequest,
                                              caplog: pytest.LogCaptureFixture) -> None:
    path = request.getfixturevalue(video)
    want = frames(path, sampling, seek=False)
    with caplog.at_level(logging.DEBUG, logger=SEEK_LOG):
        got = frames(path, sampling, seek=True)
    assert seeks_logged(caplog) == 1
    assert len(got) >= 3
    assert_same(got, want)


@pytest.mark.usefixtures("cheap_seeks")
def test_dense_sampling_decodes_sequentially(long_video: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=SEEK_LOG):
        got = frames(long_video, Sampling("fps", 10), seek=True)
    assert seeks_logged(caplog) == 0
    assert [f.index for f in got][:4] == [0, 3, 5, 8]


@pytest.mark.usefixtures("cheap_seeks")
def test_a_run_that_misses_its_frames_hands_over_to_the_sequential_decode(
        long_video: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real_chain = filtergraph.run_filter_chain
    calls = []

    def second_run_selects_nothing(info, run, index, size):  # noqa: ANN001, ANN202
        calls.append(run)
        chain = real_chain(info, run, index, size)
        return chain.replace("select='", "select='0*") if len(calls) == 2 else chain

    monkeypatch.setattr(filtergraph, "run_filter_chain", second_run_selects_nothing)
    sampling = Sampling("uniform", 6)
    want = frames(long_video, sampling, seek=False)
    with caplog.at_level(logging.INFO, logger=SEEK_LOG):
        got = frames(long_video, sampling, seek=True)
    assert len(calls) == 2 and "decoding sequentially" in caplog.text
    assert_same(got, want)


@pytest.mark.usefixtures("cheap_seeks")
def test_an_index_that_disagrees_with_the_decoder_is_caught_before_a_frame_is_yielded(
        long_video: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = FrameIndex.from_packets

    def nudged(packets: PacketScan) -> FrameIndex | None:
        index = real(packets)
        pts = index.pts.copy()
        pts[LONG_FRAMES // 2 - 1] += 1  # a frame just before a sampled one: same order, wrong timestamp
        return FrameIndex(index.time_base, pts, index.keyframe_pts)

    monkeypatch.setattr(FrameIndex, "from_packets", staticmethod(nudged))
    sampling = Sampling("uniform", 5)  # samples ordinal 500
    want = frames(long_video, sampling, seek=False)
    with caplog.at_level(logging.INFO, logger=SEEK_LOG):
        got = frames(long_video, sampling, seek=True)
    assert "decoding sequentially" in caplog.text and "packet index" in caplog.text
    assert_same(got, want)


def test_edit_list_packets_are_not_frames(long_video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from videos import FFMPEG, run

    cut = tmp_path / "cut.mp4"  # stream copy from a non-keyframe: the mp4 edit list hides the pre-roll packets
    run([FFMPEG, "-nostdin", "-v", "error", "-ss", "1.3", "-i", str(long_video), "-c", "copy", str(cut)])
    packets = scan_video_packets(cut)
    index = FrameIndex.from_packets(packets)
    assert packets.discard.any() and index is not None
    decoded = frames(cut, Sampling(), seek=False)
    assert len(index) == len(decoded) < len(packets.pts)
    with caplog.at_level(logging.WARNING):
        sampled = frames(cut, Sampling("uniform", 5), seek=False)
    assert [f.index for f in sampled] == sampled_ordinals(index, Sampling("uniform", 5))
    assert "expected" not in caplog.text


@pytest.mark.usefixtures("cheap_seeks")
def test_closing_a_seek_decode_early_reaps_ffmpeg(long_video: Path, caplog: pytest.LogCaptureFixture) -> None:
    from videos import child_processes

    with caplog.at_level(logging.DEBUG, logger=SEEK_LOG):
        stream = decode(probe(long_video), Sampling("uniform", 6))
        first = next(stream)
        stream.close()
    assert seeks_logged(caplog) == 1 and first.index == 83
    assert child_processes() == []
