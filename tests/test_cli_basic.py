"""CLI basics: version, env, help without heavy imports, probe on good and bad files, inputs handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import cli, vidprep
from vidprep import __version__


def test_version_and_env() -> None:
    res = cli("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"vidprep {__version__}"
    res = cli("env", "--json")
    info = json.loads(res.stdout)
    assert info["vidprep"] == __version__
    assert info["ffmpeg"] and "not available" not in info["ffmpeg"]
    for key in ("python", "torch", "torchvision", "h5py", "hdf5", "opencv", "albumentations", "cuda"):
        assert info[key], key


def test_help_is_light_and_has_examples() -> None:
    code = ("import sys; from vidprep.cli.app import app; "
            "print(','.join(m for m in ('torch', 'cv2', 'albumentations') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    for command in ("probe", "split", "enhance", "augment", "features", "run", "env"):
        res = cli(command, "--help")
        assert res.exit_code == 0
        assert "Examples" in res.stdout, command
        assert res.stdout.count("vidprep ") >= 2, command


def test_probe_table_json_and_bad_files(numbered_video: Path, rotated_video: Path, audio_video: Path,
                                        tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for src in (numbered_video, rotated_video, audio_video):
        os.link(src, folder / src.name)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n")
    res = cli("probe", folder, "--json")
    assert res.exit_code == 3
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert sorted(rows) == ["audio.mp4", "numbered.mp4", "rotated_cw90.mp4"]
    assert (rows["rotated_cw90.mp4"]["width"], rows["rotated_cw90.mp4"]["height"]) == (120, 160)
    assert rows["rotated_cw90.mp4"]["rotation"] == 90
    assert rows["audio.mp4"]["has_audio"] and not rows["numbered.mp4"]["has_audio"]
    errors = [line for line in res.stderr.splitlines() if line.startswith("vidprep: error:")]
    assert len(errors) == 2
    assert any("empty.mp4" in e for e in errors) and any("notes.mp4" in e for e in errors)
    table = vidprep("probe", folder)
    assert table.returncode == 3
    assert "numbered.mp4" in table.stdout and "160x120" in table.stdout


def test_probe_jsonl_from_stdin_and_list(numbered_video: Path, tmp_path: Path) -> None:
    res = cli("probe", "-", "--jsonl", input=f"{numbered_video}\n\n{numbered_video}\n")
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) == 1
    listing = tmp_path / "list.txt"
    listing.write_text(f"{numbered_video}\nhttp://127.0.0.1:9/x.mp4\n")
    res = cli("probe", f"@{listing}", "--jsonl")
    assert res.exit_code == 3
    assert "protocol" in res.stderr


def test_inputs_ids_are_relative_and_unique(make_video, tmp_path: Path) -> None:
    from vidprep.inputs import expand

    src = make_video("tiny.mp4")
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        os.link(src, tmp_path / sub / "x.mp4")
    listed = expand([str(tmp_path / "a"), str(tmp_path / "b")])
    assert [v.video_id for v in listed.videos] == ["a/x.mp4", "b/x.mp4"]
    listed = expand([str(tmp_path)])
    assert [v.video_id for v in listed.videos] == ["a/x.mp4", "b/x.mp4"]
    os.symlink("/etc/hostname", tmp_path / "a" / "escape.mp4")
    os.mkfifo(tmp_path / "a" / "pipe.mp4")
    listed = expand([str(tmp_path / "a")])
    problems = {Path(p.path).name: p.message for p in listed.problems}
    assert "outside" in problems["escape.mp4"] and "regular" in problems["pipe.mp4"]


def test_keyboard_interrupt_exits_130(make_video, tmp_path: Path) -> None:
    import signal
    import time

    from clihelp import VIDPREP

    long_video = make_video("long_interrupt.mp4", source="testsrc2=size=320x240:rate=25", seconds=20)
    out = tmp_path / "o"
    proc = subprocess.Popen([*VIDPREP, "split", str(long_video), "-o", str(out), "--executor", "serial"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(out.glob(".shard-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    # 130 from the CLI's own handler; rarely (about 1 run in 40 when the signal lands while the shard file is being
    # set up) Python itself ends the process by re-raising SIGINT, which a shell also reports as 130.
    assert proc.returncode in (130, -signal.SIGINT)
    assert not [p for p in (tmp_path / "o").glob(".*tmp*")]


def test_a_swallowed_ctrl_c_still_stops_the_run(make_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C raised where Python swallows it (a GC callback, HDF5's C code) is still recorded by the CLI's handler
    (vidprep.interrupts): the engine raises it at its next safe point, so the run stops and leaves no temp file,
    instead of finishing (exit 0) or failing the video being written (exit 3)."""
    import os
    import signal
    import threading

    import vidprep
    from vidprep import interrupts

    video = make_video("swallowed.mp4", source="testsrc2=size=64x48:rate=10", seconds=2.0)
    previous = signal.getsignal(signal.SIGINT)
    recorded = threading.Event()
    monkeypatch.setattr(interrupts, "_requested", recorded)
    try:
        interrupts.install()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the handler records it and raises; pretend it was swallowed
            signal.pause()  # never reached: the handler raised
    finally:
        signal.signal(signal.SIGINT, previous)
    assert recorded.is_set()
    with pytest.raises(KeyboardInterrupt):
        vidprep.run({"split": {"size": 32}}, video, tmp_path / "o", executor="serial")
    assert not list((tmp_path / "o").glob("shard-*")) and not list((tmp_path / "o").glob(".*tmp*"))
