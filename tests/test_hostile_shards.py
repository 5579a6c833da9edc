"""Shard inputs are untrusted (issue 11, items 1-3): crafted shards, run through the real CLI and the library.

Each crafted shard (tests/hostile_shards.py) is a copy of a real `vidprep split` shard with one thing changed. Mixed
with a good shard, every command must: refuse it as one error record (exit 3), write nothing outside OUT, never
read the canary files the crafted ones point at (their bytes never show up; FIFO targets would hang the run), keep
the good input's output identical to a run without the bad ones, and print no traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from clihelp import cli, read_videos
from hostile_shards import CANARY, Crafted, craft_all, make_fifo_canaries, not_a_shard, tree, truncated
from test_hostile import SERIAL, Run, assert_no_traceback, read_errors, vidprep

SPLIT = ["--fps", "2", "--size", "32", "--videos-per-shard", "1", *SERIAL]
ESCAPES = ("escape-traversal", "escape-absolute")


class Lab(SimpleNamespace):
    """base/ (everything), good shard, crafted shards by name, the outside dir, the runs dir."""

    base: Path
    vids: Path
    good: Path
    crafted: dict[str, Crafted]
    outside: Path
    runs: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, make_video) -> Lab:
    base = tmp_path_factory.mktemp("hostile-shards")
    vids = base / "vids"
    vids.mkdir()
    os.link(make_video("hs_a.mp4", source="testsrc2=size=64x48:rate=10"), vids / "a.mp4")
    os.link(make_video("hs_b.mp4", source="mandelbrot=size=64x48:rate=10"), vids / "b.mp4")
    run = vidprep("split", vids, "-o", base / "split", *SPLIT, cwd=base)
    assert run.rc == 0, run.explain()
    good, template = base / "split" / "shard-00000.h5", base / "split" / "shard-00001.h5"  # a.mp4, b.mp4
    crafted = craft_all(template, base / "bad", base / "outside")
    crafted.update(make_fifo_canaries(template, base / "bad", base / "outside"))
    runs = base / "runs"
    runs.mkdir()
    return Lab(base=base, vids=vids, good=good, crafted=crafted, outside=base / "outside", runs=runs)


def _outputs_clean(lab: Lab, run: Run, out: Path, before: dict) -> None:
    """Nothing changed outside OUT, no escape target exists, no output byte is the canary's, no traceback."""
    assert_no_traceback(run)
    assert tree(lab.base, skip=(lab.runs,)) == before, "a file outside OUT was created or changed"
    assert sorted(p.name for p in lab.runs.iterdir() if p.name.startswith("escape")) == []
    for escape in ESCAPES:
        assert not (lab.base.parent / escape).exists() and not (lab.outside / escape).exists()
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert CANARY[:32] not in path.read_bytes(), f"canary bytes in {path}"


def _one_record_per_bad_input(out: Path, bad: dict[str, Crafted]) -> None:
    records = read_errors(out)
    by_path = {r["path"]: r for r in records}
    assert len(records) == len(bad) and set(by_path) == {str(c.path) for c in bad.values()}, records
    for name, case in bad.items():
        rec = by_path[str(case.path)]
        assert rec["stage"] in ("input", "read") and rec["error_type"], rec
        assert "\n" not in rec["message"] and str(case.path) in rec["message"], rec
        assert any(n.lower() in rec["message"].lower() for n in case.needles), (name, rec["message"])


# ---------------------------------------------------------------------------------------------------- library


def test_validate_shardset_and_inspect_refuse_every_crafted_shard(lab: Lab) -> None:
    from vidprep.errors import ShardError
    from vidprep.shards import ShardSet, inspect, validate

    for name, case in lab.crafted.items():
        problems = validate(case.path)
        assert problems and any(n.lower() in " ".join(problems).lower() for n in case.needles), (name, problems)
        for read in (ShardSet, inspect.info, lambda p: list(inspect.ls(p)), lambda p: list(inspect.ls(p, True))):
            with pytest.raises(ShardError, match=r"refused as a shard|cannot open"):
                read(case.path)
    assert validate(lab.good) == [] and len(ShardSet(lab.good)) > 0


