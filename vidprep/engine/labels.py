"""Class labels for videos: from their parent directory (`--label-from-dir`) or a `video_id,label` CSV.

Labels are resolved once, in the driver, over the whole input list, so every worker and every array-job task sees
the same class list and the same class numbers.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from vidprep.errors import UsageError
from vidprep.inputs import InputItem

log = logging.getLogger("vidprep.engine.labels")


@dataclass(frozen=True)
class Labels:
    """Class names and each video's class number (-1 when unlabeled)."""

    class_names: tuple[str, ...] = ()
    by_video: dict[str, int] = field(default_factory=dict)

    def of(self, video_id: str) -> int:
        """Class number of a video, -1 when it has none."""
        return self.by_video.get(video_id, -1)


def from_dirs(videos: Sequence[InputItem]) -> Labels:
    """Class = name of the directory that holds the video."""
    names = {v.video_id: os.path.basename(os.path.dirname(v.path)) for v in videos}
    classes = tuple(sorted(set(names.values())))
    index = {c: i for i, c in enumerate(classes)}
    return Labels(classes, {vid: index[c] for vid, c in names.items()})


def from_csv(path: str, videos: Sequence[InputItem]) -> Labels:
    """Read ``video_id,label`` rows (a header row ``video_id,label`` is allowed); malformed rows are usage errors."""
    rows = _read_rows(path)
    known = {v.video_id for v in videos}
    unknown = [vid for vid in rows if vid not in known]
    if unknown:
        log.warning("%s: %d label rows name no input video (e.g. %r)", path, len(unknown), unknown[0])
    classes = tuple(sorted(set(rows.values())))
    index = {c: i for i, c in enumerate(classes)}
    return Labels(classes, {vid: index[c] for vid, c in rows.items() if vid in known})


def read_rows(path: str) -> dict[str, str]:
    """The ``video_id -> class name`` rows of a labels CSV (usage errors for unreadable or malformed files)."""
    return _read_rows(path)


def _read_rows(path: str) -> dict[str, str]:
    from vidprep.named_files import read_text

    try:
        lines = list(csv.reader(io.StringIO(read_text(path), newline="")))
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read labels CSV: {getattr(err, 'strerror', None) or err}", path=path) from None
    rows: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line or all(not cell.strip() for cell in line):
            continue
        if number == 1 and [c.strip().lower() for c in line] == ["video_id", "label"]:
            continue
        if len(line) != 2 or not line[0].strip() or not line[1].strip():
            raise UsageError(f"labels CSV line {number}: expected 'video_id,label', got {','.join(line)!r}", path=path)
        vid, label = line[0].strip(), line[1].strip()
        if rows.get(vid, label) != label:
            raise UsageError(f"labels CSV line {number}: {vid!r} has two labels", path=path)
        rows[vid] = label
    if not rows:  # --labels must take effect (an empty file, or a pipe nobody wrote to)
        raise UsageError("labels CSV holds no 'video_id,label' rows", path=path)
    return rows


def resolve(videos: Sequence[InputItem], *, label_from_dir: bool, labels_csv: str | None) -> Labels:
    """The Labels a run uses, or empty Labels when it has none."""
    if label_from_dir:
        return from_dirs(videos)
    if labels_csv:
        return from_csv(labels_csv, videos)
    return Labels()
