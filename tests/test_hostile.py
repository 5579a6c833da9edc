"""Hostile inputs (issue 8): the real CLI, run as subprocesses on the corpus of tests/hostile_corpus.py.

For every input each command either processes it correctly or rejects it with one line (in OUT/errors.jsonl and on
stderr, naming the file and the cause); the batch goes on; the exit code is 3 (0 when nothing failed, 2 for usage
errors); nothing already written is lost or corrupted; nothing hangs (every run has a timeout, a hang fails the
test and kills the process group); memory stays bounded; and nothing outside the corpus is ever read or connected
to (a canary video the playlists point at, a loopback listener they name).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from hostile_corpus import (
    CANARY_RGB, SECRET_RGB, SPLIT_FPS, SPLIT_SIZE, TEST_MAX_PIXELS, Corpus, LoopbackListener, build_corpus,
    corner_of, display_path,
)

_SCRIPT = Path(sys.executable).with_name("vidprep")
# HOSTILE_VIDPREP="cmd args" runs the suite against another build (e.g. "python -m vidprep" with PYTHONPATH set)
VIDPREP = (os.environ["HOSTILE_VIDPREP"].split() if os.environ.get("HOSTILE_VIDPREP")
           else [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "vidprep"])
SPLIT = ["--fps", f"{SPLIT_FPS:g}", "--size", str(SPLIT_SIZE), "--videos-per-shard", "4", "--timeout", "20",
         "--max-pixels", str(TEST_MAX_PIXELS)]
SERIAL = ["--executor", "serial"]  # small side runs: no worker pool to start (2 busy cores)
MAX_RSS_KB = 1_500_000  # ffprobe reading the 8192x8192 header alone takes ~200 MB; decoding it would take GBs
# Run a command, then report the peak RSS of its whole process tree (wait4 folds in reaped descendants).
_RSS_WRAPPER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(os.environ['HOSTILE_RSS_FILE'], 'w').write(str(usage.ru_maxrss))\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "sys.exit(code if code >= 0 else 128 - code)\n"
)


@dataclass
class Run:
    """What one vidprep command did."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kb: int
    raw_stdout: bytes = b""

    def explain(self) -> str:
        return f"$ {' '.join(map(display_path, self.argv))}\nexit {self.rc}\n--- stderr:\n{self.stderr[-4000:]}"

    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def vidprep(*args: object, cwd: Path, stdin: bytes | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> Run:
    """Run the real CLI (``env`` added to the environment); a run past ``timeout`` is killed with its whole process
    group and fails the test."""
    argv = [*VIDPREP, *(os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in args)]
    fd, rss_file = tempfile.mkstemp(prefix="vidprep-hostile-rss-")
    os.close(fd)
    env = {**os.environ, "HOSTILE_RSS_FILE": rss_file, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           **(env or {})}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _RSS_WRAPPER, *argv], cwd=cwd, env=env, start_new_session=True,
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        Path(rss_file).unlink()
        shown = " ".join(map(display_path, argv))
        pytest.fail(f"vidprep hung for more than {timeout} s: {shown}\n{err.decode(errors='replace')[-3000:]}")
    rss_text = Path(rss_file).read_text() or "0"
    Path(rss_file).unlink()
    return Run(argv, proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
               time.monotonic() - started, int(rss_text), out)


def write_list(path: Path, entries: list[str | bytes], sep: bytes = b"\n") -> Path:
    """An input list file; entries may be str (surrogate-escaped) or raw bytes."""
    path.write_bytes(sep.join(e if isinstance(e, bytes) else os.fsencode(e) for e in entries) + sep)
    return path


