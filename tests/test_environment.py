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
