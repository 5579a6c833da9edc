"""The WebDataset output (``--format wds``): one tar per unit, one sample per clip (`vidprep.shards.wds_tar`).

A unit is finished when its tar exists under its final name; tars manifest.json lists are trusted from it, a tar
missing from it (a crash between the rename and the manifest update) is read back (`vidprep.shards.wds_read`),
recorded, and its stored failures put back in errors.jsonl, as for HDF5 shards.

Frames (``--wds-media jpg``, the default, or ``mp4``): a clip's samples are built when its row arrives, from the
frames kept in a scratch file, and held in memory until the next video starts or the unit commits, so a video that
fails after some of its clips were built leaves nothing in the tar (a tar cannot drop a member once written).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidprep.engine.framestore import ScratchFrames
from vidprep.engine.sinks import Made, SinkSpec, error_record, restore_errors
from vidprep.errors import printable_path
from vidprep.types import VideoResult

log = logging.getLogger("vidprep.engine.sinks.wds")


class WdsOutput:
    """The sink kind of ``--format wds``."""

    def __init__(self, name: str = "wds") -> None:
        self.name = name

    def unit_path(self, out: Path, unit: int | str) -> Path:
        """The tar of unit ``unit`` (a unit index, or an input shard's name: ``x.h5`` becomes ``x.tar``)."""
        from vidprep.shards.wds_tar import tar_name

        return Path(out) / (tar_name(unit) if isinstance(unit, int) else Path(unit).stem + ".tar")

    def shown_name(self, name: str) -> str:
        return name

    def finished(self, out: Path) -> dict[str, Made]:
        """Tar name -> what its unit was made from, for every tar on disk."""
        from vidprep.errors import ShardError
        from vidprep.shards.manifest import fsync_and_hash, load, record_shard
        from vidprep.shards.wds_read import read_unit
        from vidprep.shards.wds_tar import TAR_RE

        listed = {s["name"]: s for s in load(out).get("shards", [])}
        found = {}
        for path in sorted(p for p in out.iterdir() if TAR_RE.match(p.name)):
            entry = listed.get(path.name)
            if entry is not None and "input_ids" in entry:
                found[path.name] = Made(set(entry["input_ids"]))
                continue
            try:
                unit = read_unit(path)
            except ShardError as err:  # not ours or damaged: redo the unit (the new tar replaces it)
                log.warning("%s; the unit is processed again", err)
                continue
            digest, size = fsync_and_hash(path)
            stored = unit.get("video_ids", [])
            record_shard(out, {"name": path.name, "path": str(path), "kind": unit.get("kind"), "videos": len(stored),
                               "clips": unit.get("samples"), "frames": unit.get("frames"), "bytes": size,
                               "sha256": digest, "video_ids": stored}, inputs=unit.get("input_ids", []))
            restore_errors(out, unit.get("errors", []))
            found[path.name] = Made(set(unit.get("input_ids", [])))
        return found

    def before_units(self, out: Path, todo: list) -> None:
        """Nothing: temp tars of crashed writers are cleaned when the output is prepared."""

    def finish(self, out: Path) -> None:
        """Nothing: each tar is complete when published and recorded in the manifest."""

    def clear(self, out: Path) -> None:
        """Remove every tar shard (for --overwrite)."""
        from vidprep.shards.wds_tar import TAR_RE

        for path in [p for p in out.iterdir() if TAR_RE.match(p.name)] if out.is_dir() else []:
            path.unlink()

    def open(self, spec: SinkSpec, path: Path, class_names: list[str], stages: Callable[[], dict]) -> WdsSink:
        return WdsSink(spec, path, class_names, stages)


class _Meta:
    """What `vidprep.stages.zero_shot` stores through ``sink.writer``: text labels and their embeddings."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.embeddings: bytes | None = None

    def set_meta(self, name: str, value: str) -> None:
        self.values[name] = value

    def set_meta_array(self, name: str, data: np.ndarray) -> None:
        from io import BytesIO

        buf = BytesIO()
        np.save(buf, np.asarray(data), allow_pickle=False)
        self.embeddings = buf.getvalue()


class WdsSink:
    """Writes one unit's tar: frame samples (jpg/mp4 + json) or feature samples (npy + json)."""

    def __init__(self, spec: SinkSpec, path: Path, class_names: list[str], stages: Callable[[], dict]) -> None:
        from vidprep.shards.wds_tar import TarShardWriter

        output = spec.config.output
        self.keeps_frames = spec.kind == "frames"
        self.media, self.quality = output.wds_media, output.jpeg_quality
        self.out_dir = Path(spec.out_dir)
        self.class_names = list(class_names)
        self.config_record, self.stages = spec.config_record, stages
        self.tar = TarShardWriter(path, spec.kind)
        self.writer = _Meta()
        self.videos: list[dict] = []
        self.stores: dict[int, ScratchFrames] = {}
        self.pending: dict[int, list[tuple[str, list[tuple[str, bytes]], int]]] = {}
        self.failed: list[dict] = []

    def add_video(self, video_id: str, source: str, meta: dict) -> int:
        self._flush()
        v = len(self.videos)
        self.videos.append({"video_id": video_id, "source": source, "meta": meta, "pts": [], "idx": [],
                            "dropped": False, "rows": 0})
        if self.keeps_frames:
            self.stores[v] = ScratchFrames(str(self.out_dir))
        self.pending[v] = []
        return v

    def append_frames(self, v: int, rgb: np.ndarray, pts: np.ndarray, idx: np.ndarray) -> int:
        rec = self.videos[v]
        rec["pts"].extend(np.asarray(pts, np.float64).tolist())
        rec["idx"].extend(np.asarray(idx, np.int64).tolist())
        if self.keeps_frames:
            return self.stores[v].append(rgb)
        start, rec["rows"] = rec["rows"], rec["rows"] + len(pts)
        return start

    def read_frames(self, v: int, start: int, stop: int) -> np.ndarray:
        return self.stores[v].read(start, stop)

    def set_video_array(self, v: int, name: str, data: np.ndarray) -> None:
        """Per-video arrays (scene scores) have no place in a per-clip sample; they are not kept."""

    def add_clip(self, v: int, **row: Any) -> None:
        """Build the clip's sample now (frames encoded); it joins the tar when its video is complete."""
        from vidprep.shards.wds_tar import json_bytes, sample_key

        rec = self.videos[v]
        start, stop, padded = int(row["frame_start"]), int(row["frame_stop"]), int(row["padded"])
        key = sample_key(rec["video_id"], row["clip_index"], row["aug_index"])
        members: list[tuple[str, bytes]] = [("json", json_bytes(self._meta(rec, row, start, stop)))]
        if self.keeps_frames:
            frames = self.read_frames(v, start, stop)
            if padded:
                frames = np.concatenate([frames, np.repeat(frames[-1:], padded, axis=0)])
            members += self._media(frames, rec["pts"][start:stop])
        if row.get("features") is not None:
            members.append(("npy", _npy(row["features"])))
        self.pending[v].append((key, members, stop - start + padded))

    def _meta(self, rec: dict, row: dict, start: int, stop: int) -> dict:
        label = int(row["label"])
        meta: dict[str, Any] = {
            "video_id": rec["video_id"], "source": printable_path(rec["source"]),
            "clip_index": int(row["clip_index"]), "aug_index": int(row["aug_index"]),
            "label": label, "label_name": self.class_names[label] if 0 <= label < len(self.class_names) else "",
            "start_s": float(row["start_s"]), "end_s": float(row["end_s"]),
            "frames": stop - start + int(row["padded"]), "padded": int(row["padded"]),
            "ordinals": rec["idx"][start:stop], "pts_s": rec["pts"][start:stop],
            "aug_params": json.dumps(row["aug_params"], sort_keys=True, ensure_ascii=False, default=str)
            if row.get("aug_params") else "",
            "video": {k: _plain(val) for k, val in sorted(rec["meta"].items())},
        }
        if row.get("quality"):
            meta["quality"] = {k: float(val) for k, val in sorted(row["quality"].items())}
        if row.get("phash") is not None:
            meta["phash"] = [f"{int(h):016x}" for h in np.asarray(row["phash"]).ravel()]
        for name, value in sorted((row.get("extra") or {}).items()):  # e.g. text_scores
            meta[name] = np.asarray(value, np.float64).tolist()
        return meta

    def _media(self, frames: np.ndarray, pts: list[float]) -> list[tuple[str, bytes]]:
        from vidprep.shards.jpeg import encode_jpeg

        if self.media == "jpg":
            return [(f"{i:04d}.jpg", encode_jpeg(frame, self.quality).tobytes()) for i, frame in enumerate(frames)]
        return [("mp4", _mp4_bytes(self.out_dir, frames, _rate(pts)))]

    def drop_video(self, v: int) -> None:
        """Forget a failed video: its samples never reach the tar."""
        self.videos[v]["dropped"] = True
        self.pending.pop(v, None)
        self._close_store(v)

    def record_errors(self, failed: list[VideoResult]) -> None:
        self.failed = [error_record(r) for r in failed]

    def _flush(self) -> None:
        """Write the samples of every finished video (all but a failed one) into the tar, in video order."""
        for v in sorted(self.pending):
            for key, members, frames in self.pending.pop(v):
                self.tar.add_sample(key, members, frames)
            self._close_store(v)

    def commit(self) -> Any:
        """Write the remaining samples and the unit record; publish the tar atomically. Returns its ShardSummary."""
        self._flush()
        kept = [r["video_id"] for r in self.videos if not r["dropped"]]
        inputs = sorted({*(r["video_id"] for r in self.videos), *(str(e["video_id"]) for e in self.failed
                                                                   if e.get("video_id") is not None)})
        unit = {"video_ids": kept, "input_ids": inputs, "errors": self.failed, "class_names": self.class_names,
                "config": {**self.config_record, **self.stages()}, "media": self.media if self.keeps_frames else None,
                "text_labels": json.loads(self.writer.values["text_labels_json"])
                if "text_labels_json" in self.writer.values else None}
        return self.tar.commit(unit, self.writer.embeddings)

    def _close_store(self, v: int) -> None:
        store = self.stores.pop(v, None)
        if store is not None:
            store.close()

    def __enter__(self) -> WdsSink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        for v in list(self.stores):
            self._close_store(v)
        if exc_type is not None:
            self.tar.abort()


def _npy(array: np.ndarray) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _mp4_bytes(out_dir: Path, frames: np.ndarray, fps: float) -> bytes:
    """A frame-exact mp4 of ``frames`` (the same encoder as ``--format mp4``), via a temp file in OUT."""
    from vidprep.media.encode import write_mp4
    from vidprep.shards.atomic import temp_path_for

    target = temp_path_for(out_dir / "clip.mp4")  # a temp name: cleanup removes it should we die here
    try:
        write_mp4(target, frames, fps=fps, sync_dir=False)
        return target.read_bytes()
    finally:
        target.unlink(missing_ok=True)


def _rate(pts: list[float]) -> float:
    """Frame rate of a clip from its timestamps (median interval), 25 when it cannot be told (as --format mp4)."""
    if len(pts) < 2:
        return 25.0
    step = float(np.median(np.diff(np.asarray(pts, dtype=np.float64))))
    return 1.0 / step if step > 0 else 25.0


def _plain(value: Any) -> Any:
    """A JSON-safe scalar of video metadata (numpy numbers to Python; NaN kept)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
