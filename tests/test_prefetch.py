"""The ffmpeg self-queries started at CLI launch: each is collected once, by its caller or by the exit reaper."""

from __future__ import annotations

from vidprep.media import prefetch


def test_a_query_is_collected_by_its_caller_or_the_reaper_never_both() -> None:
    """A caller taking a query while the exit reaper runs (another thread, the moment the CLI exits) gets nothing
    once the reaper has it: two communicate() calls on one process close its pipes under each other (EBADF)."""
    prefetch.start_for(["split"])
    try:
        keys = list(prefetch._started)
        assert len(keys) >= 2, "start_for started fewer than two queries"
        first = prefetch._started[keys[0]]
        late: list[object] = []
        kill = first.kill

        def kill_while_a_caller_takes() -> None:
            late.append(prefetch.take(list(keys[1])))  # the caller arrives while the reaper is at work
            kill()

        first.kill = kill_while_a_caller_takes  # type: ignore[method-assign]
        prefetch._reap()
        assert late == [None] and prefetch._started == {}
    finally:
        prefetch._reap()
