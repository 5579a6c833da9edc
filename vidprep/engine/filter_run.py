"""`vidprep filter`: apply a new --keep expression (and/or drop near-duplicates) to finished shards, no decoding.

One output shard per input shard, same name; a shard already in OUT2 is complete (atomic writes), so a re-run
resumes. A source shard that cannot be read or lacks the metrics the expression needs is one error record in
OUT2/errors.jsonl (exit 3); the others still land. OUT2's manifest records the source config plus ``filter``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidprep.errors import ShardError, UsageError, printable_path

if TYPE_CHECKING:
    import h5py

    from vidprep.stages.keep_expr import Expr

Dropped = set[tuple[str, int, int]]
"""(video_id, clip_index, aug_index) of the clips `vidprep dedup` marked as not kept."""

log = logging.getLogger("vidprep.engine.filter_run")


@dataclass
class FilterSummary:
    """What a filter run did (for --json and the exit code)."""

    out_dir: str
    shards: list[str] = field(default_factory=list)
    skipped: int = 0
    clips_in: int = 0
    clips_kept: int = 0
    failed: int = 0


def plan(src: Path, out: Path, keep: str | None, drop_duplicates: bool) -> tuple[Expr | None, Dropped | None, dict]:
    """Validate everything before writing: the expression, the duplicates table, the directories."""
    from vidprep.stages.keep_expr import parse
    from vidprep.stages.quality import METRICS

    if keep is None and not drop_duplicates:
        raise UsageError("filter needs --keep EXPR and/or --drop-duplicates")
    if not src.is_dir():
        raise UsageError("OUT must be a directory of shards", path=str(src))
    if out.resolve() == src.resolve():
        raise UsageError("-o/--output must differ from the shard directory being filtered", path=str(out))
    try:
        expr = parse(keep, METRICS) if keep is not None else None
    except ValueError as err:
        raise UsageError(f"--keep: {err}") from None
    dropped = load_dropped(src) if drop_duplicates else None
    record = {"filter": {"source": printable_path(str(src)), "keep": keep, "drop_duplicates": drop_duplicates}}
    return expr, dropped, record


def load_dropped(src: Path) -> Dropped:
    """(video_id, clip_index, aug_index) of every clip that OUT/duplicates.jsonl marks as not kept."""
    path = src / "duplicates.jsonl"
    if not path.is_file():
        raise UsageError("--drop-duplicates needs OUT/duplicates.jsonl: run `vidprep dedup OUT` first", path=str(path))
    from vidprep.shards.manifest import read_own_text  # a regular file in OUT: never read through a symlink

    out: Dropped = set()
    for number, line in enumerate(read_own_text(path, errors="replace").splitlines(), 1):
        try:
            rec = json.loads(line)
            if not rec.get("kept", True):
                out.add((str(rec["video_id"]), int(rec["clip_index"]), int(rec["aug_index"])))
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise UsageError(f"line {number} is not a duplicates record ({type(err).__name__}); re-run "
                             "`vidprep dedup`", path=str(path)) from None
    return out


def run_filter(src: Path, out: Path, keep: str | None, drop_duplicates: bool, overwrite: bool = False,
               on_shard: Callable[[str], None] | None = None) -> FilterSummary:
    """Filter every shard of ``src`` into ``out``; see the module docstring."""
    from vidprep.shards import manifest
    from vidprep.shards.format import SYMLINK_OUTSIDE, find_shards
    from vidprep.shards.manifest import append_shard_error

    expr, dropped, record = plan(src, out, keep, drop_duplicates)
    refused: list[Path] = []
    shards = find_shards(src, refused=refused)
    source_config = manifest.load(src).get("config") or {}
    config = {**source_config, **record}
    _prepare(out, config, overwrite)
    summary = FilterSummary(str(out))
    for path in refused:  # a symlink leading out of SRC: one error record, never read
        append_shard_error(out, path, "filter", ShardError(SYMLINK_OUTSIDE, path=str(path)))
        summary.failed += 1
    for path in shards:
        target = out / path.name
        if target.exists():
            summary.skipped += 1
            continue
        _one(path, target, expr, dropped, config, summary)
        if on_shard is not None and target.exists():
            on_shard(str(target))
    manifest.compact_errors(out)
    return summary


def _prepare(out: Path, config: dict, overwrite: bool) -> None:
    from vidprep.engine import out_entries
    from vidprep.shards import manifest

    if overwrite and out.is_dir():
        for p in list(out.glob("shard-*.h5")) + [out / "manifest.json", out / "errors.jsonl"]:
            p.unlink(missing_ok=True)
        shutil.rmtree(out / ".parts", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    out_entries.check(out)
    manifest.check_config(out, config)


def _one(path: Path, target: Path, expr: Expr | None, dropped: Dropped | None, config: dict,
         summary: FilterSummary) -> None:
    from vidprep.shards.filter_copy import filter_shard
    from vidprep.shards.manifest import append_shard_error, record_shard

    counts: dict[str, int] = {}

    def select(f: h5py.File) -> np.ndarray:
        mask = selection(f, expr, dropped)
        counts["in"], counts["kept"] = len(mask), int(mask.sum())
        return mask

    try:
        result = filter_shard(path, target, select, {"filter": config["filter"]})
    except Exception as err:  # noqa: BLE001 - one bad shard is one error record, the others still land
        append_shard_error(target.parent, path, "filter", err)
        summary.failed += 1
        return
    record_shard(target.parent, result, config=config, inputs=list(result.video_ids))
    summary.shards.append(str(target))
    summary.clips_in += counts.get("in", 0)
    summary.clips_kept += counts.get("kept", 0)


def selection(f: h5py.File, expr: Expr | None, dropped: Dropped | None) -> np.ndarray:
    """(N,) bool: clip rows of the open shard ``f`` that pass ``expr`` and are not dropped duplicates."""
    from vidprep.shards.clip_extras import read_quality

    n = f["clips/video_index"].shape[0]
    mask = np.ones(n, bool)
    if expr is not None:
        quality = read_quality(f["clips"])
        missing = sorted(expr.names - set(quality))
        if missing:
            raise UsageError(f"shard has no quality metric(s) {', '.join(missing)} (split it with --metrics)")
        cols = {k: quality[k].astype(np.float64) for k in expr.names}
        mask &= np.array([expr.evaluate({k: c[i] for k, c in cols.items()}) for i in range(n)], bool)
    if dropped:
        ids = f["videos/id"].asstr()[:]
        vid, ci, ai = (f[f"clips/{k}"][:] for k in ("video_index", "clip_index", "aug_index"))
        mask &= np.array([(str(ids[vid[i]]), int(ci[i]), int(ai[i])) not in dropped for i in range(n)], bool)
    return mask
