"""Read a frame shard from an earlier vidprep step as a source: per video, frames in chunks plus its clip rows.

This is how `enhance`, `augment` and `features` accept shards instead of videos (and how shell pipelines chain):
frames are streamed from HDF5 in bounded chunks, and the clip rows (ranges, times, labels) are carried over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidprep.errors import ShardError
from vidprep.featurize import ClipRow

CHUNK = 16


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

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (rgb, pts_s, index) chunks of the stored frames, in order."""
        import h5py

        from vidprep.shards.format import decode_jpegs

        with h5py.File(self.path, "r") as f:
            g = f[f"frames/{self.v}"]
            if "rgb" not in g and "jpeg" not in g:
                raise ShardError(f"video {self.video_id!r} has no stored frames (a feature shard?)", path=self.path)
            n = g["pts_s"].shape[0]
            for a in range(0, n, CHUNK):
                b = min(n, a + CHUNK)
                rgb = g["rgb"][a:b] if "rgb" in g else decode_jpegs(g["jpeg"][a:b])
                yield rgb, g["pts_s"][a:b], g["index"][a:b]


def iter_videos(path: str | Path) -> Iterator[ShardVideo]:
    """Every video of a frame shard, with its clip rows, in stored order."""
    import h5py

    from vidprep.shards.format import VIDEO_FIELDS, read_json_attr

    with h5py.File(path, "r") as f:
        if str(f.attrs.get("kind")) != "frames":
            raise ShardError("input shard holds no frames (kind is not 'frames')", path=str(path))
        classes = read_json_attr(f, "meta/class_names", default=[]) or []
        videos = {k: f["videos"][k][:] for k in VIDEO_FIELDS}
        offsets = f["videos/clip_offset"][:]
        clips = {k: f["clips"][k][:] for k in f["clips"] if k != "features"}
    for v in range(len(offsets) - 1):
        meta = {k: _plain(videos[k][v]) for k in VIDEO_FIELDS if k not in ("id", "source")}
        rows = [_row(clips, i) for i in range(int(offsets[v]), int(offsets[v + 1]))]
        yield ShardVideo(str(path), v, _plain(videos["id"][v]), _plain(videos["source"][v]), meta, rows, list(classes))


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


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.generic):
        return value.item()
    return value
