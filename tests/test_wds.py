"""``--format wds``: WebDataset tars read by the `webdataset` library and by Hugging Face `datasets` give the same
frames, labels and metadata as the HDF5 shards of the same run (plain h5py reads), and the sample keys follow the
documented rule.

jpg samples hold the very JPEG files ``--frame-codec jpeg`` shards store (same encoder, same quality), so bytes and
decoded pixels are compared exactly. mp4 samples are re-encoded by x264 (crf 15, 4:2:0, as ``--format mp4``): frame
count and pts are exact, pixels within PSNR >= 30 dB and a mean absolute error <= 4 levels of the raw shards.
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

from clihelp import cli

from vidprep.shards.jpeg import decode_jpeg
from vidprep.shards.wds_read import MEMBER_RE
from vidprep.shards.wds_tar import sample_key

webdataset = pytest.importorskip("webdataset")
COMMON = ("--label-from-dir", "--clip-frames", "4", "--executor", "serial", "--videos-per-shard", "2", "-q")


@pytest.fixture(scope="module")
def videos(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wds_videos")
    for k, src in enumerate(["testsrc2", "mandelbrot", "smptebars"]):
        cls = ("cat", "dog")[k % 2]
        (root / cls).mkdir(exist_ok=True)
        shutil.copy(make_video(f"wds_{k}.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.7),
                    root / cls / f"{k}.mp4")
    return root


@pytest.fixture(scope="module")
def runs(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same split as h5 (raw and jpeg frames) and as wds (jpg and mp4 samples)."""
    root = tmp_path_factory.mktemp("wds_runs")
    out = {}
    for name, args in {"h5": ("--format", "h5"), "h5jpeg": ("--format", "h5", "--frame-codec", "jpeg"),
                       "wds": ("--format", "wds"), "wds_mp4": ("--format", "wds", "--wds-media", "mp4")}.items():
        result = cli("split", videos, "-o", root / name, *args, *COMMON)
        assert result.exit_code == 0, result.output
        out[name] = root / name
    return out


