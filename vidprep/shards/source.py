"""Read a frame shard from an earlier vidprep step as a source: per video, frames in chunks plus its clip rows.

This is how `enhance`, `augment` and `features` accept shards instead of videos (and how shell pipelines chain):
frames are streamed from HDF5 in bounded chunks, and the clip rows (ranges, times, labels) are carried over.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidprep.errors import ShardError
from vidprep.types import FRAME_CHUNK, ClipRow

log = logging.getLogger("vidprep.shards.source")


@dataclass
class ShardVideo:
    """One video of an input shard: identity, metadata and its clip rows; frames via `chunks()`."""

    path: str
    v: int
    video_id: str
    source: str
    meta: dict
    rows: list[ClipRow]
    class_names: list[str]
    file: Any = field(default=None, repr=False, compare=False)  # the checked, open shard (see iter_videos)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (rgb, pts_s, index) chunks of the stored frames, in order."""
        from vidprep.shards.jpeg import decode_jpegs

        if self.file is None or not self.file.id.valid:
            raise ShardError("input shard is closed (read its videos while iterating iter_videos)", path=self.path)
        g = self.file[f"frames/{self.v}"]
        if "rgb" not in g and "jpeg" not in g:
            raise ShardError(f"video {self.video_id!r} has no stored frames (a feature shard?)", path=self.path)
        n = g["pts_s"].shape[0]
        for a in range(0, n, FRAME_CHUNK):
            b = min(n, a + FRAME_CHUNK)
            rgb = g["rgb"][a:b] if "rgb" in g else decode_jpegs(g["jpeg"][a:b])
            yield rgb, g["pts_s"][a:b], g["index"][a:b]


def iter_videos(path: str | Path) -> Iterator[ShardVideo]:
    """Every video of a frame shard, with its clip rows, in stored order.

    The shard is untrusted: it is opened through `shards.trust.open_shard` (no links, external storage or virtual
    datasets; layout, counts, frame sizes and video ids checked) and stays open while its videos are consumed.

    Raises:
        ShardError: the file is not a valid vidprep frame shard.
    """
    from vidprep.shards.format import VIDEO_FIELDS, read_json_attr
    from vidprep.shards.trust import open_shard

    with open_shard(path) as f:
        if str(f.attrs.get("kind")) != "frames":
            raise ShardError("input shard holds no frames (kind is not 'frames')", path=str(path))
        classes = read_json_attr(f, "meta/class_names", default=[]) or []
        videos = {k: f["videos"][k][:] for k in VIDEO_FIELDS}
        offsets = f["videos/clip_offset"][:]
        clips = {k: f["clips"][k][:] for k in f["clips"] if k not in ("features", "quality", "phash")}
        for v in range(len(offsets) - 1):
            meta = {k: _plain(videos[k][v]) for k in VIDEO_FIELDS if k not in ("id", "source")}
            rows = [_row(clips, i) for i in range(int(offsets[v]), int(offsets[v + 1]))]
            yield ShardVideo(str(path), v, _plain(videos["id"][v]), _plain(videos["source"][v]), meta, rows,
                             list(classes), f)


def class_names(path: str | Path) -> list[str]:
    """Class names stored in an input shard; [] when it has none or cannot be read (`iter_videos` reports why)."""
    from vidprep.shards.format import read_json_attr
    from vidprep.shards.trust import open_shard

    try:
        with open_shard(path) as f:
            names = read_json_attr(f, "meta/class_names", default=[]) or []
    except Exception as err:  # noqa: BLE001 - the same file fails again, as one error record, in iter_videos
        log.debug("no class names from %s: %s", path, err)
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _row(clips: dict, i: int) -> ClipRow:
    params = _plain(clips["aug_params"][i]) if "aug_params" in clips else ""
    return ClipRow(
        frame_start=int(clips["frame_start"][i]),
        frame_stop=int(clips["frame_stop"][i]),
        padded=int(clips["padded"][i]) if "padded" in clips else 0,
        start_s=float(clips["start_s"][i]),
        end_s=float(clips["end_s"][i]),
        clip_index=int(clips["clip_index"][i]),
        aug_index=int(clips["aug_index"][i]),
        label=int(clips["label"][i]),
        aug_params=json.loads(params) if params else None,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.generic):
        return value.item()
    return value
