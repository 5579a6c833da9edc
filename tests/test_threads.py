"""The whole machine at every job size: executor choice by job size, threads that follow the running units, the
user's OMP_NUM_THREADS, and weights checked once (driver) without a second hash in the worker."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import time
from pathlib import Path

import pytest

from clihelp import cli, vidprep
from vidprep.executors import default_executor, threads
from vidprep.executors.process import ProcessExecutor


def test_default_executor_by_job_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """One known unit (or one worker, or one CPU) runs in-process; several, or an unknown stream, use a pool."""
    monkeypatch.setattr("vidprep.executors.available_cpus", lambda: 2)
    assert default_executor(tasks=1) == "serial"
    assert default_executor(tasks=0) == "serial"
    assert default_executor(tasks=2) == "process"
    assert default_executor(tasks=None) == "process"
    assert default_executor(tasks=5, workers=1) == "serial"
    monkeypatch.setattr("vidprep.executors.available_cpus", lambda: 1)
    assert default_executor(tasks=5) == "serial"


def test_share_splits_cpus_among_running_units() -> None:
    """Two units running share the CPUs; the one left alone gets them all; a fixed count always wins."""
    running = mp.get_context("spawn").Value("i", 0)
    a, b = threads.ThreadShare(4, None, running), threads.ThreadShare(4, None, running)
    with a.unit():
        assert a.threads() == 4
        with b.unit():
            assert a.threads() == b.threads() == 2
        assert a.threads() == 4
    assert running.value == 0
    assert threads.ThreadShare(4, 1, running).threads() == 1
    assert threads.ThreadShare(3, None, None).threads() == 3


def test_user_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for text, want in (("3", 3), (" 2 ", 2), ("0", None), ("abc", None), ("", None)):
        monkeypatch.setenv("OMP_NUM_THREADS", text)
        assert threads.user_threads() == want
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.user_threads() is None


def _wait(ready: object, deadline: float) -> None:
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)


def threads_seen(wait_for: int, marks: str) -> tuple[int, int]:
    """In a pool worker: (units running, threads given) once ``wait_for`` units run at the same time; each unit
    stays until every one has looked (a file per look in ``marks``), so none sees another leave."""
    import os

    share = threads.current()
    deadline = time.monotonic() + 60
    with share.unit():
        _wait(lambda: share.running is None or share.running.value >= wait_for, deadline)
        seen = (share.running.value if share.running is not None else 1), share.threads()
        Path(marks, str(os.getpid())).touch()
        _wait(lambda: len(os.listdir(marks)) >= wait_for, deadline)
    return seen


def test_pool_threads_follow_running_units(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A real pool: two units at once get cpus // 2 threads each; a unit alone in the pool gets every CPU."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = threads.available_cpus()
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    both = list(ProcessExecutor(2, tasks=2).map(threads_seen, [(2, str(tmp_path / "two"))] * 2))
    assert both == [(2, max(1, cpus // 2))] * 2
    alone = list(ProcessExecutor(2, tasks=1).map(threads_seen, [(1, str(tmp_path / "one"))]))
    assert alone == [(1, cpus)]


def test_pool_never_larger_than_the_job() -> None:
    assert ProcessExecutor(8, tasks=3).workers == 3
    assert ProcessExecutor(2, tasks=None).workers == 2


def test_one_video_runs_in_process_many_in_a_pool(six_videos: Path, tmp_path: Path) -> None:
    """The --json summary names the executor that ran: serial for one unit, a pool for several (on >1 CPU)."""
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(six_videos / "v0.mp4", one / "v0.mp4")
    result = cli("split", one, "-o", tmp_path / "a", "--size", "32", "--fps", "5", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"executor": "serial"' in result.stdout
    result = cli("split", six_videos, "-o", tmp_path / "b", "--size", "32", "--fps", "5", "--videos-per-shard", "2",
                 "--json")
    assert result.exit_code == 0, result.stderr
    pool = "process" if threads.available_cpus() > 1 else "serial"
    assert f'"executor": "{pool}"' in result.stdout


def test_features_threads_respect_omp_num_threads(six_videos: Path, tmp_path: Path) -> None:
    """A lone unit takes every CPU; a user's OMP_NUM_THREADS fixes the count instead (the log line says which)."""
    args = ["features", six_videos / "v0.mp4", "--model", "resnet18", "--weights", "none", "--fps", "2",
            "--size", "32", "-v"]
    env = {k: "" for k in ("OMP_NUM_THREADS",)}
    free = vidprep(*args, "-o", tmp_path / "a", env=env, timeout=300)
    fixed = vidprep(*args, "-o", tmp_path / "b", env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert free.returncode == 0 and fixed.returncode == 0, free.stderr + fixed.stderr
    assert f", {threads.available_cpus()} threads" in free.stderr
    assert ", 1 threads" in fixed.stderr


def test_weights_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's check hands its sha256 on; a worker hashes again only if the file changed since."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from vidprep.errors import WeightsError
    from vidprep.stages import models

    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    spec = models.get_spec("resnet18")
    choice = models.resolve_weights(spec, str(path))
    proof = models.verify_weights(choice)
    assert proof is not None and proof.sha256 == models.sha256_of(path)

    def no_hash(_: Path) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(models.weights, "sha256_of", no_hash)
    _, info = models.build_model(spec, choice, proof=proof)
    assert info["sha256"] == proof.sha256
    path.touch()
    import os

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(AssertionError, match="hashed again"):
        models.build_model(spec, choice, proof=proof)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        models.verify_weights(choice)
