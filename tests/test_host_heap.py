"""Freed large blocks stay in the C heap (`vidprep.host_heap`): counted in minor page faults (the kernel's own
count of pages it had to map and zero), in fresh interpreters with and without the policy. Compared with the
first round's count, so the page size (4 KiB, or 2 MiB where transparent huge pages are always on) cancels."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc malloc policy")

TESTS = str(Path(__file__).parent)


def second_round_faults(setup: str, probe: str = "heap_probe.fault_rounds()") -> list[int]:
    """The probe's fault counts in a fresh interpreter that first runs ``setup``."""
    code = f"import json, sys\nsys.path.insert(0, {TESTS!r})\nimport heap_probe\n{setup}\nprint(json.dumps({probe}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def reused(faults: list[int]) -> bool:
    """The second round mapped under a tenth of the pages the first did (which mapped some: the probe counts)."""
    first, second = faults
    return first > 0 and second * 10 < first


def test_a_freed_large_block_is_reused_without_page_faults() -> None:
    assert reused(second_round_faults("from vidprep import host_heap\nassert host_heap.keep_freed_blocks()"))


def test_without_the_policy_the_block_is_mapped_again() -> None:
    """The control: with glibc's defaults the second round faults as much as the first, so the test above can fail."""
    first, second = second_round_faults("")
    assert first > 0 and second * 2 > first, (first, second)


def test_the_cli_entry_points_apply_it() -> None:
    """`vidprep.cli.main` is the console script and what ``python -m vidprep`` runs."""
    assert reused(second_round_faults("import vidprep.cli.main"))


def test_a_library_caller_keeps_its_allocator() -> None:
    """Building and running a model through the library API changes nothing process-wide."""
    runtime = ("from vidprep.stages.runtime import choose_runtime\nchoose_runtime('cpu', 'fp32')\n"
               "from vidprep import host_heap\nassert host_heap._applied is None")
    first, second = second_round_faults(runtime)
    assert second * 2 > first, (first, second)


def test_ray_task_workers_apply_it() -> None:
    assert reused(second_round_faults("from vidprep.executors.ray import _enter\n_enter('')"))


def test_process_executor_workers_apply_it() -> None:
    probe = ("list(ProcessExecutor(1, tasks=1).map(heap_probe.fault_rounds, [()]))[0]"
             " if __name__ == '__main__' else None")
    assert reused(second_round_faults("from vidprep.executors.process import ProcessExecutor", probe))


def test_free_pages_go_back_to_the_kernel_between_units_once_many_piled_up() -> None:
    """``release_freed`` keeps a freed 96 MiB (under the 256 MiB limit) and gives back a freed 400 MiB, in RSS."""
    code = """
import heap_probe
from vidprep import host_heap
assert host_heap.keep_freed_blocks()
rows = []
for size in (96 << 20, 400 << 20):
    heap_probe.freed_block(size)
    kept = heap_probe.rss_mib()
    released = host_heap.release_freed()
    rows.append([kept, released, heap_probe.rss_mib()])
"""
    small, large = second_round_faults(code, "rows")
    assert small[1] is False and small[2] > small[0] - 16, small  # kept: under the limit
    assert large[1] is True and large[2] < large[0] - 300, large  # 400 MiB held, then (nearly) all given back


def test_every_work_unit_ends_with_a_release(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    import vidprep
    import vidprep.engine.worker as worker

    videos = [make_video("heap_a.mp4"), make_video("heap_b.mp4")]
    calls: list[bool] = []
    real = worker.release_freed
    worker.release_freed = lambda: calls.append(True) or real()  # type: ignore[assignment]
    try:
        summary = vidprep.run({"split": {"fps": 1, "size": 32}, "run": {"videos_per_shard": 1}}, videos,
                              tmp_path / "o", executor="serial")
    finally:
        worker.release_freed = real  # type: ignore[assignment]
    assert summary.exit_code == 0 and len(summary.shards) == 2
    assert len(calls) == 2
