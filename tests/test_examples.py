"""The example consumers (examples/*.py) on real vidprep output: labels, frames and features line up end to end.

Two classes of tiny synthetic videos, five different sources each, go through `vidprep split --label-from-dir` and
`vidprep features`; each example must then reach a high accuracy on held-out VIDEOS (a label or row mix-up anywhere
drops it to chance). The classes: bright, colourful test patterns vs. dark, grey, noisy fractals and cellular
automata. Their cue is deliberately blunt (brightness, colour, noise) because the feature model has random weights
(`--weights none`: no network here), whose features separate little else reliably with six training videos.
The examples run in-process through their ``main(argv)``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from clihelp import cli, shard_paths
from vidprep.shards import ShardSet, ShardWriter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZE = "size=64x48:rate=25"
BRIGHT = "lutyuv=y=val*0.5+120"
DARK_NOISY = "noise=alls=40:allf=t,hue=s=0,lutyuv=y=val*0.4"
CLASSES = {
    "patterns": [f"testsrc2={SIZE},{BRIGHT}", f"testsrc2={SIZE},hue=h=90,{BRIGHT}", f"testsrc={SIZE},{BRIGHT}",
                 f"testsrc={SIZE},hflip,hue=h=180,{BRIGHT}", f"smptebars={SIZE},{BRIGHT}"],
    "textures": [f"mandelbrot={SIZE},{DARK_NOISY}", f"mandelbrot={SIZE}:maxiter=80:start_scale=2:end_scale=0.5,"
                 f"{DARK_NOISY}", f"life={SIZE}:mold=10:ratio=0.3:seed=11,{DARK_NOISY}", f"life={SIZE}:ratio=0.6:seed=12,{DARK_NOISY}",
                 f"cellauto={SIZE}:rule=110:seed=13,{DARK_NOISY}"],
}
VIDEOS_PER_CLASS = len(CLASSES["patterns"])
CLIPS_PER_VIDEO = 6  # 25 frames in clips of 4, tail dropped
FEATURE_ROWS_PER_VIDEO = 2
MIN_ACCURACY = 0.9
_modules: dict[str, ModuleType] = {}


def example(name: str) -> ModuleType:
    """Import examples/<name>.py (not a package) once."""
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


def run_example(name: str, capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[float, str]:
    """Run an example's main(argv) in-process; returns the accuracy of its last line and everything it printed."""
    torch.set_num_threads(1)  # again: an in-process `vidprep features` sets it to the CPU count
    capsys.readouterr()
    assert example(name).main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    match = re.fullmatch(r"accuracy: (\d\.\d\d|nan)", out.strip().splitlines()[-1])
    assert match, f"last line of {name} is not 'accuracy: 0.xx':\n{out}"
    return float(match[1]), out


