"""Files named on the command line besides videos (pipeline TOML, @list, --labels, --text-labels) never hang a run.

A FIFO nobody writes to used to block the open forever; ``/dev/zero`` as a list would be read without end. Now the
first is read as empty (the option's own "no entries" error, exit 2), the second stops at the size cap, a
directory is one line, and a real pipe (shell process substitution, ``@<(find ...)``) still works: checked with a
pipe whose read end the child gets as ``/dev/fd/N``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from clihelp import VIDPREP

SPLIT = ("--fps", "2", "--size", "32", "--executor", "serial")


def _run(*args: str | Path, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDPREP, *map(str, args)], capture_output=True, text=True, timeout=60, pass_fds=pass_fds)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "nobody-writes.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(("where", "needle"), [
    ("list", "no input videos"),
    ("labels", "holds no 'video_id,label' rows"),
    ("text_labels", "holds no labels"),
])
def test_a_fifo_nobody_writes_to_is_an_empty_file_not_a_hang(
        make_video, tmp_path: Path, fifo: Path, where: str, needle: str) -> None:
    video = make_video("nf_a.mp4")
    args = {"list": ["split", f"@{fifo}", *SPLIT],
            "labels": ["split", video, "--labels", fifo, *SPLIT],
            "text_labels": ["features", video, "--model", "timm:test_vit", "--weights", "none", "--text-labels",
                            fifo, "--executor", "serial"]}[where]
    res = _run(*args, "-o", tmp_path / "out")  # the old code blocked in open() until the 60 s timeout
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_pipeline_fifo_nobody_writes_to_runs_the_empty_pipeline(make_video, tmp_path: Path, fifo: Path) -> None:
    """An empty pipeline file means split with its defaults, as an empty regular file does."""
    res = _run("run", fifo, make_video("nf_a.mp4"), "-o", tmp_path / "out", "--executor", "serial")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "shard-00000.h5").is_file()


def test_endless_and_directory_inputs_are_one_line(make_video, tmp_path: Path) -> None:
    endless = _run("split", "@/dev/zero", "-o", tmp_path / "o1", *SPLIT)
    assert endless.returncode == 2 and "larger than 512 MiB" in endless.stderr, endless.stderr
    for args in (["run", tmp_path, make_video("nf_a.mp4")], ["split", make_video("nf_a.mp4"), "--labels", tmp_path]):
        res = _run(*args, "-o", tmp_path / "o2", "--executor", "serial")
        assert res.returncode == 2 and "is a directory" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_a_real_pipe_is_read_like_process_substitution(make_video, tmp_path: Path) -> None:
    video = make_video("nf_a.mp4")
    r, w = os.pipe()
    os.write(w, f"{video}\n".encode())
    os.close(w)
    try:
        res = _run("split", f"@/dev/fd/{r}", "-o", tmp_path / "out", *SPLIT, pass_fds=(r,))
    finally:
        os.close(r)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(tmp_path / "out" / "shard-00000.h5")]


def test_files_saved_with_a_byte_order_mark_read_as_without(make_video, tmp_path: Path) -> None:
    """Spreadsheet programs save UTF-8 with a BOM first: the list's first path, the CSV header and the TOML's
    first table must still be what they say (before, the first path was 'not found', the header a data row and
    the TOML invalid)."""
    import h5py

    video = make_video("nf_a.mp4")
    bom = b"\xef\xbb\xbf"
    (tmp_path / "list.txt").write_bytes(bom + f"{video}\r\n".encode())
    (tmp_path / "labels.csv").write_bytes(bom + b"video_id,label\r\nnf_a.mp4,cat\r\n")
    (tmp_path / "pipeline.toml").write_bytes(
        bom + f"[split]\nfps = 2\nsize = 32\nlabels = '{tmp_path / 'labels.csv'}'\n".encode())
    res = _run("run", tmp_path / "pipeline.toml", f"@{tmp_path / 'list.txt'}", "-o", tmp_path / "out",
               "--executor", "serial")
    assert res.returncode == 0 and "warning" not in res.stderr.lower(), res.stderr
    with h5py.File(tmp_path / "out" / "shard-00000.h5", "r") as f:
        assert f["videos/id"].asstr()[:].tolist() == ["nf_a.mp4"]
        assert set(f["clips/label"][:].tolist()) == {0}
        assert f["frames/0/rgb"].shape[1] == 32  # [split] size = 32 (short side) took effect