def h5_clips(out: Path) -> list[dict]:
    """Every clip of every shard, in shard then row order, from plain h5py (frames raw, or JPEG bytes)."""
    clips = []
    for path in sorted(out.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            c = {k: f["clips"][k][:] for k in ("video_index", "frame_start", "frame_stop", "label", "clip_index")}
            ids, names = f["videos/id"].asstr()[:], json.loads(f["meta/class_names"].asstr()[()])
            for i in range(len(c["label"])):
                g = f["frames"][str(c["video_index"][i])]
                rows = slice(int(c["frame_start"][i]), int(c["frame_stop"][i]))
                clips.append({"video_id": ids[c["video_index"][i]], "label": int(c["label"][i]),
                              "label_name": names[c["label"][i]], "clip_index": int(c["clip_index"][i]),
                              "pts_s": g["pts_s"][rows].tolist(), "ordinals": g["index"][rows].tolist(),
                              "rgb": g["rgb"][rows] if "rgb" in g else None,
                              "jpeg": [bytes(b) for b in g["jpeg"][rows]] if "jpeg" in g else None})
    return clips


def tars(out: Path) -> list[str]:
    return [str(p) for p in sorted(out.glob("shard-*.tar"))]


def test_webdataset_reads_the_jpg_frames_and_metadata_of_the_h5_run(runs: dict[str, Path]) -> None:
    import cv2

    truth = h5_clips(runs["h5jpeg"])
    raw = webdataset.WebDataset(tars(runs["wds"]), shardshuffle=False)
    decoded = webdataset.WebDataset(tars(runs["wds"]), shardshuffle=False).decode("rgb8")
    samples = list(zip(raw, decoded))
    assert len(samples) == len(truth) > 0
    for want, (plain, smp) in zip(truth, samples):
        meta = smp["json"]
        assert smp["__key__"] == sample_key(want["video_id"], want["clip_index"], 0)
        for k in ("video_id", "label", "label_name", "clip_index", "pts_s", "ordinals"):
            assert meta[k] == want[k], k
        assert meta["frames"] == 4 and meta["aug_index"] == 0 and set(meta["quality"]) >= {"motion", "blur"}
        assert [plain[f"{i:04d}.jpg"] for i in range(4)] == want["jpeg"]  # the very JPEG files of the shard
        for i, data in enumerate(want["jpeg"]):
            rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            assert np.array_equal(smp[f"{i:04d}.jpg"], rgb)


def test_datasets_loads_the_tars_with_the_same_frames_and_labels(runs: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = datasets.load_dataset("webdataset", data_files={"train": tars(runs["wds"])}, split="train",
                               cache_dir=str(tmp_path / "cache"))
    truth = webdataset.WebDataset(tars(runs["wds"]), shardshuffle=False).decode("rgb8")
    rows = list(ds)
    for row, want in zip(rows, truth, strict=True):
        assert row["__key__"] == want["__key__"]
        assert row["json"]["label_name"] == want["json"]["label_name"] and row["json"]["pts_s"] == want["json"]["pts_s"]
        for i in range(4):
            assert np.array_equal(np.asarray(row[f"{i:04d}.jpg"].convert("RGB")), want[f"{i:04d}.jpg"])


def test_mp4_samples_are_frame_exact_and_near_lossless(runs: dict[str, Path]) -> None:
    decoders = pytest.importorskip("torchcodec.decoders")
    truth = h5_clips(runs["h5"])
    samples = list(webdataset.WebDataset(tars(runs["wds_mp4"]), shardshuffle=False))
    assert len(samples) == len(truth)
    for want, smp in zip(truth, samples):
        meta = json.loads(smp["json"])
        assert meta["ordinals"] == want["ordinals"] and meta["pts_s"] == want["pts_s"]
        dec = decoders.VideoDecoder(smp["mp4"])
        batch = dec.get_frames_in_range(0, len(dec))
        assert len(dec) == 4 == len(want["rgb"])
        assert np.allclose(batch.pts_seconds.numpy(), np.asarray(want["pts_s"]) - want["pts_s"][0], atol=1e-3)
        got = batch.data.numpy().transpose(0, 2, 3, 1).astype(np.float64)
        err = np.abs(got - want["rgb"].astype(np.float64))
        assert err.mean() <= 4.0 and 10 * np.log10(255**2 / (err**2).mean()) >= 30.0


def test_index_verify_info_and_ls_on_a_wds_output(runs: dict[str, Path]) -> None:
    out = runs["wds"]
    rows = pq.read_table(out / "index.parquet").to_pylist()
    listed = [json.loads(line) for line in cli("shards", "ls", out, "--clips", "--jsonl").stdout.splitlines()]
    assert [(r["shard"], r["row"], r["key"]) for r in rows] == [(r["shard"], r["row"], r["key"]) for r in listed]
    assert rows[0]["shard"] == "shard-00000.tar" and rows[0]["key"] == listed[0]["key"]
    h5_rows = pq.read_table(runs["h5"] / "index.parquet").to_pylist()
    same = ("video_id", "clip_index", "start_s", "end_s", "frame_first", "frame_last", "label", "label_name")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in h5_rows]
    assert cli("shards", "verify", out).exit_code == 0
    info = json.loads(cli("shards", "info", out, "--json").stdout)
    assert info["format"] == "wds" and info["clips"] == len(rows) and info["class_names"] == ["cat", "dog"]


@pytest.mark.parametrize("video_id", ["cat/0.mp4", "a b.c.d.mp4", "../x.mp4", "__x__", ".hidden", "日本/動画.mp4",
                                      "-" * 200])
def test_sample_keys_are_tar_safe(video_id: str) -> None:
    key = sample_key(video_id, 12, 3)
    assert "." not in key and "/" not in key and not key.startswith(("_", ".", "-"))
    assert MEMBER_RE.match(f"{key}.0000.jpg") and key.endswith("-c000012-a003") and len(key) <= 100
    assert key == sample_key(video_id, 12, 3)


def test_ids_that_slug_alike_get_different_keys() -> None:
    assert sample_key("a/b.mp4", 0, 0) != sample_key("a_b.mp4", 0, 0) != sample_key("a_b_mp4", 0, 0)


def test_frame_shard_jpeg_equals_h5_decoder(runs: dict[str, Path]) -> None:
    """The h5 reader's own JPEG decoding gives the pixels webdataset gives (same bytes, same libjpeg result)."""
    clip = h5_clips(runs["h5jpeg"])[0]
    frame = decode_jpeg(np.frombuffer(clip["jpeg"][0], np.uint8))
    smp = next(iter(webdataset.WebDataset(tars(runs["wds"]), shardshuffle=False).decode("rgb8")))
    assert np.array_equal(frame, smp["0000.jpg"])
