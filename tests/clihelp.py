"""Helpers to run the vidprep CLI in tests: in-process (Typer's runner) or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from typer.testing import CliRunner

from vidprep.cli.app import app

VIDPREP = [sys.executable, "-m", "vidprep"]


def cli(*args: str | Path, input: str | None = None):
    """Run vidprep in-process; returns Click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def vidprep(*args: str | Path, input: str | None = None, timeout: float = 120, env: dict | None = None):
    """Run vidprep as a subprocess; returns CompletedProcess with text stdout/stderr."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*VIDPREP, *map(str, args)], input=input, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def shard_paths(out: Path) -> list[Path]:
    """Completed shards of an output directory, in order."""
    return sorted(out.glob("shard-*.h5"))


def read_videos(out: Path) -> dict[str, dict]:
    """Every video of every shard: frames, pts, index and its clip rows, keyed by video id (plain h5py)."""
    videos: dict[str, dict] = {}
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            ids = f["videos/id"].asstr()[:]
            off = f["videos/clip_offset"][:]
            clips = {k: ds[:] for k, ds in f["clips"].items() if k != "features" and isinstance(ds, h5py.Dataset)}
            feats = f["clips/features"][:] if "clips/features" in f else None
            for v, vid in enumerate(ids):
                g = f[f"frames/{v}"]
                rows = slice(int(off[v]), int(off[v + 1]))
                videos[str(vid)] = {
                    "rgb": g["rgb"][:] if "rgb" in g else None,
                    "pts": g["pts_s"][:],
                    "index": g["index"][:],
                    "clips": {k: c[rows] for k, c in clips.items()},
                    "features": feats[rows] if feats is not None else None,
                    "extra": {k: g[k][:] for k in g if k not in ("rgb", "jpeg", "pts_s", "index")},
                }
    return videos


def frame_numbers(rgb: np.ndarray) -> list[int]:
    """The numbers encoded in number-encoded frames."""
    from videos import read_frame_number

    return [read_frame_number(f) for f in rgb]