def read_shards(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{video id: {"rgb", "pts", "index"}}`` over every shard in ``out`` (duplicate ids fail)."""
    videos: dict[str, dict[str, np.ndarray]] = {}
    for shard in sorted(out.glob("shard-*.h5")):
        with h5py.File(shard, "r") as f:
            for v, raw in enumerate(f["videos/id"][:]):
                vid = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                assert vid not in videos, f"{vid!r} stored twice ({shard.name})"
                group = f[f"frames/{v}"]
                videos[vid] = {"rgb": group["rgb"][:], "pts": group["pts_s"][:], "index": group["index"][:]}
    return videos


def read_errors(out: Path) -> list[dict]:
    path = out / "errors.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def matches(text: str, needles: tuple[str, ...]) -> bool:
    return not needles or any(n.lower() in text.lower() for n in needles)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def near_colour(rgb: np.ndarray, colour: tuple[int, int, int], tol: float = 40) -> bool:
    """True when an (H, W, 3) frame is (almost) one solid colour."""
    return bool(np.abs(rgb.reshape(-1, 3).astype(np.int16) - np.array(colour)).mean() < tol)


def assert_no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr, f"a traceback instead of one-line errors:\n{run.explain()}"


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def listener() -> LoopbackListener:
    lst = LoopbackListener()
    yield lst
    lst.close()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, listener: LoopbackListener) -> Corpus:
    """The hostile corpus, built once; the canary's atime is set back so any later read would show."""
    c = build_corpus(tmp_path_factory.mktemp("hostile"), port=listener.port)
    for path in (c.canary, c.secret):
        st = path.stat()
        os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))  # relatime updates atime when atime < mtime
    return c


@pytest.fixture(scope="session")
def atime_tracked(corpus: Corpus) -> bool:
    """Whether reading a file updates its atime on this mount (noatime mounts cannot show reads)."""
    probe = corpus.base / "atime-probe"
    probe.write_bytes(b"x")
    st = probe.stat()
    os.utime(probe, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
    before = probe.stat().st_atime_ns
    probe.read_bytes()
    return probe.stat().st_atime_ns != before


@pytest.fixture(scope="session")
def canary_atimes(corpus: Corpus) -> dict[Path, int]:
    return {p: p.stat().st_atime_ns for p in (corpus.canary, corpus.secret)}


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory, canary_atimes: dict[Path, int]) -> Path:
    """Working directory of every run (a `$(touch ...)` name that ran would leave its files here); asking for it
    records the canaries' atimes first, before any run."""
    return tmp_path_factory.mktemp("cwd")


@dataclass
class SplitRun:
    run: Run
    out: Path
    errors: list[dict]
    videos: dict[str, dict[str, np.ndarray]]
    shard_digests: dict[str, str]


@pytest.fixture(scope="session")
def split_run(corpus: Corpus, work: Path) -> SplitRun:
    """`vidprep split CORPUS` with the default executor: the run most tests below look at."""
    out = work / "split-out"
    run = vidprep("split", corpus.root, "-o", out, *SPLIT, cwd=work, timeout=240)
    digests = {p.name: digest(p) for p in sorted(out.glob("shard-*.h5"))}
    return SplitRun(run, out, read_errors(out), read_shards(out) if digests else {}, digests)


def test_corpus_cases_this_machine_cannot_build(corpus: Corpus) -> None:
    """Reports (as a skip reason, shown by -ra) every case ffmpeg or the OS could not make here."""
    if corpus.skipped:
        pytest.skip("not built here: " + "; ".join(f"{k}: {v}" for k, v in sorted(corpus.skipped.items())))


# ---------------------------------------------------------------------------------------------------- probe


def test_probe_corpus_one_line_per_bad_file_one_row_per_good(corpus: Corpus, work: Path) -> None:
    run = vidprep("probe", corpus.root, "--jsonl", cwd=work, timeout=180)
    assert run.rc == 3, run.explain()
    assert_no_traceback(run)
    errors = [ln for ln in run.error_lines() if ln.startswith("vidprep: error: ")]
    for name, case in corpus.bad("probe").items():
        lines = [ln for ln in errors if ln.startswith(f"vidprep: error: {case.shown}: ")]
        assert len(lines) == 1, f"{name}: expected one error line naming {case.shown!r}, got {lines}\n{run.explain()}"
        assert matches(lines[0], case.expect.error), f"{name}: cause should say one of {case.expect.error}: {lines[0]}"
    try:
        run.raw_stdout.decode("utf-8")
    except UnicodeDecodeError as err:
        pytest.fail(f"--jsonl output is not valid UTF-8 (raw bytes of a non-UTF-8 name?): {err}")
    rows = [json.loads(ln) for ln in run.stdout.splitlines() if ln.strip()]
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == len(rows), "a video was probed twice"
    good = corpus.good("probe")
    assert sorted(by_id) == sorted(c.video_id for c in good.values()), run.explain()
    for name, case in good.items():
        row = by_id[case.video_id]
        assert not any(f"{case.shown}: " in ln for ln in errors), f"{name} is good but has an error line"
        if case.expect.size:
            assert (row["width"], row["height"]) == case.expect.size, f"{name}: displayed size {row}"
    assert len(errors) == len(corpus.bad("probe")), "extra error lines:\n" + "\n".join(errors)


