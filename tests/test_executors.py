"""Executors agree: serial, process (2 workers) and Ray write the same shards; Ray's start/connect rules; no Ray.

Ray tests share one local Ray (2 CPUs) started once for this module; they are skipped when Ray is not installed.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from clihelp import cli, read_videos, shard_paths, vidprep

try:
    import ray
except ImportError:  # the ray extra is optional; dev installs it
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'vidprep[ray]')")
SPLIT = ["--clip-frames", "4", "--stride", "3", "--size", "32", "--videos-per-shard", "2"]
FEATURES = ["--model", "resnet18", "--weights", "none", "--fps", "4", "--size", "32", "--videos-per-shard", "1"]


@pytest.fixture(scope="module")
def videos(six_videos: Path) -> Path:
    """Six tiny videos of different sources and lengths (3 work units of 2)."""
    return six_videos


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray for the module (2 CPUs, no dashboard, worker output kept off the driver); its address."""
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'vidprep[ray]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def quality_columns(out: Path) -> dict[str, np.ndarray]:
    """Every shard's per-clip quality metrics and perceptual hashes (plain h5py), keyed by shard and column."""
    found = {}
    for path in sorted(out.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            for name, ds in f["clips/quality"].items() if "quality" in f["clips"] else ():
                found[f"{path.name}/quality/{name}"] = ds[:]
            if "phash" in f["clips"]:
                found[f"{path.name}/phash"] = f["clips/phash"][:]
    return found


def assert_same(a: Path, b: Path, *, features: bool = False) -> None:
    """Same videos, frames, pts, source indices and clip rows, quality metrics and hashes (NaN where undefined,
    e.g. scene statistics without --scenes), and features to float tolerance."""
    qa, qb = quality_columns(a), quality_columns(b)
    assert sorted(qa) == sorted(qb)
    for key in qa:
        assert np.array_equal(qa[key], qb[key], equal_nan=qa[key].dtype.kind == "f"), key
    va, vb = read_videos(a), read_videos(b)
    assert sorted(va) == sorted(vb) == [f"v{i}.mp4" for i in range(6)]
    for vid in va:
        x, y = va[vid], vb[vid]
        for key in ("pts", "index"):
            assert np.array_equal(x[key], y[key]), (vid, key)
        assert (x["rgb"] is None) == (y["rgb"] is None) and (x["rgb"] is None or np.array_equal(x["rgb"], y["rgb"]))
        assert sorted(x["clips"]) == sorted(y["clips"])
        for key in x["clips"]:
            a, b = x["clips"][key], y["clips"][key]
            floats = a.dtype.kind == "f"  # quality metrics are NaN where undefined (e.g. scene stats without --scenes)
            assert np.array_equal(a, b, equal_nan=floats), (vid, key)
        if features:
            assert x["features"] is not None and x["features"].shape == y["features"].shape
            np.testing.assert_allclose(x["features"], y["features"], rtol=1e-4, atol=1e-5, err_msg=vid)


def run_ok(*args: object) -> None:
    res = cli(*args)
    assert res.exit_code == 0, res.stderr


@pytest.fixture(scope="module")
def serial_split(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the split job run by the serial executor."""
    out = tmp_path_factory.mktemp("serial") / "out"
    run_ok("split", videos, "-o", out, *SPLIT, "--executor", "serial")
    assert len(shard_paths(out)) == 3
    return out


@pytest.mark.slow
@needs_ray
def test_split_process_and_ray_equal_serial(videos: Path, serial_split: Path, tmp_path: Path, ray_cluster: str) -> None:
    """Same shards from 2 worker processes and from Ray tasks; only small UnitResults travel back from Ray."""
    from vidprep.config import run_config_from
    from vidprep.inputs import expand
    from vidprep.engine.driver import RunOptions, run

    run_ok("split", videos, "-o", tmp_path / "process", *SPLIT, "--executor", "process", "--workers", "2")
    assert_same(serial_split, tmp_path / "process")

    results = []
    config = run_config_from({"split": {"clip_frames": 4, "stride": 3, "size": 32}, "run": {"videos_per_shard": 2}})
    summary = run(expand([str(videos)]), config, tmp_path / "ray", RunOptions(executor="ray"), on_unit=results.append)
    assert summary.videos_ok == 6 and summary.videos_failed == 0 and len(results) == 3
    assert_same(serial_split, tmp_path / "ray")
    for result in results:
        assert result.shard is not None
        assert len(pickle.dumps(result)) < 4096
        assert "ndarray" not in repr(result)
    assert cli("shards", "verify", tmp_path / "ray", "--inputs", videos).exit_code == 0


@pytest.mark.slow
@needs_ray
def test_ray_cli_connects_and_prints_only_shard_paths(videos: Path, serial_split: Path, tmp_path: Path,
                                                      ray_cluster: str) -> None:
    """A subprocess given --ray-address joins the running cluster (starts none); stdout is shard paths only."""
    out = tmp_path / "ray"
    res = vidprep("split", videos, "-o", out, *SPLIT, "--executor", "ray", "--ray-address", ray_cluster)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == [str(p) for p in shard_paths(out)]
    assert "connected to" in res.stderr and "started a local Ray" not in res.stderr
    assert_same(serial_split, out)


@pytest.mark.slow
@needs_ray
def test_ray_failed_video_is_reported_like_serial(videos: Path, tmp_path: Path, ray_cluster: str) -> None:
    """A broken video: exit 3, errors.jsonl, and the worker's error message replayed on the driver's stderr."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    os.link(videos / "v0.mp4", inputs / "good.mp4")
    (inputs / "broken.mp4").write_bytes((videos / "v1.mp4").read_bytes()[:3000])
    res = cli("split", inputs, "-o", tmp_path / "out", "--fps", "2", "--videos-per-shard", "1", "--executor", "ray")
    assert res.exit_code == 3, res.stderr
    assert "broken.mp4" in res.stderr and "broken.mp4" in (tmp_path / "out" / "errors.jsonl").read_text()
    assert "broken.mp4" not in res.stdout and len(res.stdout.split()) == 2


@pytest.mark.slow
@needs_ray
def test_features_serial_process_ray_agree(videos: Path, tmp_path: Path, ray_cluster: str) -> None:
    """resnet18 with random (seeded) weights: same clip rows and features whichever executor ran the model.

    Under Ray the model runs in a pool of 2 actors, each building it once (see vidprep.executors.ray).
    """
    run_ok("features", videos, "-o", tmp_path / "serial", *FEATURES, "--executor", "serial")
    run_ok("features", videos, "-o", tmp_path / "process", *FEATURES, "--executor", "process", "--workers", "2")
    res = cli("features", videos, "-o", tmp_path / "ray", *FEATURES, "--executor", "ray", "--workers", "2")
    assert res.exit_code == 0, res.stderr
    # Each model build logs one line (the actors' lines are replayed on the driver): 6 units, but at most one build
    # per actor (2), plus the driver's own up-front check of the stage setup.
    built = res.stderr.count("features: resnet18")
    assert 1 <= built <= 3, res.stderr
    assert_same(tmp_path / "serial", tmp_path / "process", features=True)
    assert_same(tmp_path / "serial", tmp_path / "ray", features=True)


BLOCK_RAY = """
import sys
class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'", name=name)
        return None
sys.meta_path.insert(0, _NoRay())
sys.modules.pop("ray", None)
from vidprep.cli.app import main
main(sys.argv[1:])
"""


def test_ray_executor_without_ray_is_a_usage_error(videos: Path, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", BLOCK_RAY, "split", str(videos), "-o", str(tmp_path / "out"),
                          "--executor", "ray"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "pip install 'vidprep[ray]'" in res.stderr
    assert res.stdout == ""
    assert not shard_paths(tmp_path / "out")


class FakeRay:
    """Records how the executor initializes Ray."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def is_initialized(self) -> bool:
        return bool(self.calls)

    def init(self, **kwargs: object) -> None:
        if self.fail:
            raise ConnectionError("Could not find any running Ray instance.")
        self.calls.append(kwargs)


def _executor(monkeypatch: pytest.MonkeyPatch, fake: FakeRay, **kwargs: object):
    from vidprep.executors import ray as ray_executor

    monkeypatch.setattr(ray_executor, "_import_ray", lambda: fake)
    return ray_executor.RayExecutor(**kwargs)


def test_ray_without_address_starts_a_local_ray_sized_by_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = FakeRay()
    _executor(monkeypatch, fake, workers=3)._init()
    assert fake.calls[0]["address"] == "local" and fake.calls[0]["num_cpus"] == 3


@pytest.mark.parametrize("flag, env", [("ray://head:10001", None), (None, "10.0.0.5:6379")])
def test_ray_with_address_only_connects(monkeypatch: pytest.MonkeyPatch, flag: str | None, env: str | None) -> None:
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = FakeRay()
    executor = _executor(monkeypatch, fake, workers=3, address=flag)
    executor._init()
    assert fake.calls[0]["address"] == (flag or env) and "num_cpus" not in fake.calls[0]
    assert not executor._started


def test_ray_unreachable_address_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidprep.errors import UsageError

    with pytest.raises(UsageError, match="cannot connect"):
        _executor(monkeypatch, FakeRay(fail=True), address="auto")._init()
