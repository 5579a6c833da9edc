"""OUT/index.parquet (every run, and `vidprep shards ls --parquet`) and the VideoFolder metadata.jsonl of mp4 output.

Independent truth: `vidprep shards ls --clips --jsonl`, plain h5py reads of the shards, index.jsonl, and the frame
numbers drawn into the numbered test video (decoded back by Hugging Face `datasets` through torchcodec).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from clihelp import cli, frame_numbers, shard_paths

SPLIT = ("--label-from-dir", "--clip-frames", "4", "--stride", "6", "--size", "32", "--videos-per-shard", "2", "-q")
LS_KEYS = ("row", "video_id", "clip_index", "aug_index", "start_s", "end_s", "frames", "label", "label_name")


@pytest.fixture(scope="module")
def labelled(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """videos/{cat,dog}/{0,1,2}.mp4 of different sources and lengths."""
    root = tmp_path_factory.mktemp("pq_videos")
    sources = ["testsrc2", "mandelbrot", "smptebars", "testsrc", "rgbtestsrc", "yuvtestsrc"]
    for k, src in enumerate(sources):
        cls = ("cat", "dog")[k % 2]
        (root / cls).mkdir(exist_ok=True)
        shutil.copy(make_video(f"pq_{k}.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.6 + 0.2 * k),
                    root / cls / f"{k}.mp4")
    return root


@pytest.fixture(scope="module")
def runs(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same split under the serial executor and under the process executor with two workers."""
    base = tmp_path_factory.mktemp("pq_runs")
    out = {}
    for name, how in (("serial", ("--executor", "serial")), ("process", ("--executor", "process", "--workers", "2"))):
        result = cli("split", labelled, "-o", base / name, *SPLIT, *how)
        assert result.exit_code == 0, result.output
        out[name] = base / name
    return out


def parquet_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_index_matches_shards_ls_and_the_shards(runs: dict[str, Path]) -> None:
    out = runs["serial"]
    rows = parquet_rows(out / "index.parquet")
    result = cli("shards", "ls", out, "--clips", "--jsonl")
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(listed) > 10
    for got, want in zip(rows, listed):
        assert got["shard"] == Path(want["shard"]).name
        assert {k: got[k] for k in LS_KEYS} == {k: want[k] for k in LS_KEYS}
    assert {r["label_name"] for r in rows} == {"cat", "dog"}
    for path in shard_paths(out):  # ordinals and sources, straight from h5py
        mine = [r for r in rows if r["shard"] == path.name]
        with h5py.File(path, "r") as f:
            c = f["clips"]
            for r in mine:
                v = int(c["video_index"][r["row"]])
                index = f[f"frames/{v}/index"][:]
                assert r["frame_first"] == index[c["frame_start"][r["row"]]]
                assert r["frame_last"] == index[c["frame_stop"][r["row"]] - 1]
                assert r["source"] == f["videos/source"].asstr()[v] and r["padded"] == c["padded"][r["row"]]
    assert [(r["shard"], r["row"]) for r in rows] == sorted((r["shard"], r["row"]) for r in rows)


def test_index_is_byte_identical_across_executors_and_rewrites(runs: dict[str, Path], tmp_path: Path) -> None:
    serial = (runs["serial"] / "index.parquet").read_bytes()
    assert (runs["process"] / "index.parquet").read_bytes() == serial
    copy = tmp_path / "copy"
    shutil.copytree(runs["process"], copy)
    (copy / "index.parquet").unlink()
    result = cli("shards", "ls", "--parquet", copy)
    assert result.exit_code == 0 and result.stdout.strip() == str(copy / "index.parquet")
    assert (copy / "index.parquet").read_bytes() == serial
    meta = pq.read_metadata(copy / "index.parquet")
    assert meta.created_by.startswith("parquet-cpp-arrow") and meta.metadata[b"vidprep_index_version"] == b"1"


