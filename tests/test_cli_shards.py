"""`vidprep shards info | verify | ls` on a real split output, and verify catching a tampered shard."""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from clihelp import cli


def test_info_ls_verify(numbered_video: Path, silent_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("split", numbered_video, silent_video, "-o", out, "--clip-frames", "5", "--size", "40",
               "--videos-per-shard", "1", "--executor", "serial").exit_code == 0
    info = json.loads(cli("shards", "info", out, "--json").stdout)
    assert info["kind"] == "frames" and info["shards"] == 2 and info["videos"] == 2
    assert info["clips"] == 60 // 5 + 25 // 5
    rows = [json.loads(line) for line in cli("shards", "ls", out, "--jsonl").stdout.splitlines()]
    assert sorted(r["video_id"] for r in rows) == ["numbered.mp4", "silent.mp4"]
    clips = cli("shards", "ls", out, "--clips", "--jsonl").stdout.splitlines()
    assert len(clips) == info["clips"]
    res = cli("shards", "verify", out)
    assert res.exit_code == 0 and res.stdout.strip() == "ok"
    with h5py.File(out / "shard-00001.h5", "a") as f:
        f["clips/frame_stop"][0] = 10_000
    res = cli("shards", "verify", out)
    assert res.exit_code == 1
    assert "shard-00001.h5" in res.stderr
