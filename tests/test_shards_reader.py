"""ShardSet, the PyTorch datasets and plain-h5py reading, on synthetic shards."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidprep.errors import ShardError
from vidprep.shards import ShardSet, ShardWriter, shard_name

IDS = ["vidéo 'un'.mp4", 'b "two".mp4', "三.mp4"]


def frame_px(tag: int, i: int, h: int, w: int) -> np.ndarray:
    """One frame whose pixels encode (video tag, frame number)."""
    px = np.zeros((h, w, 3), np.uint8)
    px[..., 0], px[..., 1] = tag, i
    return px


def make_frames_shard(path: Path, videos: list[tuple[str, int, int, int]], tag0: int = 0, **kw: object) -> Path:
    """Frames shard: each video (id, frames, h, w) gets 2-frame clips at stride 1, the last one padded by 1."""
    w = ShardWriter(path, kind="frames", config={"split": {"clip_frames": 2}}, class_names=["a", "b"], **kw)
    for k, (vid, n, h, wd) in enumerate(videos):
        v = w.add_video(vid, f"/src/{vid}", {"fps": 10.0, "width": wd, "height": h})
        w.append_frames(v, np.stack([frame_px(tag0 + k, i, h, wd) for i in range(n)]), np.arange(n) / 10, np.arange(n))
        w.set_video_array(v, "scene_score", np.arange(n, dtype=np.float32))
        for c in range(n - 1):
            w.add_clip(v, frame_start=c, frame_stop=c + 2, start_s=c / 10, end_s=(c + 2) / 10, clip_index=c,
                       label=(tag0 + k) % 2)
        w.add_clip(v, frame_start=n - 1, frame_stop=n, start_s=(n - 1) / 10, end_s=n / 10, clip_index=n - 1,
                   label=-1, padded=1)
    return w.commit().path


def make_features_shard(path: Path, n_videos: int, clips: int, dim: int = 6, tag0: int = 0) -> Path:
    w = ShardWriter(path, kind="features", config={"features": {"model": "resnet18"}}, store_frames=False)
    for k in range(n_videos):
        v = w.add_video(f"f{tag0 + k}", f"/src/f{tag0 + k}", {})
        w.append_frames(v, None, np.arange(clips) / 2, np.arange(clips))
        for c in range(clips):
            w.add_clip(v, frame_start=c, frame_stop=c + 1, start_s=c / 2, end_s=c / 2 + 0.5, clip_index=c,
                       label=c % 3, features=np.full(dim, 100 * (tag0 + k) + c, np.float32))
    return w.commit().path


@pytest.fixture()
def frames_dir(tmp_path: Path) -> Path:
    make_frames_shard(tmp_path / shard_name(0), [(IDS[0], 4, 11, 17), (IDS[1], 3, 5, 8)])
    make_frames_shard(tmp_path / shard_name(1), [(IDS[2], 3, 11, 17)], tag0=2)
    return tmp_path


def test_getitem_frames_padding_and_labels(frames_dir: Path) -> None:
    ss = ShardSet(frames_dir)
    assert len(ss) == 10 and ss.videos() == IDS and ss.class_names == ["a", "b"] and ss.kind == "frames"
    first = ss[0]
    assert first["video_id"] == IDS[0] and first["frames"].shape == (2, 11, 17, 3)
    assert first["frames"][:, 0, 0, 1].tolist() == [0, 1] and first["pts_s"].tolist() == [0.0, 0.1]
    assert (first["label"], first["label_name"], first["shard"]) == (0, "a", str(frames_dir / shard_name(0)))
    padded = ss[3]
    assert padded["padded"] == 1 and padded["frames"].shape == (2, 11, 17, 3)
    assert padded["frames"][:, 0, 0, 1].tolist() == [3, 3] and padded["index"].tolist() == [3, 3]
    assert padded["label_name"] is None
    last = ss[-1]
    assert (last["video_id"], last["row"], last["frames"][0, 0, 0, 0]) == (IDS[2], 2, 2)
    with pytest.raises(IndexError):
        ss[10]


def test_video_by_id(frames_dir: Path) -> None:
    video = ShardSet(frames_dir).video(IDS[1])
    assert video["frames"].shape == (3, 5, 8, 3) and video["frames"][:, 0, 0, 0].tolist() == [1, 1, 1]
    assert video["scene_score"].tolist() == [0, 1, 2] and video["source"] == f"/src/{IDS[1]}"
    assert video["rows"].tolist() == [4, 5, 6] and video["clips"]["clip_index"].tolist() == [0, 1, 2]
    with pytest.raises(KeyError):
        ShardSet(frames_dir).video("missing")


def test_iter_blocks_cross_shards(frames_dir: Path) -> None:
    blocks = list(ShardSet(frames_dir).iter_blocks(4))
    assert [len(b["label"]) for b in blocks] == [4, 4, 2]
    assert isinstance(blocks[0]["frames"], np.ndarray) and blocks[0]["frames"].shape == (4, 2, 11, 17, 3)
    assert isinstance(blocks[1]["frames"], list)  # videos of different sizes in one block
    assert list(blocks[1]["video_id"]) == [IDS[1]] * 3 + [IDS[2]] and blocks[1]["row"].tolist() == [4, 5, 6, 0]


def test_features_blocks_and_normalization(tmp_path: Path) -> None:
    make_features_shard(tmp_path / shard_name(0), 2, 3)
    make_features_shard(tmp_path / shard_name(1), 1, 3, tag0=2)
    ss = ShardSet(tmp_path, normalization=lambda x: x * 2)
    item = ss[4]
    assert "frames" not in item and item["features"].tolist() == [2 * 101.0] * 6 and item["video_id"] == "f1"
    blocks = list(ss.iter_blocks(5))
    assert [b["features"].shape for b in blocks] == [(5, 6), (4, 6)]
    assert blocks[1]["features"][:, 0].tolist() == [2 * x for x in (102, 200, 201, 202)]
    assert ss.video("f2")["clips"]["features"].shape == (3, 6)


def test_jpeg_shard_reads_back(tmp_path: Path) -> None:
    make_frames_shard(tmp_path / shard_name(0), [("j", 3, 16, 24)], frame_codec="jpeg", jpeg_quality=100)
    item = ShardSet(tmp_path)[1]
    assert item["frames"].shape == (2, 16, 24, 3)
    np.testing.assert_allclose(item["frames"][:, 8, 12, 1], [1, 2], atol=3)


def test_pickle_drops_handles(frames_dir: Path) -> None:
    ss = ShardSet(frames_dir)
    ss[0]
    assert ss._files
    clone = pickle.loads(pickle.dumps(ss))
    assert clone._files == {} and clone[9]["video_id"] == IDS[2]


def test_mixed_kinds_refused(tmp_path: Path) -> None:
    make_frames_shard(tmp_path / shard_name(0), [("x", 2, 4, 4)])
    make_features_shard(tmp_path / shard_name(1), 1, 2)
    with pytest.raises(ShardError, match="kinds"):
        ShardSet(tmp_path)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dataloader_workers_match_direct_indexing(frames_dir: Path, method: str) -> None:
    torch = pytest.importorskip("torch")
    from vidprep.shards.torch import ShardDataset

    ds = ShardDataset(frames_dir / shard_name(0))
    ds[0]  # an open handle in the parent must not leak into forked workers
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=method)
    got = list(loader)
    assert len(got) == len(ds) == 7
    for i, (x, label) in enumerate(got):
        want_x, want_label = ds[i]
        assert x.dtype == torch.uint8 and tuple(x.shape) == ((2, 3, 11, 17) if i < 4 else (2, 3, 5, 8))
        assert torch.equal(x, want_x) and int(label) == want_label


def test_iterable_dataset_covers_all_rows_once(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from vidprep.shards.torch import ShardIterableDataset

    for k in range(3):
        make_features_shard(tmp_path / shard_name(k), 1, 4, tag0=k)
    ds = ShardIterableDataset(tmp_path, shuffle_buffer=3, seed=7)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    seen = sorted(int(x[0]) for x, _ in loader)
    assert seen == sorted(100 * k + c for k in range(3) for c in range(4))
    assert [int(x[0]) for x, _ in ds] == [int(x[0]) for x, _ in ds]


def test_plain_h5py_recipe(frames_dir: Path) -> None:
    """The docs/format.md recipes: one clip, and one video by id, with h5py and numpy only."""
    with h5py.File(frames_dir / shard_name(0), "r") as f:
        i = 5
        v = int(f["clips/video_index"][i])
        start, stop = int(f["clips/frame_start"][i]), int(f["clips/frame_stop"][i])
        clip = f[f"frames/{v}/rgb"][start:stop]
        assert clip.shape == (2, 5, 8, 3) and f["videos/id"].asstr()[v] == IDS[1]
        ids = list(f["videos/id"].asstr()[:])
        v = ids.index(IDS[0])
        off = f["videos/clip_offset"][v:v + 2]
        assert f[f"frames/{v}/rgb"].shape[0] == 4 and off.tolist() == [0, 4]
        assert json.loads(f["meta/class_names"].asstr()[()]) == ["a", "b"]
