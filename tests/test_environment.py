"""The environment a run finds (issue 11, item 10): ffmpeg too old, a device that is not there, paths on stdin.

Each is a usage problem caught before any decoding (exit 2 naming the cause), or, for one bad path among the
inputs, one error record while the rest of the batch goes on.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from clihelp import cli, shard_paths, vidprep

from vidprep.errors import DependencyError
from vidprep.media import ffmpeg

OLD_FFMPEG = "4.4.2-0ubuntu0.22.04.1"


def fake_tools(where: Path, version: str) -> Path:
    """A directory with ``ffmpeg`` and ``ffprobe`` scripts that only print ``version`` (and fail otherwise)."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("ffmpeg", "ffprobe"):
        script = where / name
        script.write_text(f'#!/bin/sh\n[ "$1" = "-version" ] || exit 1\n'
                          f'echo "{name} version {version} Copyright (c) 2000-2021 the FFmpeg developers"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return where


@pytest.mark.parametrize(("text", "parsed"), [
    ("5.1.6-0+deb12u1", (5, 1, 6)), ("4.4.2-0ubuntu0.22.04.1", (4, 4, 2)), ("4.3.6-0+deb11u1", (4, 3, 6)),
    ("n6.0", (6, 0)), ("7.0-static", (7, 0)), ("6.1.1-3ubuntu5", (6, 1, 1)),
    ("N-112345-g0123abcd", None), ("2023-03-05-git-912ac82ed0-full_build-www.gyan.dev", None), ("unknown", None),
])
def test_parse_version(text: str, parsed: tuple[int, ...] | None) -> None:
    assert ffmpeg.parse_version(text) == parsed


def test_version_check_refuses_old_and_accepts_new_or_git_builds() -> None:
    for ok in ("5.1.6-0+deb12u1", "n6.0", "N-112345-g0123abcd"):
        ffmpeg.check_version("ffmpeg", "/x/ffmpeg", ok)
    with pytest.raises(DependencyError, match=r"ffmpeg 5\.0\.3 .*too old.*>= 5\.1.*conda-forge"):
        ffmpeg.check_version("ffmpeg", "/x/ffmpeg", "5.0.3")


def test_old_ffmpeg_is_exit_2_before_decoding(tmp_path: Path, numbered_video: Path) -> None:
    tools = fake_tools(tmp_path / "bin", OLD_FFMPEG)
    out = tmp_path / "out"
    proc = vidprep("split", numbered_video, "-o", out, "--executor", "serial",
                   env={"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and OLD_FFMPEG in errors[0] and ">= 5.1" in errors[0], proc.stderr
    assert str(tools / "ffmpeg") in errors[0] and "static build" in errors[0]
    assert not shard_paths(out) and not (out / "errors.jsonl").exists()


@pytest.mark.parametrize("executor", ["serial", "process", "ray"])
def test_unusable_device_is_exit_2_before_decoding_under_every_executor(executor: str, tmp_path: Path,
                                                                        numbered_video: Path) -> None:
    import torch

    devices = [f"cuda:{torch.cuda.device_count()}"]  # one past the last CUDA device: never usable
    devices += [] if torch.cuda.is_available() else ["cuda"]
    for device in devices:
        out = tmp_path / f"out-{device}"
        result = cli("features", numbered_video, "-o", out, "--model", "resnet18", "--weights", "none",
                     "--device", device, "--executor", executor, "--fps", "1", "--size", "32")
        assert result.exit_code == 2, result.output
        assert "--device" in result.output and device in result.output, result.output
        assert not shard_paths(out) and not (out / "errors.jsonl").exists()


def test_unknown_device_name_is_exit_2(tmp_path: Path, numbered_video: Path) -> None:
    result = cli("features", numbered_video, "-o", tmp_path / "out", "--weights", "none", "--device", "gpu0",
                 "--executor", "process")
    assert result.exit_code == 2 and "--device" in result.output and "gpu0" in result.output, result.output


def test_device_names() -> None:
    from vidprep.errors import ConfigError
    from vidprep.stages import runtime

    assert runtime.parse_device("cuda:3") == ("cuda", 3) and runtime.parse_device("mps") == ("mps", None)
    for bad in ("cuda:", "cuda:-1", "mps:0", "cpu:1", "tpu"):
        with pytest.raises(ConfigError, match="--device"):
            runtime.parse_device(bad)
    assert runtime.pick_precision("cuda:1", "auto") == "fp16"
    runtime.check_device("cuda:7", remote=True)  # a Ray cluster's workers may have GPUs the driver lacks


@pytest.fixture(scope="module")
def small_shards(numbered_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vidprep split` output: one shard of the numbered video (2 fps, 32 px)."""
    out = tmp_path_factory.mktemp("stdin") / "root" / "frames"
    result = cli("split", numbered_video, "-o", out, "--fps", "2", "--size", "32", "--executor", "serial", "-q")
    assert result.exit_code == 0 and len(shard_paths(out)) == 1, result.output
    return out


def error_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def test_stdin_shard_paths_get_the_checks_of_any_input(small_shards: Path, tmp_path: Path) -> None:
    """A FIFO named .h5 (opening it would block), a shard outside --root and a directory arrive on stdin after a good
    shard: each bad path is one error record, the good shard is processed, nothing hangs."""
    root = small_shards.parent
    good = shard_paths(small_shards)[0]
    fifo = root / "fifo.h5"
    os.mkfifo(fifo)
    outside = tmp_path / "outside.h5"
    outside.write_bytes(good.read_bytes())
    linked = root / "link.h5"  # inside --root by name, outside by target
    linked.symlink_to(outside)
    stdin = "\n".join(map(str, [good, fifo, outside, linked, root / "missing.h5"])) + "\n"
    out = tmp_path / "enh"
    proc = vidprep("enhance", "-", "-o", out, "--root", root, "--contrast", "autolevels", "--executor", "serial",
                   input=stdin, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    records = {r["path"]: r for r in error_records(out)}
    assert set(records) == {str(fifo), str(outside), str(linked), str(root / "missing.h5")}, records
    assert "not a regular file" in records[str(fifo)]["message"]
    assert "outside the input root" in records[str(outside)]["message"]
    assert "outside the input root" in records[str(linked)]["message"]
    assert all(r["stage"] == "input" and r["error_type"] == "InputError" for r in records.values())
    assert [p.name for p in shard_paths(out)] == [good.name] and proc.stdout.split() == [str(out / good.name)]


def test_fifo_shard_in_an_output_directory_is_refused(small_shards: Path, tmp_path: Path) -> None:
    from vidprep.inputs import expand

    copy = tmp_path / "frames"
    copy.mkdir()
    (copy / "manifest.json").write_text((small_shards / "manifest.json").read_text())
    good = copy / "shard-00000.h5"
    good.write_bytes(shard_paths(small_shards)[0].read_bytes())
    os.mkfifo(copy / "shard-00001.h5")
    listed = expand([str(copy)])
    assert listed.shards == [str(good)]
    assert [(p.path, p.message) for p in listed.problems] == [
        (str(copy / "shard-00001.h5"), "not a regular file (FIFO, device or socket)")]


def test_fault_injection_hooks_are_inert_unless_set(tmp_path: Path) -> None:
    """vidprep.shards.testhooks (used by the full-disk and read-only tests in test_hostile.py) does nothing by default."""
    import subprocess
    import sys

    code = ("from vidprep.shards import testhooks as t\n"
            "t.before_shard_write(1 << 40); t.before_output_write('/')\n"
            "print(t._write_budget, t._read_only)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPREP_TEST_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert proc.stdout.split() == ["None", "None"]
    env["VIDPREP_TEST_FAIL_WRITE_AFTER"] = "10"
    code = ("from vidprep.shards import testhooks as t\nt.before_shard_write(10)\n"
            "try:\n    t.before_shard_write(1)\nexcept OSError as e:\n    print(e.errno)\n")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip() == "28"  # ENOSPC
