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
    # The input shard-00000.h5 is written as shard-00001.h5: past the one video unit, whose output is shard-00000.h5.
    args = ["enhance", video, frames / "shard-00000.h5", "-o", out, "--fps", "4", "--size", "16",
            "--contrast", "autolevels", "--executor", "serial"]
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    assert [p.name for p in shard_paths(out)] == ["shard-00000.h5", "shard-00001.h5"]
    with h5py.File(out / "shard-00000.h5", "r") as f:
        assert list(f["videos/id"].asstr()[:]) == ["shardin_mixed.mp4"]
    with h5py.File(frames / "shard-00000.h5", "r") as f, h5py.File(out / "shard-00001.h5", "r") as g:
        assert list(f["videos/id"].asstr()[:]) == list(g["videos/id"].asstr()[:])
    again = cli(*args)  # resume: both outputs are recognised as done, nothing is redone or refused
    assert again.exit_code == 0, again.stderr
    pts = {}
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            for v, vid in enumerate(f["videos/id"].asstr()[:]):
                pts[vid] = (f[f"frames/{v}/pts_s"][:], f[f"frames/{v}/rgb"].shape[1:3])
            assert json.loads(f["meta/config_json"].asstr()[()])["split"]["fps"] == 4.0
    assert len(pts["shardin_mixed.mp4"][0]) == 4 and min(pts["shardin_mixed.mp4"][1]) == 16
    assert len(pts["cat/cat1.mp4"][0]) == 2 and min(pts["cat/cat1.mp4"][1]) == 32


def test_array_tasks_split_the_input_shards(frames: Path, tmp_path: Path) -> None:
    """Each input shard goes to exactly one array task (by its number), not to every task."""
    out = tmp_path / "out"
    for k in (0, 1):
        res = cli("enhance", frames, "-o", out, "--contrast", "autolevels", "--executor", "serial",
                  "--shard-index", str(k), "--num-shards", "2")
        assert res.exit_code == 0, res.stderr
        assert res.stdout.split() == [str(out / f"shard-0000{k}.h5")]


