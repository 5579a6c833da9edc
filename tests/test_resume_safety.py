"""Resume and array-job safety: changed inputs are refused, finished shards are trusted from the manifest, array
tasks never delete each other's work, live temp files survive cleanup, and no scratch or temp name is left."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from clihelp import VIDPREP, cli, shard_paths, vidprep
from vidprep.shards import atomic
from vidprep.shards.cleanup import cleanup_temp, find_temp

SPLIT = ("--fps", "5", "--size", "32", "--videos-per-shard", "2", "--executor", "serial")


def _folder(six_videos: Path, tmp_path: Path, names: list[int], name: str = "in") -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    for i in names:
        if not (folder / f"v{i}.mp4").exists():
            os.link(six_videos / f"v{i}.mp4", folder / f"v{i}.mp4")
    return folder


def _snapshot(out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``out`` (lock files aside)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".manifest.lock"}


def _leftovers(*dirs: Path) -> list[Path]:
    """Temp names of the one scheme, or scratch files, anywhere under ``dirs``."""
    return [p for d in dirs for p in d.rglob("*")
            if atomic.parse_temp_name(p.name) or p.name.startswith(".vidprep-frames-")]


@pytest.mark.parametrize("fmt", ["h5", "jpg"])
def test_resume_after_adding_a_video_is_refused_before_decoding(
        six_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    inputs = _folder(six_videos, tmp_path, [0, 2, 4])
    out = tmp_path / "out"
    assert cli("split", inputs, "-o", out, "--format", fmt, *SPLIT).exit_code == 0
    before = _snapshot(out)
    _folder(six_videos, tmp_path, [1])  # units were [v0 v2] [v4]; now [v0 v1] [v2 v4]

    import vidprep.media.decode
    import vidprep.media.probe

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a video was opened although the run must stop first")

    monkeypatch.setattr(vidprep.media.decode, "decode", no_decoding)
    monkeypatch.setattr(vidprep.media.probe, "probe", no_decoding)
    res = cli("split", inputs, "-o", out, "--format", fmt, *SPLIT)
    assert res.exit_code == 2, res.output
    message = " ".join(res.stderr.split())
    name = "shard-00000.h5" if fmt == "h5" else ".parts/shard-00000.jsonl"
    assert (f"{name} was made from [v0.mp4, v2.mp4] but this run's unit 0 is [v0.mp4, v1.mp4]: "
            "1 video added (v1.mp4), 1 video removed (v2.mp4)") in message
    assert "--overwrite" in message and "new output directory" in message
    assert _snapshot(out) == before, "nothing may be written when the inputs changed"


def test_resume_after_removing_the_last_unit_is_refused(six_videos: Path, tmp_path: Path) -> None:
    inputs = _folder(six_videos, tmp_path, [0, 1, 2])
    out = tmp_path / "out"
    assert cli("split", inputs, "-o", out, *SPLIT).exit_code == 0
    (inputs / "v2.mp4").unlink()  # unit 1 ([v2]) no longer exists; unit 0 is unchanged
    res = cli("split", inputs, "-o", out, *SPLIT)
    assert res.exit_code == 2
    assert "shard-00001.h5 was made from [v2.mp4] but this run has no unit 1: 1 video removed" in \
        " ".join(res.stderr.split())


def test_resume_trusts_the_manifest_and_opens_only_unlisted_shards(
        six_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _folder(six_videos, tmp_path, [0, 1, 2, 3])
    (inputs / "broken.mp4").write_bytes(b"not a video at all")  # fails inside unit 0: [broken v0]
    out = tmp_path / "out"
    assert cli("split", inputs, "-o", out, *SPLIT).exit_code == 3
    shards = shard_paths(out)
    assert [p.name for p in shards] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shards"][0]["input_ids"] == ["broken.mp4", "v0.mp4"]
    assert manifest["shards"][0]["video_ids"] == ["v0.mp4"]
    # a crash between shard-00002's rename and its manifest entry: the only shard a resume may open
    manifest["shards"] = manifest["shards"][:2]
    (out / "manifest.json").write_text(json.dumps(manifest))

    opened: list[str] = []
    real_file = h5py.File

    def spy(name: object, *args: object, **kwargs: object) -> h5py.File:
        opened.append(os.path.abspath(os.fspath(name)) if isinstance(name, (str, os.PathLike))
                      else os.readlink(f"/proc/self/fd/{name.fileno()}"))  # a file object (the trust walk)
        return real_file(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", spy)
    res = cli("split", inputs, "-o", out, *SPLIT)
    monkeypatch.undo()
    assert res.exit_code == 3, res.output  # the failure of the first run is still reported
    assert sorted(set(opened)) == [str(shards[2])], "finished shards listed in the manifest must not be opened"
    entries = json.loads((out / "manifest.json").read_text())["shards"]
    assert [e["name"] for e in entries] == [p.name for p in shards]
    assert entries[2]["input_ids"] == ["v3.mp4"] and entries[2]["sha256"] == \
        hashlib.sha256(shards[2].read_bytes()).hexdigest()
    assert [json.loads(line)["video_id"] for line in (out / "errors.jsonl").read_text().splitlines()] == \
        ["broken.mp4"]


def test_overwrite_in_an_array_job_is_refused(six_videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = (six_videos, "-o", out, "--every", "5", "--videos-per-shard", "1", "--executor", "serial")
    for k in (0, 1):
        assert cli("split", *args, "--shard-index", str(k), "--num-shards", "2").exit_code == 0
    before = _snapshot(out)
    assert len(shard_paths(out)) == 6
    res = cli("split", *args, "--shard-index", "0", "--num-shards", "2", "--overwrite")
    assert res.exit_code == 2
    message = " ".join(res.stderr.split())
    assert "--overwrite" in message and "--num-shards" in message and "Clear the output directory once" in message
    assert _snapshot(out) == before, "no task's shards may be deleted"


def _temp(directory: Path, final: str, host: str, pid: int, age_s: float = 0.0) -> Path:
    path = directory / atomic.temp_name(final, host, pid, "0badf00d")
    path.write_bytes(b"partial")
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_cleanup_keeps_live_temps_and_removes_abandoned_ones(tmp_path: Path) -> None:
    here = atomic.this_host()
    fresh_remote = _temp(tmp_path, "shard-00000.h5", "other-node", 123)
    stale_remote = _temp(tmp_path, "shard-00001.h5", "other-node", 123, age_s=atomic.STALE_AFTER_S + 60)
    live_local = _temp(tmp_path, "shard-00002.h5", here, os.getpid(), age_s=10 * atomic.STALE_AFTER_S)
    dead_local = _temp(tmp_path, "shard-00003.h5", here, _dead_pid())
    (tmp_path / "clip").mkdir()
    dead_jpg = _temp(tmp_path / "clip", "000001.jpg", here, _dead_pid())
    locked = _temp(tmp_path, "shard-00004.h5", "other-node", 5, age_s=atomic.STALE_AFTER_S + 60)
    atomic.claim(locked)  # a writer that holds its lock (e.g. another container of this host, pids unseen)
    try:
        removed = cleanup_temp(tmp_path, subdirs=["clip"])
    finally:
        atomic.release(locked)
    assert sorted(removed) == sorted([stale_remote, dead_local, dead_jpg])
    assert fresh_remote.exists() and live_local.exists() and locked.exists()
    assert cleanup_temp(tmp_path) == [locked], "without the lock (and no heartbeat) it is abandoned"


def test_remove_own_temp_takes_only_this_process_files(tmp_path: Path) -> None:
    from vidprep.shards.cleanup import remove_own_temp

    here = atomic.this_host()
    mine = _temp(tmp_path, "shard-00000.h5", here, os.getpid())
    other_pid = _temp(tmp_path, "shard-00001.h5", here, os.getpid() + 1)
    other_host = _temp(tmp_path, "shard-00002.h5", "other-node", os.getpid())
    final = tmp_path / "shard-00003.h5"
    final.write_bytes(b"published")
    assert remove_own_temp(tmp_path) == [mine]
    assert not mine.exists() and other_pid.exists() and other_host.exists() and final.exists()


def test_claimed_temp_left_at_exit_is_removed(tmp_path: Path) -> None:
    code = ("import sys; from vidprep.shards import atomic; t = atomic.temp_path_for(sys.argv[1]); "
            "atomic.claim(t); print(t)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "shard-00000.h5")], capture_output=True,
                          text=True, timeout=60, check=True)
    assert not Path(done.stdout.strip()).exists()
    assert not list(tmp_path.iterdir())


def test_cleanup_never_searches_outside_the_output(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    outside = _temp(elsewhere, "a.jpg", atomic.this_host(), _dead_pid())
    assert cleanup_temp(out, subdirs=["../elsewhere", str(elsewhere)]) == [] and outside.exists()


def test_heartbeat_keeps_a_claimed_temp_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "HEARTBEAT_S", 0.05)
    claims = atomic._Claims()  # its own thread, beating at the patched rate
    temp = _temp(tmp_path, "shard-00000.h5", "other-node", 1, age_s=atomic.STALE_AFTER_S + 60)
    claims.claim(temp, lock=False)
    try:
        for _ in range(600):  # wait for a beat (at most ~30 s on a loaded machine)
            if time.time() - temp.stat().st_mtime < atomic.STALE_AFTER_S:
                break
            time.sleep(0.05)
        assert cleanup_temp(tmp_path) == [] and temp.exists()
    finally:
        claims.release(temp)


@pytest.mark.parametrize("host", ["other-node", "here"])
def test_cleanup_survives_a_temp_vanishing_after_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    host = atomic.this_host() if host == "here" else host
    _temp(tmp_path, "shard-00000.h5", host, _dead_pid(), age_s=atomic.STALE_AFTER_S + 60)
    real = atomic.is_locked

    def renamed_meanwhile(path: Path) -> bool:
        answer = real(path)
        path.unlink()  # its writer published or removed it right after our listing
        return answer

    monkeypatch.setattr(atomic, "is_locked", renamed_meanwhile)
    assert cleanup_temp(tmp_path) == []
    assert find_temp(tmp_path) == []


def _scratch_fds(pid: int, directory: Path) -> list[str]:
    """Targets of the process's open descriptors that are scratch files in ``directory``: a named one
    (``.vidprep-frames-*``) or an anonymous O_TMPFILE one (``DIR/#inode (deleted)``)."""
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if ".vidprep-frames-" in target or re.fullmatch(re.escape(str(directory.resolve())) + r"/#\d+ \(deleted\)", target):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the scratch file")
def test_sigkill_with_scratch_open_leaves_no_scratch_or_temp(six_videos: Path, tmp_path: Path) -> None:
    out, tmpdir = tmp_path / "out", tmp_path / "tmpdir"
    tmpdir.mkdir()
    args = [str(six_videos), "-o", str(out), "--format", "mp4", "--clip-frames", "4", "--videos-per-shard", "1",
            "--executor", "serial"]
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([*VIDPREP, "split", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    seen: list[str] = []
    try:
        while proc.poll() is None and not seen:
            seen = _scratch_fds(proc.pid, out)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert seen, "the run ended before a scratch file was open; the test proves nothing"
    assert all(t.endswith(" (deleted)") for t in seen), f"scratch file has a name while in use: {seen}"
    assert not [p for p in _leftovers(out, tmpdir) if p.name.startswith(".vidprep-frames-")]
    res = vidprep("split", *args, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert _leftovers(out, tmpdir) == []
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert sorted({r["video_id"] for r in index}) == [f"v{i}.mp4" for i in range(6)]
    assert all((out / f).is_file() for r in index for f in r["files"])


def test_file_outputs_are_fsynced_before_the_index_names_them(
        six_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "out"
    res = cli("split", _folder(six_videos, tmp_path, [0]), "-o", out, "--format", "jpg", "--clip-frames", "2",
              "--executor", "serial")
    monkeypatch.undo()
    assert res.exit_code == 0, res.output
    assert _leftovers(out) == []
    part = out / ".parts" / "shard-00000.jsonl"
    assert json.loads(part.read_text().splitlines()[0]) == {"unit": {"video_ids": ["v0.mp4"]}}
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert index and all("video_id" in r for r in index)
    order = {e: n for n, e in enumerate(events)}
    part_published = next(n for n, (kind, what) in enumerate(events)
                          if kind == "replace" and what.endswith(str(part)))
    for rec in index:
        for f in rec["files"]:
            final = str(out / f)
            rename = next(e for e in events if e[0] == "replace" and e[1].endswith(" -> " + final))
            temp = rename[1].split(" -> ")[0]
            assert order[("fsync", temp)] < order[rename] < part_published, f
            folder_sync = max(n for n, e in enumerate(events) if e == ("fsync", str(Path(final).parent)))
            assert order[rename] < folder_sync < part_published, f
    assert ("fsync", next(e[1].split(" -> ")[0] for e in events if e[1].endswith(" -> " + str(out / "index.jsonl")))) \
        in order
