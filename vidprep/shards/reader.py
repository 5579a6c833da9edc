"""ShardSet: read vidprep shards with h5py + numpy only (DESIGN §4, docs/format.md).

Files are opened lazily, once per process: the set stores paths, opens a file on first access and notices a fork
(the pid changed) or unpickling, so it works as a DataLoader dataset under fork, spawn and forkserver. Each shard's
small clip columns are read once and cached; frames and features are read per access.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import h5py
import numpy as np

from vidprep.errors import ShardError
from vidprep.shards import format as fmt
from vidprep.shards.jpeg import decode_jpegs
from vidprep.shards import trust
from vidprep.types import pad_tail

log = logging.getLogger("vidprep.shards.reader")

Transform = Callable[[np.ndarray], np.ndarray]
_ROW_FIELDS = ("clip_index", "aug_index", "start_s", "end_s", "label", "padded")


class ShardSet:
    """All clip rows of one or more shards as one sequence; ``len`` is the total number of clip rows.

    Arguments:
        path_or_paths: an output directory (its ``shard-*.h5``), a shard file, or a list of either.
        normalization: optional ``transform(features) -> features`` applied to feature batches (n,D) or (n,T,D).
        frames: return pixels; default True for frame shards, False for feature shards (which may keep none).
    Raises:
        ShardError: no shards, a file that is not a valid shard (shards are untrusted: see `vidprep.shards.trust`),
            or shards of different kinds or class names mixed.
    """

    def __init__(self, path_or_paths: str | Path | Iterable[str | Path], *,
                 normalization: Transform | None = None, frames: bool | None = None) -> None:
        self.paths = [str(p) for p in fmt.find_shards(path_or_paths)]
        if not self.paths:
            raise ShardError(f"no shards found in {path_or_paths}")
        self.normalization = normalization
        self._index()
        self.frames = self.kind == "frames" if frames is None else frames
        self._reset()

    def _index(self) -> None:
        """Read kind, class names, clip counts and video ids of every shard (then close them all)."""
        kinds, classes, counts, self._ids = set(), [], [], []
        for path in self.paths:
            with trust.open_shard(path) as f:  # untrusted: no links, external or virtual data; layout valid
                kinds.add(str(f.attrs.get("kind")))
                classes.append(fmt.read_json_attr(f, fmt.META_CLASSES, default=[]) or [])
                counts.append(int(f["clips/video_index"].shape[0]))
                self._ids.append(f["videos/id"].asstr()[:].tolist())
        if len(kinds) != 1 or any(c != classes[0] for c in classes):
            raise ShardError(f"cannot mix shards of kinds {sorted(kinds)} or with different class names")
        self.kind: str = kinds.pop()
        self.class_names: list[str] = classes[0]
        self._counts = counts
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64).tolist()
        self._where: dict[str, tuple[int, int]] = {}
        for i, ids in enumerate(self._ids):
            for v, vid in enumerate(ids):
                if vid in self._where:
                    log.warning("video %r is in %s and %s", vid, self.paths[self._where[vid][0]], self.paths[i])
                self._where.setdefault(vid, (i, v))

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._files: dict[int, h5py.File] = {}
        self._tables: dict[int, dict[str, np.ndarray]] = {}
        self._pixels: dict[tuple[int, int], str | None] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_files", "_tables", "_pixels"):
            state[key] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next access)."""
        if self._pid == os.getpid():
            for f in self._files.values():
                f.close()
        self._reset()

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    @property
    def shard_sizes(self) -> list[int]:
        """Clip rows per shard, in ``paths`` order (global row numbers run shard after shard)."""
        return list(self._counts)

    def videos(self) -> list[str]:
        """Video ids in shard order."""
        return [vid for ids in self._ids for vid in ids]

    def _file(self, i: int) -> h5py.File:
        if self._pid != os.getpid():  # forked: handles opened by the parent must not be used here
            self._reset()
        if i not in self._files:
            self._files[i] = trust.open_shard(self.paths[i], layout=False)  # checked again: it may have changed
        return self._files[i]

    def _table(self, i: int) -> dict[str, np.ndarray]:
        """Clip columns of shard i (everything but features), cached per process."""
        f = self._file(i)
        if i not in self._tables:
            cols = {k: f["clips"][k][:] for k in fmt.CLIP_FIELDS if k != "aug_params"}
            cols["aug_params"] = f["clips/aug_params"].asstr()[:]
            self._tables[i] = cols
        return self._tables[i]

    def locate(self, row: int) -> tuple[int, int]:
        """(shard number, row within that shard) of a global row; negative rows count from the end."""
        n = len(self)
        if not -n <= row < n:
            raise IndexError(f"row {row} out of range for {n} clips")
        row %= n
        i = bisect.bisect_right(self._starts, row) - 1
        return i, row - self._starts[i]

    def __getitem__(self, row: int) -> dict[str, Any]:
        """One clip: frames (T,H,W,3) uint8 or features, label, label_name, video_id, clip_index, aug_index,
        start_s, end_s, pts_s, index, padded, aug_params, shard (path), row (within the shard)."""
        i, r = self.locate(int(row))
        t = self._table(i)
        v = int(t["video_index"][r])
        item = {k: t[k][r].item() for k in _ROW_FIELDS}
        item.update(video_id=self._ids[i][v], label_name=self._label_name(item["label"]), shard=self.paths[i],
                    row=r, aug_params=json.loads(t["aug_params"][r]) if t["aug_params"][r] else {})
        item.update(self._clip_frames(i, v, int(t["frame_start"][r]), int(t["frame_stop"][r]), item["padded"]))
        if self.kind == "features":
            item["features"] = self._normalize(self._file(i)["clips/features"][r:r + 1])[0]
        return item

    def _label_name(self, label: int) -> str | None:
        return self.class_names[label] if 0 <= label < len(self.class_names) else None

    def _normalize(self, features: np.ndarray) -> np.ndarray:
        return self.normalization(features) if self.normalization is not None else features

    def _pixel_kind(self, i: int, v: int) -> str | None:
        """"rgb", "jpeg" or None (no pixels stored) for video v of shard i."""
        if (i, v) not in self._pixels:
            g = self._file(i)["frames"][str(v)]
            self._pixels[(i, v)] = next((k for k in ("rgb", "jpeg") if k in g), None)
        return self._pixels[(i, v)]

    def _clip_frames(self, i: int, v: int, start: int, stop: int, padded: int) -> dict[str, np.ndarray]:
        """pts_s, index and (when wanted and stored) frames of rows [start, stop), last row repeated ``padded``x."""
        g = self._file(i)["frames"][str(v)]
        out = {"pts_s": g["pts_s"][start:stop], "index": g["index"][start:stop]}
        kind = self._pixel_kind(i, v) if self.frames else None
        if kind == "rgb":
            out["frames"] = g["rgb"][start:stop]
        elif kind == "jpeg":
            out["frames"] = decode_jpegs(g["jpeg"][start:stop])
        return {k: pad_tail(a, padded) for k, a in out.items()}

    def video(self, video_id: str) -> dict[str, Any]:
        """Everything stored for one video: meta, frames (when stored), pts_s, index, extra per-video arrays
        (e.g. scene_score), and its clip rows (``rows``: rows within the shard; ``clips``: their columns)."""
        if video_id not in self._where:
            raise KeyError(f"no video {video_id!r} in these shards")
        i, v = self._where[video_id]
        f = self._file(i)
        out: dict[str, Any] = {name: _scalar(f["videos"][name], v) for name in fmt.VIDEO_FIELDS}
        out["video_id"] = out.pop("id")
        g = f["frames"][str(v)]
        kind = self._pixel_kind(i, v)
        for name in g:
            if name == "jpeg":
                out["frames"] = decode_jpegs(g["jpeg"][:])
            else:
                out["frames" if name == "rgb" else name] = g[name][:]
        a, b = (int(x) for x in f["videos/clip_offset"][v:v + 2])
        t = self._table(i)
        out.update(shard=self.paths[i], pixels=kind, rows=np.arange(a, b),
                   clips={k: col[a:b] for k, col in t.items() if k != "video_index"})
        if self.kind == "features":
            out["clips"]["features"] = self._normalize(f["clips/features"][a:b])
        return out

    def iter_blocks(self, n: int) -> Iterator[dict[str, Any]]:
        """Yield dicts of stacked columns for ``n`` rows at a time (the last block may be shorter).

        Keys: label, video_id, clip_index, aug_index, start_s, end_s, padded, shard, row, features (feature shards),
        frames (when read: one (n,T,H,W,3) array when all clips share a shape, else a list of arrays).
        """
        if n < 1:
            raise ValueError(f"block size must be >= 1, got {n}")
        pieces: list[dict[str, Any]] = []
        have = 0
        for i, count in enumerate(self._counts):
            a = 0
            while a < count:
                b = min(count, a + n - have)
                pieces.append(self._block(i, a, b))
                have, a = have + b - a, b
                if have == n:
                    yield _concat(pieces)
                    pieces, have = [], 0
        if pieces:
            yield _concat(pieces)

    def _block(self, i: int, a: int, b: int) -> dict[str, Any]:
        t = self._table(i)
        vids = t["video_index"][a:b]
        block: dict[str, Any] = {k: t[k][a:b] for k in _ROW_FIELDS}
        block["video_id"] = np.array([self._ids[i][v] for v in vids], dtype=object)
        block["shard"] = np.array([self.paths[i]] * (b - a), dtype=object)
        block["row"] = np.arange(a, b)
        if self.kind == "features":
            block["features"] = self._normalize(self._file(i)["clips/features"][a:b])
        if self.frames:
            spans = zip(vids, t["frame_start"][a:b], t["frame_stop"][a:b], t["padded"][a:b])
            clips = [self._clip_frames(i, int(v), int(s), int(e), int(p)).get("frames") for v, s, e, p in spans]
            if all(c is not None for c in clips):
                block["frames"] = clips
        return block


def _scalar(ds: h5py.Dataset, v: int) -> Any:
    value = ds[v]
    return value.decode("utf-8") if isinstance(value, bytes) else value.item()


def _concat(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    """Join per-shard pieces of a block; frames are stacked when all clips share one shape."""
    out: dict[str, np.ndarray | list[np.ndarray]] = {
        k: np.concatenate([p[k] for p in pieces]) for k in pieces[0] if k != "frames"}
    if all("frames" in p for p in pieces):
        frames = [c for p in pieces for c in p["frames"]]
        same = len({c.shape for c in frames}) == 1
        out["frames"] = np.stack(frames) if same else frames
    return out