@pytest.fixture(scope="module")
def other_shards(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Frame shards of another step: bird/ and dog/ labelled from directories ([bird, dog]), and one unlabeled video.

    Returned by what they hold; the files are renamed so no two inputs of a test share a name.
    """
    base = tmp_path_factory.mktemp("other")
    root = base / "videos"
    for cls, src in (("bird", "smptebars"), ("dog", "testsrc")):
        (root / cls).mkdir(parents=True)
        (root / cls / f"{cls}2.mp4").write_bytes(
            make_video(f"shardin_{cls}2.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.6).read_bytes())
    (base / "plain").mkdir()
    (base / "plain" / "ant1.mp4").write_bytes(
        make_video("shardin_ant.mp4", source="rgbtestsrc=size=64x48:rate=25", seconds=0.6).read_bytes())
    for name, src, extra in (("bd", root, ("--label-from-dir",)), ("plain", base / "plain", ())):
        res = cli("split", src, "-o", base / name, "--fps", "2", "--size", "32", "--videos-per-shard", "1",
                  "--executor", "serial", *extra)
        assert res.exit_code == 0, res.stderr
    (base / "plain" / "shard-00000.h5").rename(base / "shard-00007.h5")
    (base / "bd" / "shard-00001.h5").rename(base / "shard-00005.h5")
    return {"dog2": base / "shard-00005.h5", "ant1": base / "shard-00007.h5", "bird2": base / "bd" / "shard-00000.h5"}


def labels_by_video(out: Path) -> dict[str, set[str]]:
    """Each output video's clip labels as class names (plain h5py; -1 as None)."""
    got: dict[str, set] = {}
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            names = json.loads(f["meta/class_names"].asstr()[()])
            off, labels = f["videos/clip_offset"][:], f["clips/label"][:]
            for v, vid in enumerate(f["videos/id"].asstr()[:]):
                got[str(vid)] = {names[n] if n >= 0 else None for n in labels[off[v]:off[v + 1]]}
    return got


def test_labels_on_shard_inputs_are_merged_and_remapped_by_name(frames: Path, other_shards: dict[str, Path],
                                                                tmp_path: Path) -> None:
    """[cat, dog] + [bird, dog] + unlabeled, with a CSV naming the unlabeled video: one list, meanings kept."""
    with h5py.File(other_shards["dog2"], "r") as f:
        assert json.loads(f["meta/class_names"].asstr()[()]) == ["bird", "dog"] and set(f["clips/label"][:]) == {1}
    csv = tmp_path / "labels.csv"
    csv.write_text("video_id,label\nplain_ant1.mp4,ant\nant1.mp4,ant\ncat/cat1.mp4,cat\n")
    out = tmp_path / "out"
    res = cli("enhance", frames / "shard-00000.h5", other_shards["dog2"], other_shards["ant1"], "-o", out,
              "--contrast", "autolevels", "--labels", csv, "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    assert "1 label rows name no input video" in res.stderr
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            assert json.loads(f["meta/class_names"].asstr()[()]) == ["ant", "bird", "cat", "dog"]
    assert labels_by_video(out) == {"cat/cat1.mp4": {"cat"}, "dog/dog2.mp4": {"dog"}, "ant1.mp4": {"ant"}}
    from vidprep.shards.reader import ShardSet

    assert ShardSet(out).class_names == ["ant", "bird", "cat", "dog"]


def test_shards_with_other_class_lists_merge_by_name_without_labels(frames: Path, other_shards: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = cli("enhance", frames / "shard-00001.h5", other_shards["dog2"], "-o", out, "--contrast", "autolevels",
              "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    assert labels_by_video(out) == {"dog/dog1.mp4": {"dog"}, "dog/dog2.mp4": {"dog"}}
    with h5py.File(out / "shard-00001.h5", "r") as f:
        assert json.loads(f["meta/class_names"].asstr()[()]) == ["bird", "cat", "dog"]
        assert set(f["clips/label"][:]) == {2}


def test_labels_csv_that_would_change_a_stored_label_is_exit_2(frames: Path, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("dog/dog1.mp4,cat\n")
    out = tmp_path / "out"
    res = cli("enhance", frames, "-o", out, "--contrast", "autolevels", "--labels", csv, "--executor", "serial")
    assert res.exit_code == 2, res.stderr
    assert "--labels" in res.stderr and "dog/dog1.mp4" in res.stderr and "'dog'" in res.stderr
    assert not out.exists() or not list(out.glob("*.h5"))


def test_label_from_dir_on_shard_inputs_is_exit_2(frames: Path, tmp_path: Path) -> None:
    res = cli("features", frames, "-o", tmp_path / "out", "--label-from-dir", *FEATS)
    assert res.exit_code == 2 and "--label-from-dir" in res.stderr, res.stderr


def test_streamed_shard_with_a_class_outside_the_run_is_one_error_record(frames: Path, other_shards: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """Shards on stdin arrive after the class list is fixed: a class it lacks fails that video, loudly."""
    out = tmp_path / "out"
    res = cli("enhance", frames / "shard-00001.h5", "-", "-o", out, "--contrast", "autolevels", "--executor", "serial",
              input=f"{other_shards['bird2']}\n")
    assert res.exit_code == 3, res.stderr
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["video_id"] for e in errors] == ["bird/bird2.mp4"] and "'bird'" in errors[0]["message"]
    assert labels_by_video(out) == {"dog/dog1.mp4": {"dog"}}


def test_array_tasks_normalize_once_and_match_a_single_run(six_videos: Path, tmp_path: Path) -> None:
    """Two array tasks, then task 0 again: the last to finish fits; nothing is normalized twice."""
    args = ("--fps", "2", "--size", "32", "--videos-per-shard", "3", *FEATS, "--normalize", "zscore")
    single = tmp_path / "single"
    assert cli("features", six_videos, "-o", single, *args).exit_code == 0
    out = tmp_path / "array"
    for task in ("0", "1", "0"):
        res = cli("features", six_videos, "-o", out, *args, "--shard-index", task, "--num-shards", "2")
        assert res.exit_code == 0, res.stderr
        if task == "1":
            after_fit = features_of(out)
    final, expected = features_of(out), features_of(single)
    assert sorted(final) == sorted(expected) == ["shard-00000.h5", "shard-00001.h5"]
    for name in final:
        assert np.array_equal(final[name], after_fit[name])
        np.testing.assert_allclose(final[name], expected[name], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.concatenate(list(final.values())).mean(axis=0), 0, atol=1e-3)
