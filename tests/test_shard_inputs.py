"""Shard inputs and feature normalization through the real CLI: idempotent --stats-from, labels remapped by name,
options that do not apply refused. Checked with plain h5py reads and hand-computed values.

One small frame-shard run (two videos, one shard each, 2 fps at 32 px) is the input of every test; features use a
random-init resnet18 (`--weights none`, seeded), so nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from clihelp import cli, shard_paths

FEATS = ("--model", "resnet18", "--weights", "none", "--executor", "serial")


@pytest.fixture(scope="module")
def frames(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frame shards of two videos (one per shard) in classes cat/ and dog/, labelled from their directories."""
    root = tmp_path_factory.mktemp("labelled")
    for cls, src in (("cat", "testsrc2"), ("dog", "mandelbrot")):
        (root / cls).mkdir()
        path = make_video(f"shardin_{cls}.mp4", source=f"{src}=size=64x48:rate=25", seconds=1.0)
        (root / cls / f"{cls}1.mp4").write_bytes(path.read_bytes())
    out = tmp_path_factory.mktemp("frames") / "frames"
    res = cli("split", root, "-o", out, "--fps", "2", "--size", "32", "--videos-per-shard", "1",
              "--label-from-dir", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def raw(frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unnormalized features of the frame shards."""
    out = tmp_path_factory.mktemp("raw") / "raw"
    res = cli("features", frames, "-o", out, *FEATS)
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def fitted(frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zscore run; its normalization.h5 is the statistics file other tests reuse."""
    out = tmp_path_factory.mktemp("fitted") / "fitted"
    res = cli("features", frames, "-o", out, *FEATS, "--normalize", "zscore")
    assert res.exit_code == 0, res.stderr
    return out


def features_of(out: Path) -> dict[str, np.ndarray]:
    """/clips/features of every shard, by shard name (plain h5py)."""
    got = {}
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            got[path.name] = f["clips/features"][:]
    return got


def meta_of(path: Path) -> tuple[dict, dict, str | None]:
    """(/meta/config_json, /meta/normalization_json or {}, the root normalization attribute) of one shard."""
    with h5py.File(path, "r") as f:
        config = json.loads(f["meta/config_json"].asstr()[()])
        norm = json.loads(f["meta/normalization_json"].asstr()[()]) if "meta/normalization_json" in f else {}
        return config, norm, f.attrs.get("features_normalization")


def zscore(x: np.ndarray, stats: Path) -> np.ndarray:
    """The z-score of the documented recipe, by hand from the statistics file."""
    with h5py.File(stats, "r") as f:
        return (x - f["mean"][:]) / f["std"][:]


def test_fitted_file_records_model_weights_dim_and_method(fitted: Path) -> None:
    with h5py.File(fitted / "normalization.h5", "r") as f:
        attrs = dict(f.attrs)
        assert f["mean"].shape == (512,)
    assert (attrs["model"], attrs["weights"], int(attrs["dim"]), attrs["method"]) == ("resnet18", "none(seed=0)", 512,
                                                                                    "zscore")
    for path in shard_paths(fitted):
        _, norm, state = meta_of(path)
        assert norm["id"] == state == attrs["digest"] and norm["method"] == "zscore"


def test_stats_from_twice_gives_identical_shards_normalized_once(frames: Path, raw: Path, fitted: Path,
                                                                tmp_path: Path) -> None:
    stats = fitted / "normalization.h5"
    out = tmp_path / "out"
    res = cli("features", frames, "-o", out, *FEATS, "--stats-from", stats)
    assert res.exit_code == 0, res.stderr
    first = features_of(out)
    stamp = (out / "normalization.h5").stat().st_mtime_ns
    # Same command again, now also naming the method the file holds: it takes effect (matches), nothing changes.
    res = cli("features", frames, "-o", out, *FEATS, "--stats-from", stats, "--normalize", "zscore")
    assert res.exit_code == 0, res.stderr
    again = features_of(out)
    assert sorted(first) == sorted(again) == ["shard-00000.h5", "shard-00001.h5"]
    for name, raw_feats in features_of(raw).items():
        assert np.array_equal(first[name], again[name])
        np.testing.assert_allclose(again[name], zscore(raw_feats, stats), rtol=1e-4, atol=1e-4)
    assert (out / "normalization.h5").stat().st_mtime_ns == stamp, "the copied statistics were re-saved"
    config, norm, _ = meta_of(out / "shard-00000.h5")
    assert config["features"]["normalize"] == "zscore" and config["features"]["stats_from"] == str(stats)
    with h5py.File(stats, "r") as f:
        assert norm["id"] == f.attrs["digest"]


def test_fitted_run_resumed_normalizes_each_shard_once(frames: Path, raw: Path, fitted: Path, tmp_path: Path) -> None:
    """A run whose last shard is lost after the pass: the re-run redoes it and normalizes only that one."""
    out = tmp_path / "out"
    res = cli("features", frames, "-o", out, *FEATS, "--normalize", "zscore")
    assert res.exit_code == 0, res.stderr
    before = features_of(out)
    (out / "shard-00001.h5").unlink()
    res = cli("features", frames, "-o", out, *FEATS, "--normalize", "zscore")
    assert res.exit_code == 0, res.stderr
    after = features_of(out)
    for name, raw_feats in features_of(raw).items():
        np.testing.assert_allclose(after[name], zscore(raw_feats, out / "normalization.h5"), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-5)
    assert np.array_equal(after["shard-00000.h5"], before["shard-00000.h5"])


def _stats_file(path: Path, width: int, **attrs: object) -> Path:
    from vidprep.shards.normalization import save_normalization

    rng = np.random.default_rng(0)
    return save_normalization(path, {"mean": rng.normal(size=width), "std": np.ones(width)},
                              {"method": "zscore", "count": 10, **attrs})


@pytest.mark.parametrize("attrs, dim, named", [
    ({"model": "resnet50", "weights": "ResNet50_Weights.IMAGENET1K_V2", "dim": 2048}, 2048, ("resnet50", "2048")),
    ({}, 16, ("dim 16",)),
])
def test_stats_of_another_model_is_exit_2_before_decoding(frames: Path, tmp_path: Path, attrs: dict, dim: int,
                                                          named: tuple[str, ...]) -> None:
    stats = _stats_file(tmp_path / "other.h5", dim, **attrs)
    out = tmp_path / "out"
    res = cli("features", frames, "-o", out, *FEATS, "--stats-from", stats)
    assert res.exit_code == 2, res.stderr
    for text in (*named, "resnet18", "512", "--stats-from"):
        assert text in res.stderr
    assert not out.exists() or not list(out.glob("*.h5"))


@pytest.mark.parametrize("option", [("--normalize", "pca"), ("--normalize", "l2")])
def test_method_option_contradicting_stats_is_exit_2(frames: Path, fitted: Path, tmp_path: Path,
                                                     option: tuple[str, str]) -> None:
    out = tmp_path / "out"
    res = cli("features", frames, "-o", out, *FEATS, "--stats-from", fitted / "normalization.h5", *option)
    assert res.exit_code == 2, res.stderr
    assert f"{option[0]} {option[1]}" in res.stderr and "zscore" in res.stderr
    assert not out.exists() or not list(out.glob("*.h5"))


@pytest.mark.parametrize("stage, given, named", [
    ("enhance", ("--fps", "1", "--contrast", "autolevels"), "--fps"),
    ("augment", ("--clip-frames", "2", "--hflip", "0.5"), "--clip-frames"),
    ("features", ("--size", "64", *FEATS), "--size"),
    ("features", ("--scenes", *FEATS), "--scenes"),
    ("features", ("--format", "jpg", *FEATS), "--format"),
    ("features", ("--frame-codec", "jpeg", *FEATS), "--frame-codec"),
])
def test_options_that_do_not_apply_are_exit_2(frames: Path, tmp_path: Path, stage: str, given: tuple[str, ...],
                                              named: str) -> None:
    out = tmp_path / "out"
    res = cli(stage, frames, "-o", out, *given)
    assert res.exit_code == 2, res.stderr
    assert named in res.stderr
    assert not out.exists() or not list(out.iterdir())


def test_split_table_in_a_pipeline_file_is_refused_on_shards(frames: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[split]\nfps = 1\n[enhance]\ncontrast = "autolevels"\n')
    res = cli("run", pipeline, frames, "-o", tmp_path / "out", "--executor", "serial")
    assert res.exit_code == 2 and "--fps" in res.stderr, res.stderr


def test_features_on_shards_records_no_invented_split_defaults(frames: Path, raw: Path) -> None:
    """resnet18's video defaults (1 fps, short side 256) are not what made these frames: not recorded."""
    with h5py.File(next(iter(shard_paths(frames))), "r") as f:
        made_by = json.loads(f["meta/config_json"].asstr()[()])["split"]
    assert (made_by["fps"], made_by["size"]) == (2.0, 32)
    for path in shard_paths(raw):
        split = meta_of(path)[0]["split"]
        assert not {"fps", "size", "every", "num_frames", "clip_frames", "scenes", "tail"} & set(split), split
        assert split["format"] == "h5"
    manifest = json.loads((raw / "manifest.json").read_text())
    assert "fps" not in manifest["config"]["split"]


def test_mixed_inputs_apply_split_options_to_the_videos(frames: Path, make_video: Callable[..., Path],
                                                        tmp_path: Path) -> None:
    video = make_video("shardin_mixed.mp4", source="testsrc2=size=64x48:rate=25", seconds=1.0)
    out = tmp_path / "out"
    # The input shard is shard-00001.h5, so its output does not take the name of the video's unit (shard-00000.h5).
    res = cli("enhance", video, frames / "shard-00001.h5", "-o", out, "--fps", "4", "--size", "16",
              "--contrast", "autolevels", "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    pts = {}
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            for v, vid in enumerate(f["videos/id"].asstr()[:]):
                pts[vid] = (f[f"frames/{v}/pts_s"][:], f[f"frames/{v}/rgb"].shape[1:3])
            assert json.loads(f["meta/config_json"].asstr()[()])["split"]["fps"] == 4.0
    assert len(pts["shardin_mixed.mp4"][0]) == 4 and min(pts["shardin_mixed.mp4"][1]) == 16
    assert len(pts["dog/dog1.mp4"][0]) == 2 and min(pts["dog/dog1.mp4"][1]) == 32
