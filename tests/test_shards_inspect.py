"""shards info/verify/ls, manifest.json and errors.jsonl on synthetic shards."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from vidprep.errors import UsageError
from vidprep.shards import ShardWriter, shard_name
from vidprep.shards import inspect as shards_inspect
from vidprep.shards import manifest


def write_shard(out: Path, k: int, ids: list[str], *, kind: str = "frames", config: dict | None = None) -> Path:
    """One shard with 3 frames (5x7) and two clips per video; recorded in the directory's manifest."""
    cfg = config if config is not None else {"features": {"model": "r3d_18", "weights": "DEFAULT", "normalize": "l2"}}
    w = ShardWriter(out / shard_name(k), kind=kind, config=cfg, class_names=["x", "y"], store_frames=kind == "frames")
    for vid in ids:
        v = w.add_video(vid, f"/in/{vid}", {"fps": 30.0})
        rgb = np.zeros((3, 5, 7, 3), np.uint8) if kind == "frames" else None
        w.append_frames(v, rgb, np.arange(3) / 30, np.arange(3))
        for c in range(2):
            feats = np.ones((2, 4), np.float16) if kind == "features" else None
            w.add_clip(v, frame_start=c, frame_stop=c + 2, start_s=c / 30, end_s=(c + 2) / 30, clip_index=c,
                       label=c, features=feats)
    summary = w.commit()
    manifest.record_shard(out, summary, config=cfg)
    return summary.path


def test_info_frames_and_features(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "g").mkdir()
    write_shard(tmp_path / "f", 0, ["a", "b"])
    write_shard(tmp_path / "f", 1, ["c"])
    got = shards_inspect.info(tmp_path / "f")
    assert (got["kind"], got["shards"], got["videos"], got["clips"], got["frames"]) == ("frames", 2, 3, 6, 9)
    assert got["frame_shapes"] == [[5, 7]] and got["frame_codec"] == "raw" and got["feature_shape"] is None
    assert got["labels"] == {"0": 3, "1": 3} and got["class_names"] == ["x", "y"]
    assert (got["model"], got["weights"], got["normalization"]) == ("r3d_18", "DEFAULT", {"normalize": "l2"})
    assert got["bytes"] > 0 and got["vidprep_versions"]
    json.dumps(got)
    write_shard(tmp_path / "g", 0, ["a"], kind="features")
    feat = shards_inspect.info([tmp_path / "g" / shard_name(0)])
    assert (feat["kind"], feat["feature_shape"], feat["feature_dtype"]) == ("features", [2, 4], "float16")


def test_ls_videos_and_clips(tmp_path: Path) -> None:
    write_shard(tmp_path, 0, ["a", "ü b"])
    videos = list(shards_inspect.ls(tmp_path))
    assert [v["video_id"] for v in videos] == ["a", "ü b"]
    assert videos[1]["frames"] == 3 and videos[1]["clips"] == 2 and videos[1]["frame_shape"] == [5, 7]
    assert videos[0]["duration_s"] is None and videos[0]["fps"] == 30.0
    clips = list(shards_inspect.ls(tmp_path, clips=True))
    assert len(clips) == 4 and clips[3]["video_id"] == "ü b" and clips[3]["label_name"] == "y"


def test_verify_clean_then_checksum_duplicate_and_temp(tmp_path: Path) -> None:
    write_shard(tmp_path, 0, ["a", "b"])
    write_shard(tmp_path, 1, ["c"])
    assert shards_inspect.verify(tmp_path) == []
    write_shard(tmp_path, 2, ["b"])
    (tmp_path / ".shard-00009.h5.tmp-otherhost-1-abcd").write_bytes(b"")
    path = tmp_path / shard_name(1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = shards_inspect.verify(tmp_path)
    assert any("checksum mismatch" in p and "shard-00001" in p for p in problems)
    assert any("'b' is in two shards" in p for p in problems)
    assert any("leftover temp" in p for p in problems)


def test_verify_inputs_and_manifest_listing(tmp_path: Path) -> None:
    write_shard(tmp_path, 0, ["a"])
    manifest.append_error(tmp_path, {"path": "/in/bad.mp4", "video_id": "bad", "stage": "decode",
                                     "error_type": "DecodeError", "message": "broken\nstream"})
    assert shards_inspect.verify(tmp_path, inputs=["/in/a", "/in/bad.mp4"]) == []
    assert shards_inspect.verify(tmp_path, inputs=["/in/lost.mp4"]) == ["input /in/lost.mp4: not in any shard nor in "
                                                                       "errors.jsonl"]
    (tmp_path / manifest.MANIFEST_NAME).unlink()
    assert shards_inspect.verify(tmp_path) == [f"{tmp_path}: no manifest.json"]
    manifest.rebuild(tmp_path)
    assert shards_inspect.verify(tmp_path) == []


def _record_many(out: str, task: int) -> None:
    for k in range(8):
        name = shard_name(task * 100 + k)
        manifest.record_shard(out, {"name": name, "kind": "frames", "videos": 1, "clips": 1, "frames": 1,
                                    "bytes": 1, "sha256": "0" * 64, "video_ids": [f"t{task}-{k}"]},
                              config={"seed": 1})


def test_manifest_concurrent_record_from_two_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), t)) for t in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    got = manifest.load(tmp_path)
    assert len(got["shards"]) == 16 and got["config"] == {"seed": 1}
    assert [s["name"] for s in got["shards"]] == sorted(s["name"] for s in got["shards"])
    assert got["versions"]["h5py"] and got["config_fingerprint"] == manifest.config_fingerprint({"seed": 1})
    manifest.check_config(tmp_path, {"seed": 1})
    with pytest.raises(UsageError):
        manifest.check_config(tmp_path, {"seed": 2})


def test_manifest_merge_disjoint_tasks() -> None:
    a, b = manifest.empty_manifest({"s": 1}), manifest.empty_manifest({"s": 1})
    a["shards"] = [{"name": shard_name(0), "sha256": "a"}]
    b["shards"] = [{"name": shard_name(1), "sha256": "b"}]
    assert [s["name"] for s in manifest.merge(a, b)["shards"]] == [shard_name(0), shard_name(1)]
    with pytest.raises(UsageError):
        manifest.merge(a, manifest.empty_manifest({"s": 2}))


def test_errors_jsonl_dedupe_for_resume(tmp_path: Path) -> None:
    def fail(vid: str, msg: str) -> None:
        manifest.append_error(tmp_path, {"path": f"/in/{vid}", "video_id": vid, "stage": "decode",
                                         "error_type": "DecodeError", "message": msg})

    fail("a", "first try")
    fail("b", "bad header")
    fail("a", "second try")
    fail("c", "will succeed later")
    with open(tmp_path / manifest.ERRORS_NAME, "a", encoding="utf-8") as fh:
        fh.write('{"path": "/in/torn", "vid')  # a writer killed mid-line
    fail("d", "after the torn line")
    write_shard(tmp_path, 0, ["c"])
    errors = manifest.read_errors(tmp_path)
    assert [(e["video_id"], e["message"]) for e in errors] == [("b", "bad header"), ("a", "second try"),
                                                               ("d", "after the torn line")]
    assert all(e["time"] and e["error_type"] == "DecodeError" for e in errors)
    assert manifest.load(tmp_path)["failed_inputs"] == 3
    assert manifest.compact_errors(tmp_path) == errors
    assert len((tmp_path / manifest.ERRORS_NAME).read_text().splitlines()) == 3