def require_vidprep_features() -> None:
    """`vidprep features --list-models` must work and list resnet18: a hard failure otherwise, never a skip."""
    result = cli("features", "--list-models")
    assert result.exit_code == 0 and "resnet18" in result.stdout, (
        f"`vidprep features --list-models` failed (exit {result.exit_code}: {result.exception!r}):\n{result.output}")


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads() -> Iterator[None]:
    """The examples run with one torch thread (tiny models on busy shared cores); restore the count afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def labelled_root(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """videos/<class>/<k>.mp4: five 1-second 64x48 videos per class, each from a different source."""
    root = tmp_path_factory.mktemp("examples_videos")
    for cls, sources in CLASSES.items():
        (root / cls).mkdir()
        for k, source in enumerate(sources):
            shutil.copy(make_video(f"example_{cls}_{k}.mp4", source=source), root / cls / f"{k}.mp4")
    return root


@pytest.fixture(scope="module")
def frame_shards(labelled_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vidprep split --label-from-dir` into clips of 4 frames, two videos per shard."""
    out = tmp_path_factory.mktemp("examples_out") / "clips"
    result = cli("split", labelled_root, "-o", out, "--label-from-dir", "--clip-frames", "4", "--size", "48",
                 "--videos-per-shard", "2", "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    assert len(shard_paths(out)) == len(CLASSES) * VIDEOS_PER_CLASS // 2
    return out


@pytest.fixture(scope="module")
def feature_shards(labelled_root: Path, frame_shards: Path) -> Path:
    """`vidprep features --label-from-dir` (random-init resnet18) of two frames per video, two videos per shard.

    Straight from the videos: resnet18 runs at 224x224, too slow on busy CPUs for all frames of every clip."""
    require_vidprep_features()
    out = frame_shards.parent / "features"
    result = cli("features", labelled_root, "-o", out, "--label-from-dir", "--num-frames", str(FEATURE_ROWS_PER_VIDEO),
                 "--model", "resnet18", "--weights", "none", "--device", "cpu", "--videos-per-shard", "2",
                 "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    assert len(ShardSet(out)) == len(CLASSES) * VIDEOS_PER_CLASS * FEATURE_ROWS_PER_VIDEO
    return out


@pytest.fixture(scope="module")
def pixel_feature_shards(frame_shards: Path) -> Path:
    """Feature shards written with ShardWriter from the frame shards: per frame, mean and standard deviation of each
    colour and the mean absolute horizontal and vertical gradient, so (N,T,8) rows. They test the feature examples
    (and pooling over T) independently of `vidprep features`."""
    out = frame_shards.parent / "pixel_features"
    out.mkdir()
    for path in shard_paths(frame_shards):
        write_pixel_features(path, out / path.name)
    return out


def write_pixel_features(src: Path, dst: Path) -> None:
    """One feature shard mirroring frame shard ``src`` (same videos, clips and labels), features (T,8) float32."""
    shards = ShardSet(src)
    with ShardWriter(dst, kind="features", config={"features": {"model": "frame_stats"}},
                     class_names=shards.class_names, store_frames=False) as writer:
        for vid in shards.videos():
            video = shards.video(vid)
            v = writer.add_video(vid, video["source"], {"fps": video["fps"]})
            writer.append_frames(v, None, video["pts_s"], video["index"])
            for k, row in enumerate(video["rows"]):
                frames = shards[int(row)]["frames"].astype(np.float32) / 255  # rows of one shard = its rows
                clips = video["clips"]
                writer.add_clip(v, frame_start=int(clips["frame_start"][k]), frame_stop=int(clips["frame_stop"][k]),
                                start_s=float(clips["start_s"][k]), end_s=float(clips["end_s"][k]),
                                clip_index=int(clips["clip_index"][k]), label=int(clips["label"][k]),
                                features=frame_stats(frames))
        writer.commit()


def frame_stats(frames: np.ndarray) -> np.ndarray:
    """(T,H,W,3) float frames -> (T,8): per-channel mean and std, mean |d/dx| and |d/dy| of all channels."""
    dx = np.abs(np.diff(frames, axis=2)).mean(axis=(1, 2, 3))
    dy = np.abs(np.diff(frames, axis=1)).mean(axis=(1, 2, 3))
    return np.concatenate([frames.mean(axis=(1, 2)), frames.std(axis=(1, 2)), dx[:, None], dy[:, None]], axis=1)


def test_split_videos_holds_out_whole_videos_per_class() -> None:
    split = example("train_frame_classifier").split_videos
    per_video = {f"{c}/{k}.mp4": c_i for c_i, c in enumerate("ab") for k in range(6)}
    held = split(per_video, 0.34, seed=3)
    assert held == split(per_video, 0.34, seed=3) and held != split(per_video, 0.34, seed=4)
    assert sorted(per_video[v] for v in held) == [0, 0, 1, 1]
    assert split({"a/0": 0, "b/0": 1}, 0.5, seed=0) == set()  # one video per class: nothing to hold out
    assert example("train_feature_classifier").split_videos(per_video, 0.34, seed=3) == held


def test_frame_classifier_learns_held_out_videos(frame_shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    accuracy, out = run_example("train_frame_classifier", capsys, frame_shards, "--epochs", "3", "--seed", "0",
                                "--val-fraction", "0.4", "--device", "cpu")
    held_clips = 2 * len(CLASSES) * CLIPS_PER_VIDEO
    assert f"held out: {held_clips} clips of 4 videos" in out
    assert accuracy >= MIN_ACCURACY, out


def test_feature_classifier_on_vidprep_features(feature_shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for hidden in ("0", "32"):
        accuracy, out = run_example("train_feature_classifier", capsys, feature_shards, "--epochs", "30",
                                    "--hidden", hidden, "--val-fraction", "0.4", "--device", "cpu")
        assert accuracy >= MIN_ACCURACY, out


def test_feature_classifier_pools_per_frame_features(pixel_feature_shards: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert ShardSet(pixel_feature_shards)[0]["features"].shape == (4, 8)
    accuracy, out = run_example("train_feature_classifier", capsys, pixel_feature_shards, "--epochs", "30",
                                "--val-fraction", "0.4", "--device", "cpu")
    assert "8 features" in out and accuracy >= MIN_ACCURACY, out


def checkpoint_shards(path: Path) -> list[str]:
    """Shards a checkpoint says it consumed, in order (it must load with weights_only=True)."""
    return [h["shard"] for h in torch.load(path, weights_only=True)["history"]]


def trained_on(out: str) -> list[str]:
    """Shards an online_update run reports having tested and trained on."""
    return re.findall(r"^(shard-\d+\.h5): \d+ rows, accuracy before training", out, flags=re.M)


@pytest.mark.parametrize("source", ["vidprep_features", "pixel_features"])
def test_online_update_consumes_each_shard_once(source: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    feats = request.getfixturevalue("feature_shards" if source == "vidprep_features" else "pixel_feature_shards")
    watch = tmp_path / "watch"
    shutil.copytree(feats, watch)
    ckpt = tmp_path / "online.pt"
    names = [p.name for p in shard_paths(watch)]

    _, out = run_example("online_update", capsys, watch, "--checkpoint", ckpt, "--once")
    assert trained_on(out) == names and checkpoint_shards(ckpt) == names
    weights = torch.load(ckpt, weights_only=True)["model"]

    _, out = run_example("online_update", capsys, watch, "--checkpoint", ckpt, "--poll-seconds", "0.05",
                         "--max-idle-seconds", "0.1")
    assert f"resumed {ckpt}: {len(names)} shards consumed" in out and trained_on(out) == []
    again = torch.load(ckpt, weights_only=True)["model"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)

    tmp = watch / ".shard-00099.h5.tmp-copy"
    shutil.copy(watch / names[0], tmp)
    os.replace(tmp, watch / "shard-00099.h5")
    _, out = run_example("online_update", capsys, watch, "--checkpoint", ckpt, "--once")
    assert trained_on(out) == ["shard-00099.h5"] and checkpoint_shards(ckpt) == [*names, "shard-00099.h5"]
    assert not list(tmp_path.glob(".online.pt.tmp*"))


def test_ddp_example_reaches_the_single_process_accuracy(frame_shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/train_ddp.py: two spawned CPU ranks (gloo), the frame classifier with the same settings as
    test_frame_classifier_learns_held_out_videos, the same held-out bar."""
    accuracy, out = run_example("train_ddp", capsys, frame_shards, "--nproc", "2", "--epochs", "3", "--seed", "0",
                                "--val-fraction", "0.4")
    held_clips = 2 * len(CLASSES) * CLIPS_PER_VIDEO
    assert f"held out: {held_clips} clips of 4 videos; 2 ranks, 8 clips per rank and step" in out
    assert len(re.findall(r"^epoch \d/3 ", out, flags=re.M)) == 3
    assert accuracy >= MIN_ACCURACY, out
