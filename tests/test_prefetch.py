"""The ffmpeg queries started at CLI launch (self-queries, the first named video's probe): each is collected once,
by its caller or by the exit reaper."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from clihelp import vidprep
from vidprep.media import prefetch


def test_a_query_is_collected_by_its_caller_or_the_reaper_never_both() -> None:
    """A caller taking a query while the exit reaper runs (another thread, the moment the CLI exits) gets nothing
    once the reaper has it: two communicate() calls on one process close its pipes under each other (EBADF)."""
    prefetch.start_for(["split"])
    try:
        keys = list(prefetch._started)
        assert len(keys) >= 2, "start_for started fewer than two queries"
        first = prefetch._started[keys[0]]
        late: list[object] = []
        kill = first.kill

        def kill_while_a_caller_takes() -> None:
            late.append(prefetch.take(list(keys[1])))  # the caller arrives while the reaper is at work
            kill()

        first.kill = kill_while_a_caller_takes  # type: ignore[method-assign]
        prefetch._reap()
        assert late == [None] and prefetch._started == {}
    finally:
        prefetch._reap()


def test_the_first_named_video_file_is_the_one_probed_at_launch(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "later.mkv").write_bytes(b"x")
    (tmp_path / "labels.csv").write_bytes(b"x")
    (tmp_path / "folder.mp4").mkdir()
    args = ["--fps", "2", str(tmp_path / "labels.csv"), str(tmp_path / "missing.mp4"), str(tmp_path / "folder.mp4"),
            "--size=32", str(tmp_path / "clip.mp4"), str(tmp_path / "later.mkv")]
    assert prefetch.first_video(args) == str(tmp_path / "clip.mp4")
    assert prefetch.first_video([str(tmp_path / "labels.csv"), str(tmp_path)]) is None


def logging_ffprobe(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An ``ffprobe`` first on PATH that logs its arguments (one line per run) and runs the real one."""
    log, bin_dir = tmp_path / "ffprobe.log", tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ffprobe"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("ffprobe")} "$@"\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def test_a_named_video_is_probed_once_and_read_as_before(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    video = make_video("prefetch_probe.mp4")
    env, log = logging_ffprobe(tmp_path)
    res = vidprep("probe", video, "--json", env=env)
    assert res.returncode == 0, res.stderr
    (info,) = json.loads(res.stdout)
    assert (info["width"], info["height"]) == (64, 48)  # conftest's testsrc2 size, as ffprobe itself says
    probes = [line for line in log.read_text().splitlines() if "-show_streams" in line and str(video) in line]
    assert len(probes) == 1, probes  # started at launch, taken by the probe: not run twice


def test_a_failed_launch_probe_is_run_again_and_reported_as_before(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    env, log = logging_ffprobe(tmp_path)
    res = vidprep("probe", bad, env=env)
    probes = [line for line in log.read_text().splitlines() if "-show_streams" in line]
    assert res.returncode != 0 and len(probes) == 2, (res.returncode, probes)
    assert str(bad) in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
