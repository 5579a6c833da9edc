"""ShardWriter: the only way vidprep writes a shard (DESIGN §4); one work unit becomes one shard.

Everything goes to a hidden temp file next to the final name; `commit()` writes the tables, validates, fsyncs the
file and its directory and renames it into place, so a shard exists under its final name only when complete.
Frames are appended as decoded (memory does not grow with video length); clip rows are small Python lists until
commit (about 0.3 KB per row), when they are written sorted by video.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from vidprep import __version__
from vidprep.errors import ShardError
from vidprep.shards import atomic
from vidprep.shards import format as fmt
from vidprep.shards.clip_extras import ClipExtras
from vidprep.shards.jpeg import decode_jpegs, encode_jpeg
from vidprep.shards.manifest import ShardSummary, fsync_and_hash
from vidprep.shards.storage import DiscardableFile, FeatureStore, extend_rows

log = logging.getLogger("vidprep.shards.writer")

FRAME_CHUNK_BYTES = 256 * 1024
PER_FRAME_CHUNK = 1024


class ShardWriter:
    """Write one shard: videos with their frame runs, then clip rows pointing at them; `commit()` or `abort()`.

    Use as a context manager: leaving the block without `commit()` (or by an exception) removes the temp file.

    Arguments:
        path: final shard path (``OUT/shard-00003.h5``); its directory must exist.
        kind: ``"frames"`` or ``"features"`` (then every clip carries features).
        config: effective config, stored as /meta/config_json. class_names: stored as /meta/class_names.
        frame_codec: ``"raw"`` (uint8 arrays) or ``"jpeg"`` (one JPEG per frame, ``jpeg_quality``).
        store_frames: False keeps only pts_s/index per video (feature shards).
        frame_compression: None or ``"gzip"`` for raw frames.
        feature_buffer_bytes: feature rows kept in RAM before spilling to the file.
    Raises:
        ShardError: bad option, bad data, or a shard that fails validation at commit.
    """

    def __init__(
        self, path: str | Path, *, kind: Literal["frames", "features"], config: dict,
        class_names: list[str] | None = None, frame_codec: Literal["raw", "jpeg"] = "raw", jpeg_quality: int = 90,
        store_frames: bool = True, frame_compression: Literal["gzip"] | None = None,
        feature_buffer_bytes: int = 64 * 2**20,
    ) -> None:
        self.path = Path(path)
        self._check_options(kind, frame_codec, jpeg_quality, store_frames, frame_compression)
        self.kind, self.frame_codec, self.jpeg_quality = kind, frame_codec, jpeg_quality
        self.store_frames, self.frame_compression = store_frames, frame_compression
        self.class_names = list(class_names or [])
        if not self.path.parent.is_dir():
            raise ShardError("output directory does not exist", path=str(self.path.parent))
        self.temp_path = atomic.temp_path_for(self.path)
        self._videos: list[dict | None] = []
        self._clips: dict[str, list] = {k: [] for k in fmt.CLIP_FIELDS}
        self._extras = ClipExtras()
        self._state = "open"
        self._raw = DiscardableFile(self.temp_path)
        try:
            atomic.claim(self.temp_path)  # lock + heartbeat: cleanup by another task never takes a live shard
            self._f = h5py.File(self._raw, "w")
            self._init_file(config)
            self._features = FeatureStore(self._f["clips"], feature_buffer_bytes) if kind == "features" else None
        except BaseException:
            self.abort()
            raise
        log.debug("writing %s via %s", self.path, self.temp_path.name)

    @staticmethod
    def _check_options(kind: str, codec: str, quality: int, store_frames: bool, compression: str | None) -> None:
        """Fail on a bad option before the temp file exists."""
        for bad, message in (
            (kind not in fmt.KINDS, f"kind must be one of {fmt.KINDS}, got {kind!r}"),
            (codec not in fmt.FRAME_CODECS, f"frame_codec must be one of {fmt.FRAME_CODECS}, got {codec!r}"),
            (not 1 <= int(quality) <= 100, f"jpeg_quality must be in [1, 100], got {quality}"),
            (kind == "frames" and not store_frames, "a frames shard must store frames (store_frames is for features)"),
            (compression not in (None, "gzip"), f"frame_compression must be None or 'gzip', got {compression!r}"),
        ):
            if bad:
                raise ShardError(message)

    def _init_file(self, config: dict) -> None:
        f = self._f
        f.attrs.update({
            "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "vidprep_version": __version__,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": self.kind,
            "frame_codec": self.frame_codec if self.store_frames else "none",
        })
        for group in ("meta", "videos", "clips", "frames"):
            f.create_group(group)
        text = json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)
        f.create_dataset(fmt.META_CONFIG, data=text, dtype=fmt.STR)
        f.create_dataset(fmt.META_CLASSES, data=json.dumps(self.class_names, ensure_ascii=False), dtype=fmt.STR)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._state == "open":
            if exc_type is None:
                log.warning("shard writer for %s closed without commit(); shard discarded", self.path)
            self.abort()

    def add_video(self, video_id: str, source: str, meta: dict) -> int:
        """Start a video; returns its number v. ``meta`` holds duration_s, fps, width, height, rotation, sar, codec."""
        self._require_open()
        if any(v is not None and v["id"] == video_id for v in self._videos):
            raise ShardError(f"video id {video_id!r} is already in this shard", path=str(self.path))
        unknown = set(meta) - set(fmt.VIDEO_DEFAULTS)
        if unknown:
            raise ShardError(f"unknown video meta field(s): {', '.join(sorted(unknown))}")
        v = len(self._videos)
        record = {**fmt.VIDEO_DEFAULTS, **{k: x for k, x in meta.items() if x is not None}}
        self._videos.append({**record, "id": str(video_id), "source": str(source), "frames": 0})
        g = self._f["frames"].create_group(str(v))
        for name, dtype in (("pts_s", np.float64), ("index", np.int64)):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(PER_FRAME_CHUNK,))
        if self.store_frames and self.frame_codec == "jpeg":
            g.create_dataset("jpeg", shape=(0,), maxshape=(None,), dtype=fmt.JPEG_DTYPE, chunks=(64,))
            g["jpeg"].attrs["quality"] = self.jpeg_quality
        return v

    def append_frames(self, v: int, rgb: np.ndarray | None, pts_s: np.ndarray, index: np.ndarray) -> int:
        """Append a run of frames (n,H,W,3) uint8 RGB to video v; returns the row of its first frame.

        ``rgb`` is None when the shard keeps no pixels (feature shards with store_frames=False).
        """
        self._raw.check()
        video = self._video(v)
        pts = np.asarray(pts_s, dtype=np.float64).reshape(-1)
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(idx) != len(pts):
            raise ShardError(f"pts_s has {len(pts)} entries but index has {len(idx)}")
        g = self._f["frames"][str(v)]
        if self.store_frames:
            self._append_pixels(g, rgb, len(pts))
        elif rgb is not None:
            raise ShardError("this writer stores no frames (store_frames=False); pass rgb=None")
        extend_rows(g["pts_s"], pts)
        extend_rows(g["index"], idx)
        first = video["frames"]
        video["frames"] += len(pts)
        return first

    def _append_pixels(self, g: h5py.Group, rgb: np.ndarray | None, n: int) -> None:
        if rgb is None or rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[3] != 3 or rgb.shape[0] != n:
            got = None if rgb is None else f"{rgb.shape} {rgb.dtype}"
            raise ShardError(f"frames must be ({n},H,W,3) uint8 RGB matching pts_s, got {got}")
        if self.frame_codec == "jpeg":
            ds, n0 = g["jpeg"], g["jpeg"].shape[0]
            ds.resize(n0 + n, axis=0)
            for i in range(n):  # one by one: h5py reads an object array of equal-length buffers as 2-D
                ds[n0 + i] = encode_jpeg(rgb[i], self.jpeg_quality)
            return
        if "rgb" not in g:
            per_chunk = int(np.clip(FRAME_CHUNK_BYTES // max(1, rgb[0].nbytes), 1, 16))
            g.create_dataset("rgb", shape=(0, *rgb.shape[1:]), maxshape=(None, *rgb.shape[1:]), dtype=np.uint8,
                             chunks=(per_chunk, *rgb.shape[1:]), compression=self.frame_compression)
        elif g["rgb"].shape[1:] != rgb.shape[1:]:
            raise ShardError(f"frames of one video must share one size with frame_codec='raw': stored "
                             f"{g['rgb'].shape[1:3]}, got {rgb.shape[1:3]} (use frame_codec='jpeg')")
        extend_rows(g["rgb"], rgb)

    def read_frames(self, v: int, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of video v's frames already appended, as (n,H,W,3) uint8 RGB."""
        video = self._video(v)
        if not 0 <= start <= stop <= video["frames"]:
            raise ShardError(f"frame rows [{start}, {stop}) outside video {v}'s {video['frames']} frames")
        if not self.store_frames:
            raise ShardError("this writer stores no frames (store_frames=False)")
        g = self._f["frames"][str(v)]
        if self.frame_codec == "raw":
            return g["rgb"][start:stop]
        return decode_jpegs(g["jpeg"][start:stop])

    def set_video_array(self, v: int, name: str, data: np.ndarray) -> None:
        """Store an extra per-video array at /frames/<v>/<name> (e.g. ``scene_score``); replaces an earlier one."""
        self._video(v)
        if name in fmt.FRAME_RESERVED or not name.isidentifier():
            raise ShardError(f"invalid video array name {name!r} (reserved: {', '.join(fmt.FRAME_RESERVED)})")
        g = self._f["frames"][str(v)]
        if name in g:
            del g[name]
        g.create_dataset(name, data=np.asarray(data))

    def add_clip(
        self, v: int, *, frame_start: int, frame_stop: int, start_s: float, end_s: float, clip_index: int,
        aug_index: int = 0, label: int = -1, padded: int = 0, aug_params: dict | None = None,
        features: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None,
        quality: dict[str, float] | None = None, phash: np.ndarray | None = None,
    ) -> None:
        """Add a clip row: frame rows [frame_start, frame_stop) of video v, plus ``padded`` repeats of the last.

        ``extra`` holds per-clip arrays stored as extra /clips/<name> columns (e.g. ``text_scores``); every row of
        a shard must give the same names with the same shape. ``quality`` (metric name -> value) and ``phash`` (K,)
        uint64 become /clips/quality/<name> and /clips/phash."""
        self._video(v)
        if (features is None) == (self.kind == "features"):
            raise ShardError("features are required in a features shard and not allowed in a frames shard")
        if not 0 <= frame_start < frame_stop:
            raise ShardError(f"clip frame range [{frame_start}, {frame_stop}) is empty or negative")
        row = {
            "video_index": v, "frame_start": frame_start, "frame_stop": frame_stop, "clip_index": clip_index,
            "aug_index": aug_index, "start_s": start_s, "end_s": end_s, "label": label, "padded": padded,
            "aug_params": json.dumps(aug_params, sort_keys=True, ensure_ascii=False, default=str)
            if aug_params else "",
        }
        if self._features is not None and features is not None:  # both or neither: checked above
            self._features.add(features)
        self._add_extra(extra or {})
        self._extras.add(quality, phash)
        for key, value in row.items():
            self._clips[key].append(value)

    def _add_extra(self, extra: dict[str, np.ndarray]) -> None:
        if not hasattr(self, "_extra"):
            self._extra: dict[str, list[np.ndarray]] = {k: [] for k in extra}
        if set(extra) != set(self._extra) or any(
                k in fmt.CLIP_FIELDS or k == "features" or not k.isidentifier() for k in extra):
            raise ShardError(f"extra clip columns must be the same valid names on every row, got {sorted(extra)}")
        for key, value in extra.items():
            self._extra[key].append(np.asarray(value))

    def set_meta_array(self, name: str, data: np.ndarray) -> None:
        """Store a numeric array at /meta/<name> (e.g. ``text_embeddings``); replaces an earlier one."""
        self._require_open()
        if not name.isidentifier() or f"meta/{name}" in (fmt.META_CONFIG, fmt.META_CLASSES):
            raise ShardError(f"invalid or reserved meta name {name!r}")
        if name in self._f["meta"]:
            del self._f["meta"][name]
        self._f["meta"].create_dataset(name, data=np.asarray(data))

    def set_config(self, config: dict) -> None:
        """Replace /meta/config_json (a writer may learn what its steps applied only once they have run)."""
        self._require_open()
        del self._f[fmt.META_CONFIG]
        text = json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)
        self._f.create_dataset(fmt.META_CONFIG, data=text, dtype=fmt.STR)

    def set_meta(self, name: str, text: str) -> None:
        """Store an extra UTF-8 string at /meta/<name> (e.g. ``errors_json``: the unit's failures, for recovery)."""
        self._require_open()
        if not name.isidentifier() or f"meta/{name}" in (fmt.META_CONFIG, fmt.META_CLASSES):
            raise ShardError(f"invalid or reserved meta name {name!r}")
        if name in self._f["meta"]:
            del self._f["meta"][name]
        self._f["meta"].create_dataset(name, data=str(text), dtype=fmt.STR)

    def drop_video(self, v: int) -> None:
        """Remove video v and its clips (it failed mid-way); the other videos are renumbered at commit."""
        self._video(v)
        self._videos[v] = None
        del self._f["frames"][str(v)]
        log.debug("dropped video %d from %s", v, self.path.name)

    def commit(self) -> ShardSummary:
        """Finish, validate, fsync and atomically rename the shard into place; returns its summary."""
        self._require_open()
        try:
            kept = self._renumber_groups()
            order = self._clip_order(kept)
            self._write_tables(kept, order)
            for name, rows in getattr(self, "_extra", {}).items():  # extra per-clip columns, in the final order
                shape = rows[0].shape if rows else (0,)
                self._f["clips"].create_dataset(name, data=np.stack([rows[i] for i in order]) if len(order) else
                                                np.zeros((0, *shape), np.float32))
            if self._features is not None:
                self._features.finish(order)
            self._f.close()
            self._raw.flush()
            self._raw.check()
            self._raw.close()
            problems = fmt.validate(self.temp_path)
            if problems:
                raise ShardError("invalid shard: " + "; ".join(problems[:5]), path=str(self.path))
            digest, size = fsync_and_hash(self.temp_path)
            atomic.release(self.temp_path)  # unlocked before the rename, so no reader ever meets our lock
            atomic.publish(self.temp_path, self.path, synced=True)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        videos = self._kept_records(kept)
        summary = ShardSummary(self.path, self.kind, len(videos), len(order), sum(x["frames"] for x in videos),
                               size, digest, tuple(x["id"] for x in videos))
        log.info("wrote %s: %d videos, %d clips", self.path.name, summary.videos, summary.clips)
        return summary

    def abort(self) -> None:
        """Discard the shard: close and remove the temp file. Safe to call more than once."""
        if self._state == "committed":
            return
        self._state = "aborted"
        self._raw.discard()
        try:
            self._f.close()
        except Exception as err:  # closing a half-written file may fail; removing it is what matters
            log.debug("closing %s failed: %s", self.temp_path, err)
        self._raw.close()
        self.temp_path.unlink(missing_ok=True)
        atomic.release(self.temp_path)

    def _require_open(self) -> None:
        if self._state != "open":
            raise ShardError(f"shard writer is {self._state}", path=str(self.path))

    def _video(self, v: int) -> dict:
        self._require_open()
        video = self._videos[v] if 0 <= v < len(self._videos) else None
        if video is None:
            raise ShardError(f"no video {v} in this shard (never added, or dropped)")
        return video

    def _kept_records(self, kept: list[int]) -> list[dict]:
        """The records of the videos ``kept`` (from `_renumber_groups`: none of them dropped)."""
        return [video for video in (self._videos[v] for v in kept) if video is not None]

    def _renumber_groups(self) -> list[int]:
        """Kept writer-side video numbers; their /frames groups are renamed to 0..V-1 (always downwards)."""
        kept = [v for v, x in enumerate(self._videos) if x is not None]
        frames = self._f["frames"]
        for new, old in enumerate(kept):
            g = frames[str(old)]
            if self.store_frames and "rgb" not in g and "jpeg" not in g:
                g.create_dataset("rgb", shape=(0, 0, 0, 3), dtype=np.uint8)
            if new != old:
                frames.move(str(old), str(new))
        return kept

    def _clip_order(self, kept: list[int]) -> np.ndarray:
        """Added-row numbers of the kept clips, stably sorted by video."""
        vid = np.asarray(self._clips["video_index"], dtype=np.int64)
        rows = np.flatnonzero(np.isin(vid, kept))
        return rows[np.argsort(vid[rows], kind="stable")]

    def _write_tables(self, kept: list[int], order: np.ndarray) -> None:
        """Per-video columns, clip columns in ``order`` with videos renumbered, and clip_offset."""
        new_of_old = np.full(len(self._videos) + 1, -1, np.int64)
        new_of_old[kept] = np.arange(len(kept))
        videos = self._kept_records(kept)
        for name, dtype in fmt.VIDEO_FIELDS.items():
            _column(self._f["videos"], name, [x[name] for x in videos], dtype)
        new_v = new_of_old[np.asarray(self._clips["video_index"], np.int64)[order]]
        for name, dtype in fmt.CLIP_FIELDS.items():
            picked = new_v if name == "video_index" else [self._clips[name][i] for i in order]
            _column(self._f["clips"], name, list(picked), dtype)
        self._extras.write(self._f["clips"], order)
        counts = np.bincount(new_v, minlength=len(kept))
        self._f["videos"].create_dataset("clip_offset", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _column(group: h5py.Group, name: str, values: list, dtype: str) -> None:
    """Write one 1-D column, strings as vlen utf-8."""
    if dtype == "str":
        data = np.empty(len(values), dtype=object)
        data[:] = [str(x) for x in values]
        group.create_dataset(name, data=data, dtype=fmt.STR)
    else:
        group.create_dataset(name, data=np.asarray(values, dtype=dtype).reshape(-1))