# ---------------------------------------------------------------------------------------------------- split


def test_split_exit_code_and_one_error_record_per_bad_file(corpus: Corpus, split_run: SplitRun) -> None:
    run = split_run.run
    assert run.rc == 3, run.explain()
    assert_no_traceback(run)
    shards = sorted(str(split_run.out / name) for name in split_run.shard_digests)
    assert sorted(run.stdout.split()) == shards, "stdout must list exactly the completed shards"
    for rec in split_run.errors:
        assert {"path", "stage", "error_type", "message"} <= set(rec), rec
        assert "\n" not in rec["message"] and rec["message"].strip(), rec
    by_path: dict[str, list[dict]] = {}
    for rec in split_run.errors:
        by_path.setdefault(rec["path"], []).append(rec)
    bad = corpus.bad("split")
    assert sorted(by_path) == sorted(c.shown for c in bad.values()), "errors.jsonl must name exactly the bad files"
    for name, case in bad.items():
        recs = by_path[case.shown]
        assert len(recs) == 1, f"{name}: {len(recs)} error records"
        assert matches(recs[0]["message"], case.expect.error), f"{name}: {recs[0]}"
        assert any(case.shown in ln for ln in run.error_lines()), f"{name}: not reported on stderr\n{run.explain()}"


def test_split_stores_every_good_file_correctly(corpus: Corpus, split_run: SplitRun) -> None:
    assert split_run.run.rc in (0, 3), split_run.run.explain()
    good = corpus.good("split")
    assert sorted(split_run.videos) == sorted(c.video_id for c in good.values()), split_run.run.explain()
    for name, case in good.items():
        video, exp = split_run.videos[case.video_id], case.expect
        n, h, w = video["rgb"].shape[:3]
        assert n > 0 and len(video["pts"]) == n == len(video["index"]), name
        if exp.sampled is not None:
            assert n == exp.sampled, f"{name}: {n} frames at {SPLIT_FPS} fps, expected {exp.sampled}"
        if exp.claims_frames is not None:
            assert int(video["index"].max()) < exp.claims_frames - 1, f"{name}: frames past the truncation point"
        assert np.all(np.diff(video["pts"]) > 0) and video["pts"][0] == 0, f"{name}: pts {video['pts']}"
        assert min(h, w) == SPLIT_SIZE, f"{name}: short side {min(h, w)} != {SPLIT_SIZE}"
        if exp.size and exp.size[0] != exp.size[1]:
            assert (w > h) == (exp.size[0] > exp.size[1]), f"{name}: stored {w}x{h}, displayed {exp.size}"
        if exp.marker:
            assert corner_of(video["rgb"][0]) == [exp.marker], f"{name}: marker not at {exp.marker}"


def test_split_gap_and_vfr_keep_real_timestamps(corpus: Corpus, split_run: SplitRun) -> None:
    gap = split_run.videos[corpus.cases["gap_1h_mkv"].video_id]
    assert gap["pts"].tolist() == pytest.approx([0.0, 3600.5], abs=1e-3), "the one-hour hole must stay a hole"
    vfr = split_run.videos[corpus.cases["vfr_mkv"].video_id]
    assert vfr["pts"].tolist() == pytest.approx([0.0, 0.75, 1.08, 1.92, 2.43], abs=1e-3)