def test_shards_cli_reports_each_crafted_shard_without_reading_elsewhere(lab: Lab) -> None:
    before = tree(lab.base, skip=(lab.runs,))
    paths = [c.path for c in lab.crafted.values()]
    run = vidprep("shards", "verify", *paths, cwd=lab.base, timeout=60)
    assert run.rc == 1, run.explain()
    _outputs_clean(lab, run, lab.runs, before)
    for name, case in lab.crafted.items():
        lines = [ln for ln in run.error_lines() if str(case.path) in ln]
        assert lines and any(n.lower() in " ".join(lines).lower() for n in case.needles), (name, run.stderr)
    for case in lab.crafted.values():
        for args in (("info",), ("ls",), ("ls", "--clips", "--jsonl")):
            run = vidprep("shards", *args, case.path, cwd=lab.base, timeout=60)
            assert run.rc == 1 and run.stdout.strip() == "", run.explain()
            assert run.error_lines() == [ln for ln in run.error_lines() if str(case.path) in ln]
            assert len(run.error_lines()) == 1, run.explain()
            _outputs_clean(lab, run, lab.runs, before)


def test_a_shard_symlinked_out_of_its_output_directory_is_refused_unread(lab: Lab, tmp_path: Path) -> None:
    """OUT/shard-N.h5 -> a file outside OUT: verify reports it (never hashes or opens the target), info/ls refuse
    it with one line; the real shard moved outside would otherwise pass verify, since its bytes match the manifest."""
    import shutil
    import sys

    from vidprep.shards import inspect

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    shutil.copytree(lab.base / "split", out)
    elsewhere.mkdir()
    (out / "shard-00001.h5").rename(elsewhere / "shard-00001.h5")
    (out / "shard-00001.h5").symlink_to(elsewhere / "shard-00001.h5")
    run = vidprep("shards", "verify", out, cwd=tmp_path, timeout=60)
    assert run.rc == 1, run.explain()
    assert [ln for ln in run.error_lines() if "shard-00001" in ln] == [
        ln for ln in run.error_lines() if "symlink points outside the output directory" in ln], run.explain()
    assert len(run.error_lines()) == 1, run.explain()
    for args in (("info",), ("ls",)):
        run = vidprep("shards", *args, out, cwd=tmp_path, timeout=60)
        assert run.rc == 1 and run.stdout.strip() == "", run.explain()
        assert len(run.error_lines()) == 1 and "symlink points outside" in run.error_lines()[0], run.explain()

    opened: list[str] = []
    watching = [True]
    sys.addaudithook(lambda event, args: opened.append(str(args[0])) if watching and event == "open" else None)
    try:
        problems = inspect.verify(out)
    finally:
        watching.clear()
    assert problems == [f"{out / 'shard-00001.h5'}: symlink points outside the output directory; refused (not read)"]
    assert not [p for p in opened if "elsewhere" in p or p.endswith("shard-00001.h5")], opened
    assert any(p.endswith("shard-00000.h5") for p in opened), opened  # the hook does see the good shard's hash


