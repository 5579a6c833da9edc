"""In-process runs build a torchvision feature model in the background while the first video decodes.

The overlap must be real (the decode's ffmpeg starts before the model exists), change no output (the features
equal those of a model built up front), and keep every error the up-front build gave: weights that cannot be
loaded are exit 2 with no shard and no temp file, also when every video fails before reaching the model, when
nothing is left to do, and with ``--overwrite`` (awaited before the old outputs are cleared, so they survive).
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from clihelp import cli

FEATS = ("--model", "resnet18", "--fps", "4", "--size", "64", "--executor", "serial")


@pytest.fixture(scope="module")
def video(make_video) -> Path:
    return make_video("mo_a.mp4", source="testsrc2=size=96x64:rate=10", seconds=2)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No torchvision checkpoint anywhere and no network: ``--weights DEFAULT`` cannot load."""
    from vidprep.stages import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(models.OFFLINE_ENV, "1")
    return tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def _no_leftovers(out: Path) -> None:
    assert not list(out.glob("shard-*.h5")) and not [p for p in out.glob(".*") if ".tmp-" in p.name]


def test_the_first_video_decodes_while_the_model_builds(video: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import vidprep.media.ffmpeg as ffmpeg
    from vidprep.stages.models import torchvision as tv

    events: list[tuple[str, float]] = []
    real_build, real_process = tv.build_model, ffmpeg.FfmpegProcess.__init__

    def slow_build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        time.sleep(1.5)  # a slow import or weights file
        events.append(("model built", time.monotonic()))
        return model

    def spawn(self, command, *args, **kwargs):
        if "-filter_complex" in command or "-vf" in command:  # a decode, not a query
            events.append(("decode started", time.monotonic()))
        return real_process(self, command, *args, **kwargs)

    monkeypatch.setattr(tv, "build_model", slow_build)
    monkeypatch.setattr(ffmpeg.FfmpegProcess, "__init__", spawn)
    res = cli("features", video, "-o", tmp_path / "out", "--weights", "none", *FEATS)
    assert res.exit_code == 0, res.output
    order = [name for name, _ in sorted(events, key=lambda e: e[1])]
    assert order[:2] == ["decode started", "model built"], order


def test_features_equal_those_of_a_model_built_up_front(video: Path, tmp_path: Path) -> None:
    from vidprep.config import FeaturesConfig
    from vidprep.stages.features import FeatureExtractor

    res = cli("features", video, "-o", tmp_path / "feats", "--weights", "none", "--seed", "3", *FEATS)
    assert res.exit_code == 0, res.output
    split = cli("split", video, "-o", tmp_path / "frames", *FEATS[2:])  # the same frames, kept
    assert split.exit_code == 0, split.output
    with h5py.File(tmp_path / "feats" / "shard-00000.h5", "r") as f:
        stored = f["clips/features"][:].astype(np.float32)
        config = f["meta/config_json"].asstr()[()]
    with h5py.File(tmp_path / "frames" / "shard-00000.h5", "r") as f:
        frames = f["frames/0/rgb"][:]
    assert '"features_model"' in config and '"batch_size": 16' in config  # described once the model existed
    up_front = FeatureExtractor(FeaturesConfig(model="resnet18", weights="none"), seed=3)
    assert up_front.ready() and "_built" not in up_front.__dict__
    expected = up_front.extract_frames(frames)
    assert stored.shape == expected.shape == (8, 512)
    cosine = (stored * expected).sum(1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.9999, cosine  # the same model and batches; stored as float16


@pytest.mark.parametrize("case", ["plain", "every_video_fails", "overwrite"])
def test_weights_that_cannot_load_are_exit_2_with_nothing_published(
        video: Path, tmp_path: Path, offline_hub: Path, case: str) -> None:
    out = tmp_path / "out"
    inputs: list[Path | str] = [video]
    if case == "every_video_fails":
        bad = tmp_path / "broken.mp4"
        bad.write_bytes(b"not a video")
        inputs = [bad]
    if case == "overwrite":
        done = cli("features", video, "-o", out, "--weights", "none", *FEATS)
        assert done.exit_code == 0, done.output
        before = (out / "shard-00000.h5").read_bytes()
    res = cli("features", *inputs, "-o", out, "--weights", "DEFAULT", *FEATS,
              *(["--overwrite"] if case == "overwrite" else []))
    assert res.exit_code == 2, res.output
    assert offline_hub.name in res.stderr and "no network" in res.stderr and "Traceback" not in res.stderr
    if case == "overwrite":
        assert (out / "shard-00000.h5").read_bytes() == before  # awaited before clearing: the old output survives
    else:
        _no_leftovers(out)


def test_a_resumed_run_with_nothing_left_still_reports_weights_gone(
        video: Path, tmp_path: Path, offline_hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same command twice; between them the checkpoint disappears. The second run has no unit to process, so no
    video ever needs the model, yet it must still fail as the up-front build did (exit 2), keeping the output."""
    import torch
    import torchvision

    from vidprep.stages import models

    monkeypatch.setattr(models.torchvision, "_hash_prefix", lambda path: None)  # accept this stand-in file
    offline_hub.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), offline_hub)
    out = tmp_path / "out"
    first = cli("features", video, "-o", out, "--weights", "DEFAULT", *FEATS)
    assert first.exit_code == 0, first.output
    before = (out / "shard-00000.h5").read_bytes()
    offline_hub.unlink()
    from vidprep.engine import worker

    worker._CONTEXTS.clear()  # a new process: nothing built by the first run
    res = cli("features", video, "-o", out, "--weights", "DEFAULT", *FEATS)
    assert res.exit_code == 2 and offline_hub.name in res.stderr, res.output
    assert (out / "shard-00000.h5").read_bytes() == before