def test_split_hostile_names_are_stored_and_decoded_like_the_original(corpus: Corpus, split_run: SplitRun) -> None:
    original = split_run.videos[corpus.cases["good_h264"].video_id]["rgb"]
    names = {k: c for k, c in corpus.cases.items() if k.startswith("name_") or k in ("dir_named_mp4_nested",
                                                                                      "loopdir_inner")}
    for name, case in names.items():
        assert case.video_id in split_run.videos, f"{name}: id {case.video_id!r} missing"
        assert np.array_equal(split_run.videos[case.video_id]["rgb"], original), f"{name}: frames differ"
    assert "latin1-\\xe9t\\xe9.mp4" in split_run.videos, "non-UTF-8 ids are stored with backslash escapes"
    assert not any(v.startswith(("loopdir/up/", "outside_link/")) for v in split_run.videos), "a link was walked"


def test_split_good_files_match_a_clean_batch(corpus: Corpus, split_run: SplitRun, work: Path) -> None:
    """Bad neighbours in a work unit must not change a good file's frames: compare with a run without them.

    Only files whose shard (= work unit of 4) lost a video to an error are at risk; they are re-split alone."""
    at_risk = {"good_h264.mp4"}
    for shard in split_run.out.glob("shard-*.h5"):
        with h5py.File(shard, "r") as f:
            ids = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in f["videos/id"][:]]
        at_risk |= set(ids) if len(ids) < 4 else set()
    clean = [c for c in corpus.good("split").values() if c.video_id in at_risk]
    out = work / "clean-out"
    run = vidprep("split", f"@{write_list(work / 'clean.txt', [c.path for c in clean])}", "--root", corpus.root,
                  "-o", out, *SPLIT, *SERIAL, cwd=work, timeout=240)
    assert run.rc == 0, run.explain()
    alone = read_shards(out)
    for case in clean:
        mine, ref = split_run.videos[case.video_id], alone[case.video_id]
        assert np.array_equal(mine["rgb"], ref["rgb"]), f"{case.video_id}: frames differ from the clean batch"
        assert np.array_equal(mine["pts"], ref["pts"]) and np.array_equal(mine["index"], ref["index"])


def test_split_memory_stays_bounded(split_run: SplitRun) -> None:
    assert 0 < split_run.run.max_rss_kb < MAX_RSS_KB, f"peak RSS {split_run.run.max_rss_kb} kB"


def test_rerun_resumes_without_duplicates(corpus: Corpus, split_run: SplitRun, work: Path) -> None:
    before = read_errors(split_run.out)
    run = vidprep("split", corpus.root, "-o", split_run.out, *SPLIT, cwd=work, timeout=240)
    assert run.rc == 3, run.explain()
    assert_no_traceback(run)
    after = read_errors(split_run.out)
    assert sorted(r["path"] for r in after) == sorted(r["path"] for r in before), "errors.jsonl changed on resume"
    assert len({r["path"] for r in after}) == len(after), "duplicate error records after resume"
    assert {p.name: digest(p) for p in split_run.out.glob("shard-*.h5")} == split_run.shard_digests
    assert not [p for p in split_run.out.iterdir() if ".tmp-" in p.name], "temp files left behind"


# ---------------------------------------------------------------------------------------------------- lists


def _list_entries(corpus: Corpus) -> tuple[list[str], list[str]]:
    """(entries, those that must be rejected): outside paths, '..', protocols, specials, blanks, duplicates."""
    root, canary, good = str(corpus.root), str(corpus.canary), corpus.cases["good_h264"].path
    rejected = [canary, f"{root}/../outside/canary.mp4", f"http://127.0.0.1:{corpus.port}/x.ts",
                f"concat:{canary}|{canary}", f"subfile,,start,0,end,0,,:{canary}", f"file:{canary}",
                corpus.cases["fifo"].path, corpus.cases["dev_zero"].path, corpus.cases["escape"].path]
    entries = [good, "", "   ", f"{root}/loopdir/../good_h264.mp4", good, corpus.cases["name_dash"].path,
               corpus.cases["name_latin1"].path, *rejected, good]
    return entries, rejected


def _check_list_run(run: Run, rejected: list[str]) -> None:
    assert run.rc == 3, run.explain()
    assert_no_traceback(run)
    for entry in rejected:
        assert any(display_path(os.path.normpath(entry) if entry.startswith("/") else entry) in ln
                   for ln in run.error_lines()), f"{entry!r} not rejected on stderr\n{run.explain()}"