def test_fifo_and_linked_shard_names_in_a_directory_are_reported_never_skipped(lab: Lab, tmp_path: Path) -> None:
    """A directory given to filter / dedup / shards whose shard-N.h5 entries are a FIFO (opening it would block)
    and a symlink leading out of it: each is one line (and, for filter and dedup, one error record: exit 3, the
    good shard still processed), never read and never silently left out of the listing as before."""
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(lab.good, src / "shard-00000.h5")
    os.mkfifo(src / "shard-00001.h5")
    (src / "shard-00002.h5").symlink_to(lab.outside / "canary.h5")
    bad = {"shard-00001.h5": "not a regular file", "shard-00002.h5": "symlink points outside"}

    def reported(lines: list[str]) -> dict[str, str]:
        return {name: next((ln for ln in lines if name in ln), "") for name in bad}

    run = vidprep("filter", src, "-o", tmp_path / "kept", "--keep", "motion >= 0", cwd=tmp_path, timeout=60)
    assert run.rc == 3 and run.stdout.split() == [str(tmp_path / "kept" / "shard-00000.h5")], run.explain()
    assert all(needle in reported(run.error_lines())[name] for name, needle in bad.items()), run.explain()
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in read_errors(tmp_path / "kept")) == sorted(bad)
    run = vidprep("dedup", src, cwd=tmp_path, timeout=60)
    assert run.rc == 3 and all(needle in reported(run.error_lines())[name] for name, needle in bad.items()), \
        run.explain()
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in read_errors(src)) == sorted(bad)
    for args in (("info",), ("ls", "--clips")):
        run = vidprep("shards", *args, src, cwd=tmp_path, timeout=60)
        assert run.rc == 1 and len(run.error_lines()) == 1, run.explain()


