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

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vidprep.errors import UsageError
from vidprep.inputs import WorkUnit

log = logging.getLogger("vidprep.resume")

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


def unit_part_header(video_ids: Iterable[str]) -> str:
    """First line of an index part: every video id of its unit (failed ones too), for the resume check."""
    return json.dumps({"unit": {"video_ids": sorted({v for v in video_ids if v is not None})}}, ensure_ascii=False)


def pending_units(out: Path, fmt: str, units: list[WorkUnit], *, total_units: int, shard_index: int,
                  num_shards: int) -> list[WorkUnit]:
    """The units of this task still to do; raises UsageError when a finished one was made from other videos.

    ``total_units`` is the unit count of the whole input list (all tasks): a finished output of this task's slice
    with a larger number means videos were removed.
    """
    from vidprep.shards.cleanup import cleanup_temp
    from vidprep.sinks import PARTS_DIR, unit_output_path

    done = _finished(out, fmt)
    todo, changes = [], []
    for unit in units:
        name = unit_output_path(out, fmt, unit.index).name
        if name not in done:
            todo.append(unit)
            continue
        change = _describe(fmt, name, done[name], unit)
        if change:
            changes.append(change)
    for name, made in sorted(done.items()):
        k = _unit_index(name)
        if total_units and k is not None and k >= total_units and k % num_shards == shard_index:
            changes.append(f"{_rel(fmt, name)} was made from {_show(made.ids)} but this run has no unit {k}: "
                           f"{_count(len(made.ids), 'removed')}")
    if changes:
        raise UsageError(_message(out, changes))
    if fmt != "h5":  # temp files of crashed image/mp4 writers lie in the folders of the units still to do
        cleanup_temp(out, subdirs=[PARTS_DIR, *(item.video_id for u in todo for item in u.items)])
    return todo


@dataclass
class Made:
    """What a finished unit was made from: ``ids``, plus those of this run's unit that are in ``maybe`` (None: any).

    ``maybe`` is empty for exact records; for records written before units stored their inputs it holds the
    run's failed videos (a shard's failures are not among its stored ids), or None for an old index part, where a
    video that gave no clip has no line (then only removed videos can be told).
    """

    ids: set[str]
    maybe: set[str] | None = field(default_factory=set)

    def inputs(self, want: set[str]) -> set[str]:
        return self.ids | (want if self.maybe is None else want & self.maybe)


def _finished(out: Path, fmt: str) -> dict[str, Made]:
    """Output name -> what its unit was made from, for every finished unit."""
    from vidprep.recovery import completed_units

    if fmt != "h5":
        found = {}
        for c in completed_units(out, fmt):
            _restore_errors(out, c.errors)
            found[c.name] = Made(c.input_ids, set() if c.exact else None)
        return found
    from vidprep.shards.manifest import load, read_errors, record_shard

    listed = {s["name"]: s for s in load(out).get("shards", [])}
    on_disk = {p.name for p in out.glob("shard-*.h5")}
    found = {}
    for c in completed_units(out, fmt, skip=on_disk & set(listed)):
        record_shard(out, c.summary)  # a crash between its rename and the manifest update
        _restore_errors(out, c.errors)
        found[c.name] = Made(c.input_ids)
    failed: set[str] | None = None
    for name in on_disk & set(listed):
        entry = listed[name]
        if "input_ids" in entry:
            found[name] = Made(set(entry["input_ids"]))
        else:  # an entry written before input_ids: stored videos plus the failures errors.jsonl lists
            failed = failed if failed is not None else {e.get("video_id") for e in read_errors(out)} - {None}
            found[name] = Made(set(entry.get("video_ids", [])), failed)
    return found


def _restore_errors(out: Path, errors: list[dict]) -> None:
    """Put a finished unit's failures back into errors.jsonl if a crash lost them (idempotent)."""
    from vidprep.shards.manifest import append_error, read_errors

    if not errors:
        return
    known = {(e.get("video_id"), e.get("message")) for e in read_errors(out)}
    for rec in errors:
        if (rec.get("video_id"), rec.get("message")) not in known:
            append_error(out, rec)


def _describe(fmt: str, name: str, made: Made, unit: WorkUnit) -> str | None:
    """What changed between a finished unit and this run's unit (None when they agree)."""
    want = {item.video_id for item in unit.items}
    have = made.inputs(want)
    added, removed = sorted(want - have), sorted(have - want)
    if not added and not removed:
        return None
    what = ", ".join(f"{_count(len(ids), verb)} ({_names(ids)})"
                     for ids, verb in ((added, "added"), (removed, "removed")) if ids)
    return f"{_rel(fmt, name)} was made from {_show(have)} but this run's unit {unit.index} is {_show(want)}: {what}"


def _message(out: Path, changes: list[str]) -> str:
    more = len(changes) - SHOWN_UNITS
    listed = "; ".join(changes[:SHOWN_UNITS]) + (f"; and {more} more unit(s) differ" if more > 0 else "")
    return (f"the input videos changed since {out} was written, so its finished units no longer match this run's "
            f"units (resuming would skip or misplace videos): {listed}. Re-run with --overwrite to rebuild the "
            f"output from scratch, or write to a new output directory")


def _unit_index(name: str) -> int | None:
    m = UNIT_INDEX_RE.match(name)
    return int(m[1]) if m else None


def _rel(fmt: str, name: str) -> str:
    return name if fmt == "h5" else f".parts/{name}"


def _count(n: int, verb: str) -> str:
    return f"{n} video{'s' if n != 1 else ''} {verb}"


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f", ... {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _show(ids: set[str]) -> str:
    return f"[{_names(sorted(ids))}]"