def test_list_file_edge_cases(corpus: Corpus, work: Path) -> None:
    entries, rejected = _list_entries(corpus)
    out = work / "list-out"
    run = vidprep("split", f"@{write_list(work / 'list.txt', entries)}", "--root", corpus.root, "-o", out,
                  *SPLIT, *SERIAL, cwd=work, timeout=120)
    _check_list_run(run, rejected)
    assert sorted(read_shards(out)) == ["-rf.mp4", "good_h264.mp4", "latin1-\\xe9t\\xe9.mp4"]
    paths = [r["path"] for r in read_errors(out)]
    assert len(paths) == len(set(paths)), "duplicate error records"
    assert len(paths) >= len(rejected) - 1, "every rejected entry needs a record (the two canary spellings may merge)"


def test_stdin_and_nul_separated_lists(corpus: Corpus, work: Path) -> None:
    entries, rejected = _list_entries(corpus)
    run = vidprep("probe", "-", "--root", corpus.root, "--jsonl", cwd=work, timeout=60,
                  stdin=b"\n".join(os.fsencode(e) for e in entries))
    _check_list_run(run, rejected)
    ids = sorted(json.loads(ln)["id"] for ln in run.stdout.splitlines() if ln.strip())
    assert ids == ["-rf.mp4", "good_h264.mp4", "latin1-\\xe9t\\xe9.mp4"]
    nul = vidprep("probe", "-", "-0", "--root", corpus.root, "--jsonl", cwd=work, timeout=60,
                  stdin=b"\0".join(os.fsencode(e) for e in entries if e != "   ") + b"\0")  # "" -> an empty entry
    _check_list_run(nul, rejected)
    assert sorted(json.loads(ln)["id"] for ln in nul.stdout.splitlines() if ln.strip()) == ids


def test_leading_dash_names_as_arguments(corpus: Corpus) -> None:
    """File names that look like options work after `--`, relative to the current directory."""
    run = vidprep("probe", "--jsonl", "--", "-rf.mp4", "--help.mp4", cwd=corpus.root, timeout=60)
    assert run.rc == 0, run.explain()
    assert sorted(json.loads(ln)["id"] for ln in run.stdout.splitlines() if ln.strip()) == ["--help.mp4", "-rf.mp4"]


# ---------------------------------------------------------------------------------------------------- other stages


@pytest.mark.parametrize("stage,args", [("enhance", ["--contrast", "clahe", "--white-balance", "grayworld"]),
                                        ("augment", ["--hflip", "0.5", "--rotate", "10", "--copies", "2"])])
def test_enhance_and_augment_on_hostile_subset(corpus: Corpus, work: Path, stage: str, args: list[str]) -> None:
    names = ["good_h264", "tiny_1x1", "odd_17x11", "rotate_90", "h264_10bit", "empty", "fifo", "playlist_hls_mp4",
             "huge_8192x8192"]
    cases = {k: corpus.cases[k] for k in names if k in corpus.cases}
    out = work / f"{stage}-out"
    run = vidprep(stage, f"@{write_list(work / f'{stage}.txt', [c.path for c in cases.values()])}", "--root",
                  corpus.root, "-o", out, *SPLIT, *SERIAL, *args, cwd=work, timeout=180)
    assert run.rc == 3, run.explain()
    assert_no_traceback(run)
    bad = {c.shown for c in cases.values() if c.expect.outcome == "error"}
    assert sorted({r["path"] for r in read_errors(out)}) == sorted(bad)
    stored = read_shards(out)
    for case in (c for c in cases.values() if c.expect.outcome == "ok"):
        assert stored[case.video_id]["rgb"].shape[0] > 0, case.video_id


# ---------------------------------------------------------------------------------------------------- labels