def test_a_jpeg_frame_claiming_a_huge_size_is_refused_before_decoding(lab: Lab, tmp_path: Path) -> None:
    """A 600-byte JPEG whose header claims 20000x20000 made OpenCV allocate 2.3 GB (and spend 8 s) before it found
    the data missing: the header is read first now, and the frame refused; so is a frame whose size differs from
    the video's first one. The shard is one error record; peak memory stays that of a normal run."""
    import struct

    import cv2

    jpeg_run = vidprep("split", lab.vids / "a.mp4", "-o", tmp_path / "jpeg", *SPLIT, "--frame-codec", "jpeg",
                       cwd=tmp_path)
    assert jpeg_run.rc == 0, jpeg_run.explain()
    shard = tmp_path / "jpeg" / "shard-00000.h5"
    ok, small = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    bomb = bytearray(small.tobytes())
    sof = bomb.find(b"\xff\xc0")
    bomb[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    with h5py.File(shard, "r+") as f:
        f["frames/0/jpeg"][1] = np.frombuffer(bytes(bomb), np.uint8)
    run = vidprep("enhance", shard, "-o", tmp_path / "out", *SERIAL, cwd=tmp_path, timeout=60)
    assert run.rc == 3, run.explain()
    assert "claims 20000x20000" in run.stderr and "Traceback" not in run.stderr, run.explain()
    assert len(read_errors(tmp_path / "out")) == 1
    assert run.max_rss_kb < 1_000_000, run.max_rss_kb  # 2.4 GB before


def test_a_crafted_manifest_or_errors_file_is_refused_unread(lab: Lab, tmp_path: Path) -> None:
    """OUT/manifest.json symlinked to a file outside OUT and OUT/errors.jsonl a FIFO: `shards verify --inputs`
    reports both as refused (one line each), never reads outside OUT (the canary manifest would change the verdict
    and its marker would show up) and never blocks on the FIFO."""
    import shutil

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    shutil.copytree(lab.base / "split", out)
    elsewhere.mkdir()
    canary = elsewhere / "manifest.json"
    canary.write_text(json.dumps({"shards": [{"name": "shard-99999.h5", "bytes": 1, "sha256": "CANARY-MARKER"}]}))
    (out / "manifest.json").unlink()
    (out / "manifest.json").symlink_to(canary)
    (out / "errors.jsonl").unlink(missing_ok=True)
    os.mkfifo(out / "errors.jsonl")
    run = vidprep("shards", "verify", out, "--inputs", lab.vids, cwd=tmp_path, timeout=60)
    assert run.rc == 1, run.explain()
    assert "CANARY" not in run.stdout + run.stderr and "99999" not in run.stdout + run.stderr, run.explain()
    lines = run.error_lines()
    assert [ln for ln in lines if "manifest.json" in ln and "(a symlink); refused" in ln], run.explain()
    assert [ln for ln in lines if "errors.jsonl" in ln and "not a regular file" in ln], run.explain()


@pytest.mark.parametrize("case", ["external_storage", "virtual_dataset", "symlinked_index"])
def test_ls_parquet_on_a_crafted_directory_reads_nothing_outside_it(lab: Lab, tmp_path: Path, case: str) -> None:
    """`shards ls --parquet DIR` writes DIR/index.parquet from DIR's shards or index.jsonl: a crafted shard goes
    through the trust walk (refused, its canary never read) and a symlinked index.jsonl is refused."""
    import shutil

    before = tree(lab.base, skip=(lab.runs,))
    out = tmp_path / "dir"
    out.mkdir()
    if case == "symlinked_index":
        (tmp_path / "outside.jsonl").write_text('{"video_id": "CANARY-MARKER"}\n')
        (out / "index.jsonl").symlink_to(tmp_path / "outside.jsonl")
    else:
        shutil.copy(lab.crafted[case].path, out / "shard-00000.h5")
    run = vidprep("shards", "ls", "--parquet", out, cwd=tmp_path, timeout=60)
    assert run.rc != 0 and len(run.error_lines()) == 1, run.explain()
    assert not (out / "index.parquet").exists() and "CANARY" not in run.stdout + run.stderr, run.explain()
    assert_no_traceback(run)
    assert tree(lab.base, skip=(lab.runs,)) == before


def test_filter_refuses_a_symlinked_duplicates_file(lab: Lab, tmp_path: Path) -> None:
    """`vidprep filter OUT --drop-duplicates` reads OUT/duplicates.jsonl only as a regular file, never through a
    symlink to a file outside OUT (its marker never shows up)."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(lab.base / "split", out)
    record = {"video_id": "CANARY-MARKER", "clip_index": 0, "aug_index": 0, "kept": False}  # valid: read, it works
    (tmp_path / "outside.jsonl").write_text(json.dumps(record) + "\n")
    (out / "duplicates.jsonl").symlink_to(tmp_path / "outside.jsonl")
    run = vidprep("filter", out, "-o", tmp_path / "filtered", "--drop-duplicates", cwd=tmp_path, timeout=60)
    assert run.rc != 0 and len(run.error_lines()) == 1, run.explain()
    assert "(a symlink); refused" in run.error_lines()[0], run.explain()
    assert "CANARY" not in run.stdout + run.stderr and not list((tmp_path / "filtered").glob("shard-*"))
    assert_no_traceback(run)


# ---------------------------------------------------------------------------------------------------- stages


def _compare_file_outputs(ref: Path, out: Path) -> None:
    """index.jsonl rows and file bytes of the good video equal a run without the bad inputs."""
    rows = [json.loads(ln) for ln in (out / "index.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(ln) for ln in (ref / "index.jsonl").read_text().splitlines()]
    assert rows == ref_rows and rows
    for row in rows:
        for rel in row["files"]:
            assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel
    listed = {rel for row in rows for rel in row["files"]}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.suffix in (".jpg", ".mp4")}
    assert written == listed


def _compare_shards(ref: Path, out: Path) -> None:
    got, want = read_videos(out), read_videos(ref)
    assert list(got) == list(want) == ["a.mp4"]
    for key in ("rgb", "pts", "index", "features"):
        a, b = got["a.mp4"][key], want["a.mp4"][key]
        assert (a is None and b is None) or np.array_equal(a, b), key
    assert all(np.array_equal(got["a.mp4"]["clips"][k], want["a.mp4"]["clips"][k]) for k in want["a.mp4"]["clips"])


def _reference(lab: Lab, fmt: str) -> Path:
    """`enhance` of the good shard alone (made once per format)."""
    ref = lab.runs / f"enh-ref-{fmt}"
    if not ref.exists():
        run = vidprep("enhance", lab.good, "-o", ref, "--format", fmt, *SERIAL, cwd=lab.base)
        assert run.rc == 0, run.explain()
    return ref


@pytest.mark.parametrize("fmt", ["jpg", "mp4", "h5"])
def test_enhance_good_shard_plus_every_crafted_one(lab: Lab, fmt: str) -> None:
    ref, out = _reference(lab, fmt), lab.runs / f"enh-{fmt}"
    before = tree(lab.base, skip=(lab.runs,))
    run = vidprep("enhance", lab.good, *[c.path for c in lab.crafted.values()], "-o", out, "--format", fmt,
                  *SERIAL, cwd=lab.base, timeout=180)
    assert run.rc == 3, run.explain()
    _outputs_clean(lab, run, out, before)
    _one_record_per_bad_input(out, lab.crafted)
    if fmt == "h5":
        _compare_shards(ref, out)
    else:
        _compare_file_outputs(ref, out)


def test_features_good_shard_plus_every_crafted_one(lab: Lab) -> None:
    pytest.importorskip("torchvision")
    args = ["--model", "resnet18", "--weights", "none", "--batch-size", "4", *SERIAL]
    ref, out = lab.runs / "feat-ref", lab.runs / "feat"
    assert vidprep("features", lab.good, "-o", ref, *args, cwd=lab.base, timeout=300).rc == 0
    before = tree(lab.base, skip=(lab.runs,))
    run = vidprep("features", lab.good, *[c.path for c in lab.crafted.values()], "-o", out, *args, cwd=lab.base,
                  timeout=300)
    assert run.rc == 3, run.explain()
    _outputs_clean(lab, run, out, before)
    _one_record_per_bad_input(out, lab.crafted)
    _compare_shards(ref, out)


def test_stray_h5_files_in_a_video_folder_are_one_error_record_each(lab: Lab) -> None:
    folder = lab.base / "mixed"
    folder.mkdir()
    os.link(lab.vids / "a.mp4", folder / "a.mp4")
    stray = {"model": Crafted(not_a_shard(folder / "model.h5"), ("not a vidprep shard",)),
             "truncated": Crafted(truncated(lab.good, folder / "half.h5"), ("hdf5", "truncated"))}
    before = tree(lab.base, skip=(lab.runs,))
    out = lab.runs / "mixed"
    run = vidprep("split", folder, "-o", out, *SPLIT, cwd=lab.base)
    assert run.rc == 3, run.explain()
    _outputs_clean(lab, run, out, before)
    _one_record_per_bad_input(out, stray)
    assert all(r["stage"] == "input" for r in read_errors(out))
    assert list(read_videos(out)) == ["a.mp4"]
    with h5py.File(lab.good, "r") as f:
        assert np.array_equal(read_videos(out)["a.mp4"]["rgb"], f["frames/0/rgb"][:])


# ---------------------------------------------------------------------------------------------------- ids and paths


@pytest.mark.parametrize("video_id,ok", [
    ("a.mp4", True), ("class a/vid 1.mp4", True), ("ünïcødé 视频.mp4", True), ("latin1-\\xe9t\\xe9.mp4", True),
    ("$(touch x);`y`.mp4", True), ("-rf.mp4", True), ("a:b.mp4", True),
    ("../x", False), ("a/../../x", False), ("/etc/passwd", False), ("a//b", False), ("./a", False), ("a/", False),
    ("", False), ("a\x00b", False), ("a\nb", False), ("a\x1b[2Jb", False), ("a\x85b", False), ("..\\x", False),
    ("\\x", False), ("x" * 3000, False),
])
def test_video_id_rule(video_id: str, ok: bool) -> None:
    from vidprep.shards.safepath import id_problem

    assert (id_problem(video_id) is None) == ok


def test_output_path_refuses_a_symlink_in_out_that_leaves_it(tmp_path: Path) -> None:
    from vidprep.errors import InputError
    from vidprep.shards.safepath import output_path

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    assert output_path(out, "a/b.mp4") == out / "a/b.mp4"
    with pytest.raises(InputError, match="outside the output directory"):
        output_path(out, "link/x.mp4")


@pytest.mark.parametrize("video_id", ["../../x", "/tmp/x", "a/../../x", "a\nb"])
def test_file_sink_refuses_an_unsafe_id_before_writing(tmp_path: Path, video_id: str) -> None:
    from vidprep.errors import InputError
    from vidprep.engine.sinks.files import FileSink

    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    cfg = SimpleNamespace(format="jpg", jpeg_quality=90)
    sink = FileSink(SimpleNamespace(out_dir=str(out), config=SimpleNamespace(output=cfg)), out / ".parts" / "p.jsonl")
    with pytest.raises(InputError, match="unsafe video id"):
        sink.add_video(video_id, "src.mp4", {})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "out"]


def test_control_characters_in_file_names_are_escaped_in_ids(tmp_path: Path) -> None:
    from vidprep.inputs import expand

    (tmp_path / "new\nline.mp4").write_bytes(b"x")
    (tmp_path / "tab\there.mp4").write_bytes(b"x")
    ids = [v.video_id for v in expand([str(tmp_path)]).videos]
    assert ids == ["new\\x0aline.mp4", "tab\\x09here.mp4"]


# ---------------------------------------------------------------------------------------------------- worker guard


def test_any_exception_of_one_video_is_its_error_record(lab: Lab, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from vidprep.engine.split_steps import PlanClips

    original = PlanClips.apply

    def flaky(self, video, rows):  # a bug-like error (not OSError/ValueError) in one video only
        if video.video_id == "b.mp4":
            raise IndexError("index 7 is out of bounds for axis 0 with size 2")
        return original(self, video, rows)

    monkeypatch.setattr(PlanClips, "apply", flaky)
    out = tmp_path / "out"
    res = cli("split", lab.vids, "-o", out, *SPLIT)
    assert res.exit_code == 3, res.stderr
    (rec,) = read_errors(out)
    assert rec["video_id"] == "b.mp4" and rec["error_type"] == "IndexError" and "out of bounds" in rec["message"]
    assert list(read_videos(out)) == ["a.mp4"]


def test_an_input_shard_failing_mid_iteration_is_one_record_naming_it(lab: Lab, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import vidprep.shards.source as source

    def broken(path):
        raise TypeError("Accessing a group is done with bytes or str, not <class 'tuple'>")
        yield  # a generator, like the real one

    monkeypatch.setattr(source, "iter_videos", broken)
    out = tmp_path / "out"
    res = cli("enhance", lab.good, "-o", out, *SERIAL)
    assert res.exit_code == 3, res.stderr
    (rec,) = read_errors(out)
    assert rec["path"] == str(lab.good) and rec["video_id"] is None and rec["stage"] == "read"
    assert rec["error_type"] == "TypeError" and str(lab.good) in rec["message"]


def test_unit_failures_keep_interrupts_and_name_shard_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import vidprep.engine.worker as worker
    from vidprep.inputs import WorkUnit

    unit = WorkUnit(0, ("/in/shard-00000.h5",))
    for exc in (KeyboardInterrupt, SystemExit):
        monkeypatch.setattr(worker, "process_unit", lambda *a, exc=exc: (_ for _ in ()).throw(exc()))
        with pytest.raises(exc):
            worker.process_unit_safe(unit, None, "/out/shard-00000.h5")
    monkeypatch.setattr(worker, "process_unit", lambda *a: {}["missing"])
    result = worker.process_unit_safe(unit, None, "/out/shard-00000.h5")
    (video,) = result.videos
    assert video.path == "/in/shard-00000.h5" and video.video_id is None and video.error_type == "KeyError"


def test_stats_from_file_with_external_storage_is_refused_unread(lab: Lab, tmp_path: Path) -> None:
    from vidprep.errors import ShardError
    from vidprep.shards.normalization import FORMAT, load_normalization

    path = tmp_path / "normalization.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = FORMAT, 1
        f.create_dataset("mean", shape=(64,), dtype=np.uint8, external=[(str(lab.outside / "canary.bin"), 0, 64)])
    with pytest.raises(ShardError, match="external storage"):
        load_normalization(path)


def test_stats_from_file_claiming_too_many_values_is_refused_unread(tmp_path: Path) -> None:
    """gzip lets a small file claim ~1000x its size (the trust check's bound): a normalization file claiming more
    values than any real one holds is refused before an array is read."""
    from vidprep.errors import ShardError
    from vidprep.shards import trust
    from vidprep.shards.normalization import FORMAT, MAX_VALUES, load_normalization

    path = tmp_path / "normalization.h5"
    n = MAX_VALUES + 2**20
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = FORMAT, 1
        ds = f.create_dataset("mean", shape=(n,), dtype=np.uint8, chunks=(2**22,), compression="gzip")
        for a in range(0, n, 2**22):
            ds[a:a + 2**22] = 0
    assert path.stat().st_size < n // 500 and trust.check_file(path) == []  # small, and passes the trust walk
    with pytest.raises(ShardError, match="claims"):
        load_normalization(path)


def test_shard_paths_streamed_on_stdin_get_the_same_checks(lab: Lab) -> None:
    fifo = lab.base / "stdin" / "blocking.h5"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # opening it for reading would block forever
    bad = {"fifo": Crafted(fifo, ("regular file",)),
           **{k: lab.crafted[k] for k in ("not_a_shard", "external_storage", "id_traversal")}}
    out = lab.runs / "stdin"
    before = tree(lab.base, skip=(lab.runs,))
    lines = "".join(f"{p}\n" for p in [lab.good, *(c.path for c in bad.values())])
    run = vidprep("enhance", "-", "-o", out, "--format", "jpg", *SERIAL, cwd=lab.base, stdin=lines.encode(),
                  timeout=120)
    assert run.rc == 3, run.explain()
    _outputs_clean(lab, run, out, before)
    _one_record_per_bad_input(out, bad)
    _compare_file_outputs(_reference(lab, "jpg"), out)


@pytest.mark.parametrize("codec,compression", [("raw", "gzip"), ("raw", None), ("jpeg", None)])
def test_writer_output_passes_the_trust_rules(tmp_path: Path, codec: str, compression: str | None) -> None:
    """No false alarm: gzip'd all-zero frames compress ~1000:1, still within what the file stores x1032."""
    from vidprep.shards import ShardSet, ShardWriter, validate

    path = tmp_path / "shard-00000.h5"
    with ShardWriter(path, kind="frames", config={}, frame_codec=codec, frame_compression=compression) as w:
        for name in ("zeros.mp4", "sub/dir/noise.mp4"):
            v = w.add_video(name, name, {})
            rgb = np.zeros((20, 64, 96, 3), np.uint8) if name == "zeros.mp4" else \
                np.random.default_rng(0).integers(0, 255, (20, 64, 96, 3), dtype=np.uint8)
            w.append_frames(v, rgb, np.arange(20) / 10, np.arange(20))
            w.set_video_array(v, "scene_score", np.zeros(20, np.float32))
            w.add_clip(v, frame_start=0, frame_stop=20, start_s=0.0, end_s=2.0, clip_index=0)
        w.commit()
    assert validate(path) == []
    assert len(ShardSet(path)) == 2


@pytest.mark.parametrize("limit,value,needle", [("MAX_FRAME_PIXELS", 32 * 32, "pixels"),
                                                ("MAX_VIDEOS", 0, "videos"), ("MAX_ROWS", 1, "clips")])
def test_counts_and_frame_sizes_are_bounded_before_reading(lab: Lab, monkeypatch: pytest.MonkeyPatch, limit: str,
                                                           value: int, needle: str) -> None:
    from vidprep.shards import format as fmt

    monkeypatch.setattr(fmt, limit, value)  # the good shard: 1 video, 2 clips of 2 frames, 32x43 pixels
    problems = fmt.validate(lab.good)
    assert len(problems) == 1 and needle in problems[0] and "at most" in problems[0], problems
