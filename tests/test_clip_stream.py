"""3D clip features computed while the video decodes equal those computed from the stored frames afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import vidprep
from vidprep.config import FeaturesConfig, RunConfig, SplitConfig
from vidprep.engine import clip_stream
from vidprep.engine.registry import build_steps

def _streamed(config: RunConfig) -> bool:
    return any(isinstance(s, clip_stream.StreamedClipFeatures) for s in build_steps(config).frame)


def test_streaming_only_where_the_plan_is_known_before_the_decode_ends() -> None:
    feats = FeaturesConfig(model="r3d_18", weights="none")
    assert _streamed(RunConfig(split=SplitConfig(clip_frames=4), features=feats))
    assert not _streamed(RunConfig(split=SplitConfig(clip_frames=4, scenes=True), features=feats))
    assert not _streamed(RunConfig(split=SplitConfig(clip_seconds=0.5), features=feats))
    assert not _streamed(RunConfig(split=SplitConfig(clip_frames=4), features=FeaturesConfig(model="resnet18",
                                                                                               weights="none")))


def _features(out: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(out / "shard-00000.h5", "r") as f:
        return f["clips/features"][:], f["clips/padded"][:]


def _run(tables: dict[str, Any], video: Path, out: Path, *, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """One in-process run, with clip streaming on or off (the per-process step cache is cleared so it applies)."""
    from vidprep.engine import worker

    worker._CONTEXTS.clear()
    with monkeypatch.context() as patch:
        if not stream:
            patch.setattr(clip_stream, "streams_clips", lambda config: False)
        vidprep.run(tables, [video], out, executor="serial")
    worker._CONTEXTS.clear()


@pytest.mark.parametrize(("seconds", "split"), [
    (1.0, {"clip_frames": 4, "stride": 3, "tail": "drop"}),  # overlapping clips, odd count for batch 2
    (0.92, {"clip_frames": 4, "stride": 4, "tail": "pad"}),  # a padded tail clip: computed after the decode
])
def test_streamed_features_equal_the_features_computed_after_the_decode(
        tmp_path: Path, make_video: Any, monkeypatch: pytest.MonkeyPatch, seconds: float, split: dict) -> None:
    video = make_video(f"stream3d_{seconds}.mp4", source="testsrc2=size=64x48:rate=25", seconds=seconds)
    tables = {"split": {**split, "size": 32, "fps": 25},
              "features": {"model": "r3d_18", "weights": "none", "normalize": "none"}}
    streamed: list[int] = []
    original = clip_stream.StreamedClipFeatures._run

    def counting(self: clip_stream.StreamedClipFeatures) -> None:
        streamed.append(len(self._pending))
        original(self)

    monkeypatch.setattr(clip_stream.StreamedClipFeatures, "_run", counting)
    _run(tables, video, tmp_path / "streamed", stream=True, monkeypatch=monkeypatch)
    _run(tables, video, tmp_path / "after", stream=False, monkeypatch=monkeypatch)
    got, padded = _features(tmp_path / "streamed")
    want, _ = _features(tmp_path / "after")
    assert sum(streamed) == int(np.sum(padded == 0)) > 0  # every unpadded clip came from the stream
    assert (padded[-1] == 1) == (split["tail"] == "pad")
    np.testing.assert_array_equal(got, want)  # same clips, same batches: the same numbers
