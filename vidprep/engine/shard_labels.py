"""Labels when shards are among the inputs: one class list per run, stored labels remapped by name, never by number.

A shard from an earlier step stores clip labels as numbers into its own ``/meta/class_names``. A run's output has
one class list: the sorted union of the input shards' class names, the classes of a labels CSV and (for videos) of
``--label-from-dir``. Each stored label is carried over by its name, so it keeps its meaning whatever number the
name gets. A labels CSV maps video ids (for shards: the stored ids) to class names; it may label videos whose clips
are unlabeled (-1), but giving a labelled video another class is a usage error (exit 2) before any decoding, or one
error record for a shard that arrives on stdin. ``--label-from-dir`` derives classes from video paths and is a
usage error when every input is a shard (their stored ids are relative to another root; label at split time).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from vidprep.engine.applicable import shard_inputs_only
from vidprep.errors import ShardError, UsageError
from vidprep.types import ClipRow
from vidprep.inputs import InputList
from vidprep.engine.labels import Labels, read_rows, resolve

log = logging.getLogger("vidprep.engine.shard_labels")


def resolve_run_labels(listed: InputList, *, label_from_dir: bool, labels_csv: str | None) -> Labels:
    """The run's class list and per-video class numbers, with the input shards' labels merged by name."""
    if label_from_dir and shard_inputs_only(listed):
        raise UsageError("--label-from-dir does not apply to shard inputs: their videos were labelled (or not) when "
                         "they were split; re-split with --label-from-dir, or give --labels with the stored video ids")
    stored = _read_all(listed.shards)
    if not stored and not labels_csv:
        return resolve(listed.videos, label_from_dir=label_from_dir, labels_csv=None)
    from_dirs = resolve(listed.videos, label_from_dir=label_from_dir, labels_csv=None)
    named = {vid: from_dirs.class_names[n] for vid, n in from_dirs.by_video.items()}
    rows = read_rows(labels_csv) if labels_csv else {}
    if labels_csv and rows:  # rows come only from a labels_csv
        _warn_unknown(labels_csv, rows, listed, stored)
        _check_meaning(labels_csv, rows, stored)
    classes = sorted({*named.values(), *rows.values(), *(n for s in stored for n in s.class_names)})
    index = {c: i for i, c in enumerate(classes)}
    return Labels(tuple(classes), {vid: index[c] for vid, c in {**rows, **named}.items()})


def _read_all(paths: Sequence[str]) -> list:
    """Stored labels of every readable input shard; an unreadable one is left to its worker to report."""
    from vidprep.shards.stored_labels import read_stored_labels

    out = []
    for path in paths:
        try:
            out.append(read_stored_labels(path))
        except ShardError as err:
            log.debug("labels of %s not read here: %s", path, err)
    return out


def _warn_unknown(csv_path: str, rows: dict[str, str], listed: InputList, stored: list) -> None:
    known = {v.video_id for v in listed.videos} | {vid for s in stored for vid in s.by_video}
    unknown = [vid for vid in rows if vid not in known]
    if unknown:
        log.warning("%s: %d label rows name no input video (e.g. %r)", csv_path, len(unknown), unknown[0])


def _check_meaning(csv_path: str, rows: dict[str, str], stored: list) -> None:
    """A CSV row may label a stored video whose clips are unlabeled, not change the class of a labelled one."""
    for s in stored:
        for vid, cls in rows.items():
            other = s.names_of(vid) - {cls}
            if other:
                raise UsageError(f"--labels gives {vid!r} class {cls!r}, but the input shard {s.path} stores its "
                                 f"clips as {', '.join(sorted(map(repr, other)))}: a labels CSV may label unlabeled "
                                 "shard videos, not relabel them; re-split the videos with --labels to relabel",
                                 path=csv_path)


def relabel_rows(rows: list[ClipRow], video_id: str, stored_names: list[str], labels: Labels) -> list[ClipRow]:
    """An input shard video's clip rows with labels numbered in the run's class list (by name).

    Runs without a class list keep the rows as they are (the output shard then keeps the input's class names).
    """
    if not labels.class_names:
        return rows
    index = {c: i for i, c in enumerate(labels.class_names)}
    wanted = labels.by_video.get(video_id)
    return [replace(r, label=_label(r.label, stored_names, index, wanted, video_id)) for r in rows]


def _label(stored: int, names: list[str], index: dict[str, int], wanted: int | None, video_id: str) -> int:
    if stored < 0:
        return -1 if wanted is None else wanted
    if stored >= len(names):
        raise ShardError(f"video {video_id!r}: clip label {stored} has no class name in the input shard")
    name = names[stored]
    if wanted is not None and index.get(name) != wanted:
        raise ShardError(f"video {video_id!r}: the labels CSV gives class {list(index)[wanted]!r}, but its clips "
                         f"are stored as {name!r} (a CSV may label unlabeled shard videos, not relabel them)")
    if name not in index:
        raise ShardError(f"video {video_id!r}: class {name!r} of the input shard is not in this run's class list "
                         f"({', '.join(index)}); give the shards as arguments, not on stdin, to merge their classes")
    return index[name]
