"""Model streams: batches side by side on their own threads, each with its share of the intra-op threads, results in
order, bounded work in flight, and errors that reach the caller."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vidprep.stages.model_streams import ModelStreams, stream_count


class Probe:
    """Jobs that record how many run at once and the torch threads each one sees."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: list[int] = []

    def job(self, value: int, hold_s: float = 0.05):
        def run() -> int:
            import torch

            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.append(torch.get_num_threads())
            time.sleep(hold_s * (1 + value % 3))  # uneven, so later jobs can finish first
            with self.lock:
                self.running -= 1
            return value
        return run


def test_results_in_order_with_two_streams_side_by_side() -> None:
    probe = Probe()
    streams = ModelStreams(2, lambda: 6)
    assert list(streams.map(probe.job(i) for i in range(9))) == list(range(9))
    assert probe.most == 2  # two at once, never more
    assert set(probe.threads) == {3}  # 6 threads shared by 2 streams


def test_budget_limits_streams_and_threads_each_batch() -> None:
    """A budget of one thread runs one stream with one thread; a budget that grows is applied at the next job."""
    probe = Probe()
    budget = [1]
    streams = ModelStreams(2, lambda: budget[0])
    assert list(streams.map(probe.job(i, 0.01) for i in range(4))) == list(range(4))
    assert probe.most == 1 and set(probe.threads) == {1}
    budget[0] = 8
    probe.threads.clear()
    assert list(streams.map(probe.job(i, 0.01) for i in range(4))) == list(range(4))
    assert set(probe.threads) == {4}


def test_submit_waits_while_every_stream_is_busy() -> None:
    """A caller feeding batches as they decode holds at most `streams` of them: submit returns only when one is free."""
    gate = threading.Event()
    streams = ModelStreams(2, lambda: 2)
    first = [streams.submit(gate.wait) for _ in range(2)]
    third: list[object] = []
    caller = threading.Thread(target=lambda: third.append(streams.submit(lambda: "third")))
    caller.start()
    caller.join(0.3)
    assert caller.is_alive() and not third  # both streams busy: the third submit waits
    gate.set()
    caller.join(10)
    assert [f.result() for f in first] == [True, True] and third[0].result() == "third"  # type: ignore[attr-defined]


def test_a_failing_batch_raises_to_the_caller() -> None:
    def boom() -> int:
        raise RuntimeError("forward failed")

    streams = ModelStreams(2, lambda: 2)
    with pytest.raises(RuntimeError, match="forward failed"):
        list(streams.map([lambda: 1, boom, lambda: 3]))


def test_stream_count() -> None:
    assert [stream_count("cpu", n) for n in (1, 2, 16)] == [1, 2, 2]
    assert stream_count("cuda", 16) == stream_count("cuda:1", 16) == stream_count("mps", 8) == 1


def test_extractor_streams_give_the_single_stream_features() -> None:
    """The same frames through two streams (16 per pass) and through one (32 per pass, batches in turn): the same
    features, to float rounding of a different batch size (the direct-forward parity lives in test_features)."""
    from vidprep.config import FeaturesConfig
    from vidprep.stages.features import FeatureExtractor

    cfg = FeaturesConfig(model="resnet18", weights="none", precision="fp32")
    two = FeatureExtractor(cfg, threads=2)
    one = FeatureExtractor(cfg, threads=2, max_threads=1)
    assert (two.streams.streams, two.batch_size, one.streams.streams, one.batch_size) == (2, 16, 1, 32)
    assert two.describe()["streams"] == 2 and two.describe()["batch_size"] == 16
    frames = np.random.default_rng(0).integers(0, 256, (40, 64, 80, 3), dtype=np.uint8)
    np.testing.assert_allclose(two.extract_frames(frames), one.extract_frames(frames), rtol=1e-4, atol=1e-4)


def test_stream_threads_are_daemons_that_end_with_their_streams() -> None:
    """Live non-daemon threads would make a finished CLI command fall back to the interpreter's slow teardown
    (vidprep.cli.fast_exit); idle stream threads end when their streams are collected."""
    import gc

    streams = ModelStreams(2, lambda: 2)
    assert list(streams.map([lambda: 1, lambda: 2])) == [1, 2]
    threads = list(streams._threads)
    assert len(threads) == 2 and all(t.daemon and t.is_alive() for t in threads)
    del streams
    gc.collect()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)


def test_features_command_leaves_no_thread_to_join(numbered_video, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After `vidprep features` (two streams on any machine with two CPUs) only daemon threads are left, so the
    process entry point takes its fast exit instead of the interpreter's teardown."""
    from clihelp import cli

    result = cli("features", numbered_video, "-o", tmp_path / "out", "--model", "resnet18", "--weights", "none",
                 "--every", "4", "--size", "64", "--executor", "serial", "-q")
    assert result.exit_code == 0, result.output
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    assert left == []
