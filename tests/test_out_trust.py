"""The run's own output directory is untrusted when it is resumed or overwritten.

vidprep never makes links, FIFOs or devices in OUT. A crafted OUT that holds one under vidprep's own names must be
refused (exit 2, naming it) before anything reads or appends through it; ``--overwrite`` removes the link itself,
never what it points at; a shard missing from the manifest (crash recovery) is read back through the same trust
check as any input shard. Truth: the outside tree's sizes and mtimes (`hostile_shards.tree`), plain h5py reads,
and `trust.check_file` on what the run left.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import pytest

from clihelp import cli, vidprep
from hostile_shards import tree
from vidprep.errors import ShardError
from vidprep.shards import manifest, trust

SPLIT = ("--fps", "2", "--size", "32", "--videos-per-shard", "1", "--executor", "serial")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, make_video) -> Path:
    """base/vids (two videos), base/h5 and base/jpg (finished outputs of them), base/other (a shard of a third)."""
    base = tmp_path_factory.mktemp("out-trust")
    vids, third = base / "vids", base / "third"
    vids.mkdir()
    third.mkdir()
    os.link(make_video("ot_a.mp4", source="testsrc2=size=64x48:rate=10"), vids / "a.mp4")
    os.link(make_video("ot_b.mp4", source="mandelbrot=size=64x48:rate=10"), vids / "b.mp4")
    os.link(make_video("ot_c.mp4", source="smptebars=size=64x48:rate=10"), third / "c.mp4")
    for fmt in ("h5", "jpg"):
        assert cli("split", vids, "-o", base / fmt, "--format", fmt, *SPLIT).exit_code == 0
    assert cli("split", third, "-o", base / "other", *SPLIT).exit_code == 0
    return base


def _copy(made: Path, fmt: str, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh copy of a finished output (OUT) and an empty outside directory beside it."""
    out = tmp_path / "out"
    shutil.copytree(made / fmt, out, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return out, outside


def _plant(out: Path, outside: Path, name: str, shard: Path) -> None:
    """Replace ``name`` in OUT by a link to something in ``outside``: a copy of ``shard`` for a shard name, a
    directory holding a part and a foreign file for ``.parts``, else a foreign text file."""
    target = out / name
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    if name == ".parts":
        (outside / "parts").mkdir()
        (outside / "parts" / "shard-00000.jsonl").write_text('{"unit": {"video_ids": ["a.mp4"]}}\n')
        (outside / "parts" / "keep.txt").write_text("not vidprep's\n")
        target.symlink_to(outside / "parts")
    else:
        victim = outside / f"victim-{Path(name).name}"
        if name.endswith(".h5"):
            shutil.copyfile(shard, victim)
        else:
            victim.write_text("not vidprep's\n")
        target.symlink_to(victim)


LINKED = [("h5", "errors.jsonl"), ("h5", "manifest.json"), ("h5", ".manifest.lock"), ("h5", "shard-00001.h5"),
          ("jpg", ".parts"), ("jpg", ".parts/shard-00000.jsonl"), ("jpg", "index.jsonl")]


@pytest.mark.parametrize(("fmt", "name"), LINKED, ids=[n for _, n in LINKED])
def test_resume_refuses_a_link_under_an_own_name_and_reads_nothing_through_it(
        made: Path, tmp_path: Path, fmt: str, name: str) -> None:
    out, outside = _copy(made, fmt, tmp_path)
    _plant(out, outside, name, made / "other" / "shard-00000.h5")
    before = tree(outside)
    res = cli("split", made / "vids", "-o", out, "--format", fmt, *SPLIT)
    assert res.exit_code == 2, res.output
    assert "never writes" in res.stderr and f"{Path(name).name} is a symlink" in res.stderr
    assert tree(outside) == before
    assert os.path.islink(out / name)  # refused before anything was changed


def test_resume_refuses_a_fifo_named_like_a_shard_without_blocking(made: Path, tmp_path: Path) -> None:
    out, _ = _copy(made, "h5", tmp_path)
    (out / "shard-00001.h5").unlink()
    os.mkfifo(out / "shard-00001.h5")
    run = vidprep("split", made / "vids", "-o", out, *SPLIT, timeout=60)  # the old code blocked on open
    assert run.returncode == 2, run.stderr
    assert "shard-00001.h5 is not a regular file" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("fmt", ["h5", "jpg"])
def test_overwrite_removes_links_never_what_they_point_at(made: Path, tmp_path: Path, fmt: str) -> None:
    out, outside = _copy(made, fmt, tmp_path)
    for name in (["errors.jsonl", "shard-00000.h5"] if fmt == "h5" else ["errors.jsonl", ".parts"]):
        _plant(out, outside, name, made / "other" / "shard-00000.h5")
    before = tree(outside)
    res = cli("split", made / "vids", "-o", out, "--format", fmt, "--overwrite", *SPLIT)
    assert res.exit_code == 0, res.output
    assert tree(outside) == before, "--overwrite deleted or changed files outside OUT"
    links = [p for p in out.rglob("*") if p.is_symlink()]
    assert links == []
    if fmt == "h5":
        with h5py.File(out / "shard-00000.h5", "r") as f:
            assert f["videos/id"].asstr()[:].tolist() == ["a.mp4"]


def test_a_recovered_shard_is_read_as_untrusted(made: Path, tmp_path: Path) -> None:
    """A shard on disk but not in the manifest is read back; one whose /videos is an external link to another
    output's shard must be refused and its unit made again, not recorded with the other file's videos."""
    out, outside = _copy(made, "h5", tmp_path)
    shutil.copyfile(made / "other" / "shard-00000.h5", outside / "other.h5")
    (out / "manifest.json").unlink()
    with h5py.File(out / "shard-00000.h5", "r+") as f:
        del f["videos"]
        f["videos"] = h5py.ExternalLink(str(outside / "other.h5"), "/videos")
    res = cli("split", made / "vids", "-o", out, *SPLIT)
    assert res.exit_code == 0, res.output
    assert trust.check_file(out / "shard-00000.h5") == []
    with h5py.File(out / "shard-00000.h5", "r") as f:
        assert f["videos/id"].asstr()[:].tolist() == ["a.mp4"]
    listed = {s["name"]: s["video_ids"] for s in manifest.load(out)["shards"]}
    assert listed == {"shard-00000.h5": ["a.mp4"], "shard-00001.h5": ["b.mp4"]}


def test_error_records_are_never_appended_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "errors.jsonl").symlink_to(victim)
    with pytest.raises(ShardError, match="errors.jsonl"):
        manifest.append_error(out, {"path": "x.mp4", "video_id": "x.mp4", "stage": "decode", "message": "m"})
    assert victim.read_text() == "mine\n"


def test_a_fifo_named_like_a_tar_shard_is_refused_without_blocking(tmp_path: Path) -> None:
    shards = tmp_path / "tars"
    shards.mkdir()
    os.mkfifo(shards / "shard-00000.tar")
    run = vidprep("shards", "verify", shards, timeout=60)  # the old code blocked opening it
    assert run.returncode != 0 and "not a regular file" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