def test_labels_with_unknown_ids_warn_then_other_config_needs_overwrite(corpus: Corpus, work: Path) -> None:
    csv = work / "labels.csv"
    csv.write_text("video_id,label\ngood_h264.mp4,cat\nno-such-video.mp4,dog\n-rf.mp4,dog\n")
    out = work / "labels-out"
    inputs = [corpus.cases["good_h264"].path, corpus.cases["name_dash"].path, "--root", corpus.root]
    run = vidprep("split", *inputs, "-o", out, *SPLIT, *SERIAL, "--labels", csv, cwd=work)
    assert run.rc == 0, run.explain()
    assert "no-such-video.mp4" in run.stderr, "unknown ids deserve a warning"
    with h5py.File(next(out.glob("shard-*.h5")), "r") as f:
        ids = [v.decode() for v in f["videos/id"][:]]
        labelled = {ids[v]: int(lab) for v, lab in zip(f["clips/video_index"][:], f["clips/label"][:])}
    assert labelled == {"-rf.mp4": 1, "good_h264.mp4": 0}
    # the same OUT, another config: refused before anything is touched, unless --overwrite
    before = {p.name: digest(p) for p in out.glob("shard-*.h5")}
    other = vidprep("split", *inputs, "-o", out, "--fps", "1", "--size", "32", *SERIAL, cwd=work)
    assert other.rc == 2 and "overwrite" in other.stderr, other.explain()
    assert {p.name: digest(p) for p in out.glob("shard-*.h5")} == before, "a refused run changed the output"
    forced = vidprep("split", *inputs, "-o", out, "--fps", "1", "--size", "32", "--overwrite", *SERIAL, cwd=work)
    assert forced.rc == 0, forced.explain()
    assert [v["rgb"].shape[0] for v in read_shards(out).values()] == [1, 1]


@pytest.mark.parametrize("content,needle", [
    (b"video_id,label\ngood_h264.mp4,cat\n-rf.mp4,dog,extra\n", "line 3"),
    (b"good_h264.mp4,cat\n\xff\xfe,dog\n", "labels"),
])
def test_malformed_labels_are_usage_errors(corpus: Corpus, work: Path, content: bytes, needle: str) -> None:
    csv = work / "bad-labels.csv"
    csv.write_bytes(content)
    out = work / "bad-labels-out"
    run = vidprep("split", corpus.cases["good_h264"].path, "-o", out, *SPLIT, *SERIAL, "--labels", csv, cwd=work)
    assert run.rc == 2, run.explain()
    lines = [ln for ln in run.error_lines() if "error" in ln.lower()]
    assert len(lines) == 1 and needle in lines[0] and str(csv) in lines[0], run.explain()
    assert not list(out.glob("shard-*.h5")) if out.exists() else True


# ---------------------------------------------------------------------------------------------------- checkpoints


