"""Resume safety: which work units are done, checked against the videos they were made from.

A unit is a slice of the sorted input list, so adding or removing one video shifts which videos every later unit
holds. Matching finished outputs by unit number alone would silently skip the new videos and leave shards whose
content no longer matches their number. So before anything is decoded, each finished unit's recorded inputs (the
manifest's ``input_ids`` for shards, the ``{"unit": ...}`` line of an index part for image/mp4 output) are compared
with this run's unit; any difference is exit 2 saying what changed and what to do.

Shards the manifest lists are trusted from the manifest, never opened or hashed; only shards missing from it (a
crash between the rename and the manifest update) are opened, recorded and their failures put back in errors.jsonl.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from vidprep.engine.sinks import Made
from vidprep.errors import UsageError
from vidprep.inputs import WorkUnit

log = logging.getLogger("vidprep.engine.resume")

UNIT_INDEX_RE = re.compile(r"^shard-(\d+)\.")
SHOWN_IDS = 6
SHOWN_UNITS = 3


def check_overwrite(overwrite: bool, num_shards: int) -> None:
    """Refuse ``--overwrite`` in an array job: every task would delete the shards the others already finished."""
    if overwrite and num_shards > 1:
        raise UsageError(
            "--overwrite cannot be used with --num-shards > 1: each array task would delete the shards the other "
            "tasks already finished. Clear the output directory once before submitting the array (or use a new "
            "one), then run the tasks without --overwrite")


def pending_units(out: Path, fmt: str, units: list[WorkUnit], *, total_units: int, shard_index: int,
                  num_shards: int) -> list[WorkUnit]:
    """The units of this task still to do; raises UsageError when a finished one was made from other videos.

    ``total_units`` is the unit count of the whole input list (all tasks): a finished output of this task's slice
    with a larger number means videos were removed.
    """
    from vidprep.engine.sinks import kind_for

    sink = kind_for(fmt)
    done = sink.finished(out)
    todo, changes = [], []
    for unit in units:
        name = sink.unit_path(out, unit.index).name
        if name not in done:
            todo.append(unit)
            continue
        change = _describe(sink.shown_name(name), done[name], unit)
        if change:
            changes.append(change)
    for name, made in sorted(done.items()):
        k = _unit_index(name)
        if total_units and k is not None and k >= total_units and k % num_shards == shard_index:
            changes.append(f"{sink.shown_name(name)} was made from {_show(made.ids)} but this run has no unit {k}: "
                           f"{_count(len(made.ids), 'removed')}")
    if changes:
        raise UsageError(_message(out, changes))
    sink.before_units(out, todo)
    return todo


def _describe(shown: str, made: Made, unit: WorkUnit) -> str | None:
    """What changed between a finished unit and this run's unit (None when they agree)."""
    want = {item.video_id for item in unit.items if not isinstance(item, str)}
    have = made.inputs(want)
    added, removed = sorted(want - have), sorted(have - want)
    if not added and not removed:
        return None
    what = ", ".join(f"{_count(len(ids), verb)} ({_names(ids)})"
                     for ids, verb in ((added, "added"), (removed, "removed")) if ids)
    return f"{shown} was made from {_show(have)} but this run's unit {unit.index} is {_show(want)}: {what}"


def _message(out: Path, changes: list[str]) -> str:
    more = len(changes) - SHOWN_UNITS
    listed = "; ".join(changes[:SHOWN_UNITS]) + (f"; and {more} more unit(s) differ" if more > 0 else "")
    return (f"the input videos changed since {out} was written, so its finished units no longer match this run's "
            f"units (resuming would skip or misplace videos): {listed}. Re-run with --overwrite to rebuild the "
            f"output from scratch, or write to a new output directory")


def _unit_index(name: str) -> int | None:
    m = UNIT_INDEX_RE.match(name)
    return int(m[1]) if m else None


def _count(n: int, verb: str) -> str:
    return f"{n} video{'s' if n != 1 else ''} {verb}"


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f", ... {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _show(ids: set[str]) -> str:
    return f"[{_names(sorted(ids))}]"