def test_quality_and_duplicate_columns_when_shards_store_them(runs: dict[str, Path], tmp_path: Path) -> None:
    """/clips/quality/<name> and /clips/dup_group (written here by hand) become columns; null where a shard lacks
    them."""
    out = tmp_path / "q"
    shutil.copytree(runs["serial"], out)
    first = shard_paths(out)[0]
    for path in shard_paths(out):  # split measures quality by default: start from shards without it
        with h5py.File(path, "a") as f:
            if "quality" in f["clips"]:
                del f["clips/quality"]
    with h5py.File(first, "a") as f:
        n = f["clips/label"].shape[0]
        f["clips/quality/sharpness"] = np.arange(n, dtype=np.float32) / 2
        f["clips/quality/motion"] = np.full(n, 0.25, np.float32)
        f["clips/dup_group"] = np.arange(n, dtype=np.int64) // 2
    assert cli("shards", "ls", "--parquet", out).exit_code == 0
    table = pq.read_table(out / "index.parquet")
    assert table.column_names[-3:] == ["quality_motion", "quality_sharpness", "dup_group"]
    assert str(table.schema.field("quality_sharpness").type) == "float"
    rows = table.to_pylist()
    for r in rows:
        if r["shard"] == first.name:
            assert (r["quality_sharpness"], r["quality_motion"], r["dup_group"]) == (r["row"] / 2, 0.25, r["row"] // 2)
        else:
            assert r["quality_sharpness"] is None and r["dup_group"] == -1


def test_ls_parquet_usage_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    shard = shard_paths(runs["serial"])[0]
    for args in ((shard,), (runs["serial"], "--clips"), (tmp_path,)):
        result = cli("shards", "ls", "--parquet", *args)
        assert result.exit_code == 2, (args, result.output)
    assert not (tmp_path / "index.parquet").exists()


@pytest.fixture(scope="module")
def mp4_and_h5(numbered_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The numbered video in clips of 10 frames every 20, as mp4 files and as HDF5 shards, labelled ``num``."""
    root = tmp_path_factory.mktemp("vf")
    (root / "videos" / "num").mkdir(parents=True)
    shutil.copy(numbered_video, root / "videos" / "num" / "n.mp4")
    args = ("--clip-frames", "10", "--stride", "20", "--label-from-dir", "--executor", "serial", "-q")
    for fmt in ("mp4", "h5"):
        result = cli("split", root / "videos", "-o", root / fmt, "--format", fmt, *args)
        assert result.exit_code == 0, result.output
    return root / "mp4", root / "h5"


def test_mp4_output_has_a_parquet_index_from_index_jsonl(mp4_and_h5: tuple[Path, Path]) -> None:
    mp4, _ = mp4_and_h5
    index = [json.loads(line) for line in (mp4 / "index.jsonl").read_text().splitlines()]
    rows = parquet_rows(mp4 / "index.parquet")
    assert [r["files"] for r in rows] == [r["files"] for r in index] and len(rows) == 3
    for got, want in zip(rows, index):
        assert (got["frame_first"], got["frame_last"], got["frames"]) == (want["ordinals"][0], want["ordinals"][-1], 10)
        assert got["label_name"] == want["label_name"] == "num" and got["start_s"] == want["start_s"]


def test_videofolder_loads_with_datasets_and_matches_the_shards(mp4_and_h5: tuple[Path, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`load_dataset("videofolder", data_dir=OUT)` as is: every clip, its columns, and (decoded by torchcodec) the
    same frames as the HDF5 shards of the same split (frame numbers drawn into the video)."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mp4, h5 = mp4_and_h5
    ds = datasets.load_dataset("videofolder", data_dir=str(mp4), split="train", cache_dir=str(tmp_path / "hf"))
    shard = shard_paths(h5)[0]
    with h5py.File(shard, "r") as f:
        starts, labels = f["clips/frame_start"][:], f["clips/label"][:]
        rgb, index = f["frames/0/rgb"][:], f["frames/0/index"][:]
    assert ds.num_rows == len(starts) == 3
    assert {"video", "video_id", "clip_index", "label", "label_name", "start_s", "end_s", "ordinals"} <= set(
        ds.column_names)
    for k, row in enumerate(ds):
        a = int(starts[k])
        assert (row["video_id"], row["clip_index"], row["label"], row["label_name"]) == ("num/n.mp4", k, labels[k], "num")
        assert row["ordinals"] == index[a:a + 10].tolist() and row["frame_first"] == index[a]
        frames = row["video"].get_frames_in_range(0, 10).data.permute(0, 2, 3, 1).numpy()  # (T,H,W,3) uint8
        assert frames.shape == rgb[a:a + 10].shape
        assert frame_numbers(frames) == frame_numbers(rgb[a:a + 10]) == list(range(a, a + 10))


def test_an_index_that_cannot_be_written_is_a_warning(runs: dict[str, Path], tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The run's shards are complete without the index: an unreadable shard at finish time is a warning."""
    from vidprep.shards.indexes import finish_indexes

    out = tmp_path / "bad"
    shutil.copytree(runs["serial"], out)
    (out / "index.parquet").unlink()
    shard_paths(out)[-1].write_bytes(b"not hdf5")
    with caplog.at_level("WARNING", logger="vidprep.shards.indexes"):
        finish_indexes(out, "h5")
    assert not (out / "index.parquet").exists()
    assert "index.parquet not written" in caplog.text and "re-running" in caplog.text