class _Evil:
    """Unpickling this creates ``marker`` (builtins.open), i.e. runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def torch_zip(path: Path, obj: object) -> Path:
    """A torch.save-format archive whose data.pkl holds ``obj`` (no tensors; made without importing torch)."""
    import pickle

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize("kind", ["code", "truncated"])
def test_checkpoints_that_run_code_or_are_truncated_are_refused(corpus: Corpus, work: Path, kind: str) -> None:
    marker = work / f"PWNED-by-checkpoint-{kind}"
    ckpt = torch_zip(work / f"{kind}.pt", {"state_dict": _Evil(str(marker))} if kind == "code" else {"fc.bias": 0})
    if kind == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    out = work / f"ckpt-{kind}-out"
    run = vidprep("features", corpus.cases["good_h264"].path, "-o", out, "--model", "resnet18", "--weights", ckpt,
                  "--fps", "1", "--size", "32", *SERIAL, cwd=work, timeout=180)
    assert not marker.exists(), "loading the checkpoint ran code"
    assert_no_traceback(run)
    assert run.rc == 2, f"an unusable checkpoint is a usage error, found before decoding\n{run.explain()}"
    assert str(ckpt) in run.stderr and len([ln for ln in run.error_lines() if "error" in ln.lower()]) == 1


# ---------------------------------------------------------------------------------------------------- output side


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    except OSError:
        return False
    return proc.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


# Each output-side fault runs twice: "filesystem" for real (a tmpfs mount when this container may mount, else
# permission bits when not root; skipped when neither applies) and "injected" through vidprep.shards.testhooks (EROFS or
# ENOSPC raised where the OS would raise it), so an unprivileged CI container, or one running as root, tests it too.
FAULT_MODES = ["filesystem", "injected"]


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_read_only_output_is_a_usage_error_before_decoding(corpus: Corpus, work: Path, mode: str) -> None:
    ro = work / f"ro-{mode}"
    env, mounted = {}, False
    if mode == "injected":
        ro.mkdir()
        env = {"VIDPREP_TEST_READ_ONLY": str(ro)}
    elif os.geteuid() == 0:
        mounted = _mount_tmpfs(ro, "ro,size=1m")
        if not mounted:
            pytest.skip("running as root (permission bits do not apply) and cannot mount a read-only tmpfs; "
                        "the 'injected' variant covers this")
    else:
        ro.mkdir()
        ro.chmod(0o555)
    try:
        for out in (ro, ro / "sub"):
            run = vidprep("split", corpus.root, "-o", out, *SPLIT, *SERIAL, cwd=work, timeout=60, env=env)
            assert run.rc == 2, run.explain()
            assert len(run.error_lines()) == 1 and str(ro) in run.stderr, f"decoding started?\n{run.explain()}"
            assert "read-only" in run.stderr.lower() or "permission" in run.stderr.lower(), run.explain()
    finally:
        if mounted:
            _umount(ro)
        elif mode == "filesystem":
            ro.chmod(0o755)
    assert not (ro / "sub").exists()


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_full_disk_leaves_no_corrupt_shard_and_reports(corpus: Corpus, work: Path, mode: str) -> None:
    full = work / f"full-{mode}"
    env, mounted = {}, False
    if mode == "injected":
        full.mkdir()
        env = {"VIDPREP_TEST_FAIL_WRITE_AFTER": str(2 << 20)}  # as the 2 MiB tmpfs: shard writes fail after 2 MiB
    else:
        mounted = _mount_tmpfs(full, "size=2m")
        if not mounted:
            pytest.skip("cannot mount a 2 MiB tmpfs here (needs root / CAP_SYS_ADMIN); the 'injected' variant "
                        "covers this")
    try:
        names = ["good_h264", "name_dash", "name_dashdash", "h264_444", "lies_duration_mkv", "vp9_mkv"]
        listing = write_list(work / f"full-{mode}.txt", [corpus.cases[n].path for n in names if n in corpus.cases])
        out = full / "out"
        run = vidprep("split", f"@{listing}", "-o", out, "--size", "128", "--videos-per-shard", "2", *SERIAL,
                      cwd=work, timeout=120, env=env)
        assert run.rc in (1, 3), f"a full disk is a failure, not a crash or success\n{run.explain()}"
        assert "space" in run.stderr.lower(), run.explain()
        assert_no_traceback(run)
        assert read_errors(out), "the videos that could not be written are recorded in errors.jsonl"
        if (out / "manifest.json").exists():
            json.loads((out / "manifest.json").read_text())
        for shard in out.glob("shard-*.h5"):  # whatever has a final name must be complete and readable
            with h5py.File(shard, "r") as f:
                f.visititems(lambda _n, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        assert not [p for p in out.iterdir() if ".tmp-" in p.name], "temp shards left on the full disk"
    finally:
        if mounted:
            _umount(full)


# ---------------------------------------------------------------------------------------------------- nothing leaks


def test_nothing_outside_the_corpus_was_read_or_contacted(corpus: Corpus, split_run: SplitRun, work: Path,
                                                          listener: LoopbackListener, atime_tracked: bool,
                                                          canary_atimes: dict[Path, int]) -> None:
    """Runs last: every run above fed playlists, URLs and outside paths to vidprep."""
    for vid, video in split_run.videos.items():
        for frame in video["rgb"]:
            assert not near_colour(frame, CANARY_RGB), f"{vid}: canary frames leaked in through a playlist"
            assert not near_colour(frame, SECRET_RGB), f"{vid}: the file behind escape.mp4 was decoded"
    assert listener.connections == [], f"something connected to the loopback listener: {listener.connections}"
    if atime_tracked:
        for path, atime in canary_atimes.items():
            assert path.stat().st_atime_ns == atime, f"{path.name} was read (atime changed)"
    leftovers = [p for d in (work, corpus.root, Path.cwd()) for p in d.glob("PWNED*")]
    assert not leftovers, f"a file name was run by a shell: {leftovers}"
