"""``--format wds`` runs like HDF5 runs: failures in errors.jsonl (and in the tar's unit record), resume (finished
tars skipped, stale temps removed, a crash before the manifest update repaired, changed inputs refused), array jobs,
``--overwrite``, feature runs, option checks; and crafted tars are refused by the reader without reading or writing
anything outside OUT.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from clihelp import cli

from vidprep.shards.atomic import temp_name
from vidprep.shards.wds_read import read_tar
from vidprep.shards.wds_tar import UNIT_MEMBER

COMMON = ("--label-from-dir", "--clip-frames", "4", "--executor", "serial", "--videos-per-shard", "2", "-q")


@pytest.fixture(scope="module")
def videos(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """aaa/broken.mp4 (not a video) sorts first, so unit 0 holds it and cat/0.mp4; unit 1 holds dog/1.mp4."""
    root = tmp_path_factory.mktemp("wdsrun_videos")
    for k, (cls, src) in enumerate([("cat", "testsrc2"), ("dog", "mandelbrot")]):
        (root / cls).mkdir()
        shutil.copy(make_video(f"wdsrun_{k}.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.5),
                    root / cls / f"{k}.mp4")
    (root / "aaa").mkdir()
    (root / "aaa" / "broken.mp4").write_bytes(b"not a video at all" * 10)
    return root


def unit_record(path: Path) -> dict:
    return read_tar(path)[1]


def digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shard-*.tar"))}


def test_errors_resume_crash_repair_changed_inputs_and_overwrite(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = cli("split", videos, "-o", out, "--format", "wds", *COMMON)
    assert first.exit_code == 3, first.output
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["video_id"] for e in errors] == ["aaa/broken.mp4"]
    unit0 = unit_record(out / "shard-00000.tar")
    assert unit0["input_ids"] == ["aaa/broken.mp4", "cat/0.mp4"] and unit0["video_ids"] == ["cat/0.mp4"]
    assert [e["video_id"] for e in unit0["errors"]] == ["aaa/broken.mp4"]
    assert cli("shards", "verify", out, "--inputs", videos).exit_code == 0
    made = digests(out)

    # a stale temp of a dead writer, and a crash between the rename and the manifest/errors updates
    stale = out / temp_name("shard-00001.tar", socket.gethostname(), 999_999_999, "abcd")
    stale.write_bytes(b"half a tar")
    (out / "manifest.json").unlink()
    (out / "errors.jsonl").unlink()
    again = cli("split", videos, "-o", out, "--format", "wds", *COMMON, "--json")
    assert again.exit_code == 3, again.output  # the earlier failure still counts
    summary = json.loads(again.stdout)
    assert summary["skipped_units"] == 2 and summary["shards"] == []
    assert not stale.exists() and digests(out) == made
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(s["name"] for s in manifest["shards"]) == ["shard-00000.tar", "shard-00001.tar"]
    assert [json.loads(line)["video_id"] for line in (out / "errors.jsonl").read_text().splitlines()] == \
        ["aaa/broken.mp4"]
    assert cli("shards", "verify", out).exit_code == 0

    # another input video: the finished units no longer match
    more = tmp_path / "more"
    shutil.copytree(videos, more)
    shutil.copy(videos / "cat" / "0.mp4", more / "cat" / "00.mp4")
    changed = cli("split", more, "-o", out, "--format", "wds", *COMMON)
    assert changed.exit_code == 2 and "input videos changed" in changed.output

    # --overwrite clears every tar (also one no unit of this run would write) and rebuilds the same bytes
    (out / "shard-00009.tar").write_bytes(b"old")
    rebuilt = cli("split", videos, "-o", out, "--format", "wds", *COMMON, "--overwrite")
    assert rebuilt.exit_code == 3 and not (out / "shard-00009.tar").exists()
    assert digests(out) == made


def test_array_job_tasks_write_their_own_tars(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for k in (0, 1):
        result = cli("split", videos, "-o", out, "--format", "wds", *COMMON, "--num-shards", "2",
                     "--shard-index", str(k))
        assert result.exit_code in (0, 3), result.output
    assert sorted(p.name for p in out.glob("shard-*.tar")) == ["shard-00000.tar", "shard-00001.tar"]
    ids = [v for p in sorted(out.glob("shard-*.tar")) for v in unit_record(p)["video_ids"]]
    assert ids == ["cat/0.mp4", "dog/1.mp4"]
    assert cli("shards", "verify", out).exit_code == 0


def test_augment_copies_are_separate_samples(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug"
    result = cli("augment", videos / "cat", "-o", out, "--format", "wds", "--clip-frames", "4", "--crop", "32",
                 "--copies", "2", "--keep-original", "--hflip", "0.5", "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    samples, _, _ = read_tar(out / "shard-00000.tar")
    metas = [s.meta for s in samples]
    assert sorted({m["aug_index"] for m in metas}) == [0, 1, 2] and len({s.key for s in samples}) == len(samples)
    assert all((m["aug_params"] == "") == (m["aug_index"] == 0) for m in metas)
    assert all(json.loads(m["aug_params"]) for m in metas if m["aug_index"])


def test_vidprep_run_toml_writes_wds(videos: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[split]\nformat = "wds"\nwds_media = "mp4"\nclip_frames = 4\n\n'
                        '[enhance]\nwhite_balance = "grayworld"\n')
    result = cli("run", pipeline, videos / "cat", "-o", tmp_path / "out", "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    samples, unit, _ = read_tar(tmp_path / "out" / "shard-00000.tar")
    assert unit["media"] == "mp4" and unit["config"]["split"]["wds_media"] == "mp4" and unit["config"]["enhance"]
    assert set(samples[0].members) == {"json", "mp4"} and samples[0].meta["frames"] == 4


def test_feature_run_writes_npy_equal_to_the_h5_features(videos: Path, tmp_path: Path) -> None:
    args = ("--model", "resnet18", "--weights", "none", "--device", "cpu", "--precision", "fp32", "--fps", "4",
            "--size", "64", "--executor", "serial", "-q")
    h5 = cli("features", videos / "dog", "-o", tmp_path / "h5", *args)
    wds = cli("features", videos / "dog", "-o", tmp_path / "wds", *args, "--format", "wds")
    assert h5.exit_code == 0 and wds.exit_code == 0, h5.output + wds.output
    with h5py.File(tmp_path / "h5" / "shard-00000.h5", "r") as f:
        want = f["clips/features"][:]
    samples, unit, _ = read_tar(tmp_path / "wds" / "shard-00000.tar")
    got = np.stack([np.load(io.BytesIO(s.members["npy"])) for s in samples])
    assert unit["kind"] == "features" and unit["media"] is None and set(samples[0].members) == {"json", "npy"}
    assert got.dtype == want.dtype and np.allclose(got, want, atol=1e-5)


FEATS = ("features", "--model", "resnet18", "--weights", "none", "--format", "wds")


@pytest.mark.parametrize("args, named", [
    ((*FEATS, "--normalize", "l2"), "--normalize l2"),
    ((*FEATS, "--stats-from", "x.h5"), "--stats-from"),
    ((*FEATS, "--wds-media", "mp4"), "--wds-media"),
    (("split", "--format", "h5", "--wds-media", "mp4"), "--wds-media"),
    (("split", "--format", "wds", "--frame-codec", "jpeg"), "--frame-codec"),
    (("split", "--format", "wds", "--wds-media", "gif"), "wds_media"),
])
def test_options_that_do_not_combine_are_usage_errors(videos: Path, tmp_path: Path, args: tuple, named: str) -> None:
    result = cli(args[0], videos, "-o", tmp_path / "o", *args[1:])
    assert result.exit_code == 2 and named.replace("_", "-") in result.output.replace("_", "-"), result.output
    if named in ("--normalize l2", "--stats-from"):  # our refusal, not a missing statistics file
        assert "does not combine with --format wds" in result.output and "--normalize none" in result.output
    assert not list((tmp_path / "o").glob("shard-*")) if (tmp_path / "o").exists() else True


# --- crafted tars ------------------------------------------------------------------------------------------------


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"{}", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _craft(path: Path, build: Callable[[tarfile.TarFile], None]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
        _member(tar, UNIT_MEMBER, json.dumps({"format": "vidprep-wds", "samples": 1, "video_ids": []}).encode())


def _huge_claim(path: Path) -> None:
    """A header claiming a 1 TB member followed by a few bytes: nothing may try to read or allocate that."""
    info = tarfile.TarInfo("k-1.json")
    info.size = 10**12
    path.write_bytes(info.tobuf(tarfile.PAX_FORMAT) + b"{}" + b"\0" * 1022)


CRAFTED: dict[str, Callable[[Path], None]] = {
    "traversal": lambda p: _craft(p, lambda t: _member(t, "../escape.json")),
    "absolute": lambda p: _craft(p, lambda t: _member(t, "/tmp/escape.json")),
    "subdir": lambda p: _craft(p, lambda t: _member(t, "a/b.json")),
    "symlink": lambda p: _craft(p, lambda t: _member(t, "k-1.json", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd")),
    "hardlink": lambda p: _craft(p, lambda t: _member(t, "k-1.json", b"", type=tarfile.LNKTYPE, linkname="../x")),
    "device": lambda p: _craft(p, lambda t: _member(t, "k-1.json", b"", type=tarfile.CHRTYPE)),
    "huge": _huge_claim,
    "control": lambda p: _craft(p, lambda t: _member(t, "k\n1.json")),
    "split-sample": lambda p: _craft(p, lambda t: [_member(t, n) for n in ("k-1.json", "k-2.json", "k-1.0000.jpg")]),
}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_tars_are_refused_without_touching_anything_outside(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    CRAFTED[name](out / "shard-00000.tar")
    before = tree(tmp_path)
    result = cli("shards", "verify", out)
    assert result.exit_code == 1 and "shard-00000.tar" in result.output, result.output
    assert any(w in result.output for w in ("refused", "claims", "not a readable tar", "appears twice"))
    parquet = cli("shards", "ls", "--parquet", out)
    assert parquet.exit_code != 0 and "Traceback" not in parquet.output
    assert tree(tmp_path) == before and not (tmp_path / "escape.json").exists()


def test_a_tar_that_is_a_symlink_out_of_out_is_never_opened(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fifo = tmp_path / "outside.fifo"
    os.mkfifo(fifo)  # opening it would block the test forever
    (out / "shard-00000.tar").symlink_to(fifo)
    result = cli("shards", "verify", out)
    assert result.exit_code == 1 and "symlink" in result.output, result.output


def test_a_failed_write_is_never_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidprep.errors import ShardError
    from vidprep.shards.wds_tar import TarShardWriter

    writer = TarShardWriter(tmp_path / "shard-00000.tar", "frames")
    writer.add_sample("k-1", [("json", b"{}")])
    assert writer._tar is not None

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer._tar, "addfile", disk_full)
    with pytest.raises(OSError):
        writer.add_sample("k-2", [("json", b"{}")])
    with pytest.raises(ShardError):
        writer.commit({"video_ids": []})
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_zero_shot_scores_and_embeddings_land_in_the_samples(videos: Path, tmp_path: Path) -> None:
    pytest.importorskip("open_clip")
    import tiny_models as tm

    model = tm.open_clip_dir(tmp_path / "models")
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ncolor bars\n")
    args = ("--model", f"open_clip:{model}", "--fps", "4", "--size", "40", "--pool", "mean", "--text-labels", labels,
            "--normalize", "none", "--executor", "serial", "-q")
    assert cli("features", videos / "cat", "-o", tmp_path / "h5", *args).exit_code == 0
    result = cli("features", videos / "cat", "-o", tmp_path / "wds", *args, "--format", "wds")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "h5" / "shard-00000.h5", "r") as f:
        scores, text = f["clips/text_scores"][:], f["meta/text_embeddings"][:]
    samples, unit, embeddings = read_tar(tmp_path / "wds" / "shard-00000.tar")
    assert unit["text_labels"]["labels"] == ["cat", "color bars"] and embeddings is not None
    np.testing.assert_allclose(np.load(io.BytesIO(embeddings)), text, atol=1e-6)
    np.testing.assert_allclose(np.array([s.meta["text_scores"] for s in samples]), scores, atol=1e-6)


def test_process_executor_writes_the_same_bytes_as_serial(videos: Path, tmp_path: Path) -> None:
    args = [a for a in COMMON if a not in ("--executor", "serial")]
    serial = cli("split", videos, "-o", tmp_path / "s", "--format", "wds", *args, "--executor", "serial")
    process = cli("split", videos, "-o", tmp_path / "p", "--format", "wds", *args, "--executor", "process",
                  "--workers", "2")
    assert serial.exit_code == process.exit_code == 3, serial.output + process.output
    assert digests(tmp_path / "s") == digests(tmp_path / "p") != {}
    assert (tmp_path / "s" / "index.parquet").read_bytes() == (tmp_path / "p" / "index.parquet").read_bytes()


def test_a_later_step_writes_wds_from_h5_shard_inputs(videos: Path, tmp_path: Path) -> None:
    split = cli("split", videos / "dog", "-o", tmp_path / "h5", *COMMON)
    assert split.exit_code == 0, split.output
    result = cli("enhance", tmp_path / "h5", "-o", tmp_path / "wds", "--format", "wds", "--white-balance", "grayworld",
                 "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "h5" / "shard-00000.h5", "r") as f:
        clips = len(f["clips/label"])
    samples, unit, _ = read_tar(tmp_path / "wds" / "shard-00000.tar")
    assert len(samples) == clips and {s.meta["label_name"] for s in samples} == {"dog"}
    assert unit["class_names"] == ["dog"]  # the input shard's class names
    assert cli("shards", "verify", tmp_path / "wds").exit_code == 0
