"""Where a work unit's output goes: an HDF5 shard (default) or image/mp4 files plus an index.

Both sinks take the same calls from the worker (add_video, append_frames, add_clip, drop_video, commit), and both
make a unit's completion atomic: a shard appears under its final name only when complete; for files, the unit's
index part is renamed into place after every file of the unit is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vidprep.errors import printable_path
from vidprep.framestore import ScratchFrames
from vidprep.safepath import check_id, output_path
from vidprep.types import VideoResult

PARTS_DIR = ".parts"


def unit_output_path(out_dir: str | Path, fmt: str, unit: int | str) -> Path:
    """The file whose existence means a unit is complete; ``unit`` is a unit index or an input shard's name."""
    from vidprep.shards.format import shard_name

    name = shard_name(unit) if isinstance(unit, int) else unit
    if fmt == "h5":
        return Path(out_dir) / name
    return Path(out_dir) / PARTS_DIR / (name.removesuffix(".h5") + ".jsonl")


def open_sink(job: object, path: Path, class_names: list[str], stages: dict) -> ShardSink | FileSink:
    """The sink for this job's output format; ``stages`` describes the stage objects for the shard's config."""
    fmt = job.config.split.format
    if fmt == "h5" or job.kind == "features":
        return ShardSink(job, path, class_names, stages)
    return FileSink(job, path, class_names)


def error_record(result: VideoResult) -> dict:
    """The errors.jsonl record of a failed video."""
    return {
        "path": printable_path(result.path),
        "video_id": result.video_id,
        "stage": result.stage,
        "error_type": result.error_type,
        "message": result.error,
    }


class ShardSink:
    """Writes one shard through ShardWriter; frame shards keep frames, feature shards keep pts/ordinals only."""

    def __init__(self, job: object, path: Path, class_names: list[str], stages: dict) -> None:
        from vidprep.shards.writer import ShardWriter

        split = job.config.split
        self.keeps_frames = job.kind == "frames"
        self.writer = ShardWriter(
            path,
            kind=job.kind,
            config={**job.config_record, **stages},
            class_names=class_names or None,
            frame_codec=split.frame_codec,
            jpeg_quality=split.jpeg_quality,
            store_frames=self.keeps_frames,
        )
        self.add_video = self.writer.add_video
        self.read_frames = self.writer.read_frames
        self.set_video_array = self.writer.set_video_array
        self.add_clip = self.writer.add_clip
        self.drop_video = self.writer.drop_video

    def append_frames(self, v: int, rgb: np.ndarray, pts: np.ndarray, idx: np.ndarray) -> int:
        """Append a frame run (pixels only in frame shards)."""
        return self.writer.append_frames(v, rgb if self.keeps_frames else None, pts, idx)

    def record_errors(self, failed: list[VideoResult]) -> None:
        """Keep the unit's failures inside the shard, so a resumed run can restore errors.jsonl from it."""
        self.writer.set_meta("errors_json", json.dumps([error_record(r) for r in failed], ensure_ascii=False))

    def commit(self) -> object:
        """Close and atomically publish the shard."""
        return self.writer.commit()

    def __enter__(self) -> ShardSink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.writer.abort()


class FileSink:
    """Writes clips as image folders (jpg/png) or frame-exact mp4 files, plus one index part per unit."""

    keeps_frames = True

    def __init__(self, job: object, part_path: Path, class_names: list[str] | None = None) -> None:
        self.out_dir = Path(job.out_dir)
        self.class_names = list(class_names or [])
        self.fmt = job.config.split.format
        self.quality = job.config.split.jpeg_quality
        self.part_path = part_path
        self.videos: list[dict] = []
        self.stores: dict[int, ScratchFrames] = {}
        self.meta: dict[int, dict] = {}
        self.records: list[dict] = []
        self.failed: list[dict] = []
        self.dirs: set[Path] = set()  # folders written into: fsynced once before the index part is published

    def add_video(self, video_id: str, source: str, meta: dict) -> int:
        output_path(self.out_dir, check_id(video_id))  # the id names files: refuse an unsafe one before writing
        v = len(self.videos)
        self.videos.append({"video_id": video_id, "source": source, **meta, "files": [], "pts": [], "idx": []})
        self.stores[v] = ScratchFrames(str(self.out_dir))
        return v

    def append_frames(self, v: int, rgb: np.ndarray, pts: np.ndarray, idx: np.ndarray) -> int:
        rec = self.videos[v]
        rec["pts"].extend(pts.tolist())
        rec["idx"].extend(idx.tolist())
        return self.stores[v].append(rgb)

    def read_frames(self, v: int, start: int, stop: int) -> np.ndarray:
        return self.stores[v].read(start, stop)

    def set_video_array(self, v: int, name: str, data: np.ndarray) -> None:
        self.videos[v][name] = np.asarray(data).tolist()

    def add_clip(self, v: int, **row: object) -> None:
        """Write the clip's frames as files now; remember its index record."""
        rec = self.videos[v]
        start, stop = int(row["frame_start"]), int(row["frame_stop"])
        frames = self.read_frames(v, start, stop)
        pts, idx = rec["pts"][start:stop], rec["idx"][start:stop]
        name = f"{int(row['clip_index']):06d}" + (f"-aug{int(row['aug_index'])}" if row["aug_index"] else "")
        base = output_path(self.out_dir, check_id(rec["video_id"]))
        files = self._write(base, name, frames, idx, pts)
        rec["files"].extend(files)
        self.records.append(self._record(rec, row, files, idx, pts))

    def _write(self, base: Path, name: str, frames: np.ndarray, idx: list, pts: list) -> list[str]:
        from vidprep.media.encode import write_image, write_mp4

        if self.fmt == "mp4":
            target = base / f"{name}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            output_path(self.out_dir, os.path.relpath(target, self.out_dir))
            write_mp4(target, frames, fps=_rate(pts), sync_dir=False)
            self.dirs.add(target.parent)
            return [str(target)]
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        output_path(self.out_dir, os.path.relpath(folder, self.out_dir))
        self.dirs.add(folder)
        out = []
        for frame, ordinal in zip(frames, idx):
            target = folder / f"{int(ordinal):06d}.{self.fmt}"
            write_image(target, frame, quality=self.quality, sync_dir=False)
            out.append(str(target))
        return out

    def _record(self, rec: dict, row: dict, files: list[str], idx: list, pts: list) -> dict:
        return {
            "video_id": rec["video_id"],
            "source": printable_path(rec["source"]),
            "clip_index": int(row["clip_index"]),
            "aug_index": int(row["aug_index"]),
            "label": int(row["label"]),
            "label_name": self.class_names[int(row["label"])] if 0 <= int(row["label"]) < len(self.class_names) else None,
            "start_s": float(row["start_s"]),
            "end_s": float(row["end_s"]),
            "padded": int(row["padded"]),
            "files": [os.path.relpath(f, self.out_dir) for f in files],
            "ordinals": [int(i) for i in idx],
            "pts_s": [float(p) for p in pts],
            "aug_params": row.get("aug_params"),
        }

    def drop_video(self, v: int) -> None:
        """Remove every file a failed video already wrote."""
        rec = self.videos[v]
        for f in rec["files"]:
            Path(f).unlink(missing_ok=True)
        self.records = [r for r in self.records if r["video_id"] != rec["video_id"]]
        self._close_store(v)

    def record_errors(self, failed: list[VideoResult]) -> None:
        self.failed = [error_record(r) for r in failed]

    def commit(self) -> dict:
        """Publish the unit's index part (temp + fsync + rename) once every file it lists is durable."""
        from vidprep.resume import unit_part_header
        from vidprep.shards.atomic import atomic_write_text, fsync_dir

        for folder in sorted(self.dirs):
            fsync_dir(folder)
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [unit_part_header([v["video_id"] for v in self.videos] + [e["video_id"] for e in self.failed])]
        lines += [json.dumps(r, ensure_ascii=False) for r in self.records]
        lines += [json.dumps({"error": e}, ensure_ascii=False) for e in self.failed]
        atomic_write_text(self.part_path, "".join(line + "\n" for line in lines))
        return {"path": str(self.part_path), "clips": len(self.records), "videos": len(self.videos) - len(self.failed)}

    def _close_store(self, v: int) -> None:
        store = self.stores.pop(v, None)
        if store is not None:
            store.close()

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        for v in list(self.stores):
            self._close_store(v)


def merge_index(out_dir: str | Path) -> Path:
    """Concatenate all unit index parts (in unit order) into OUT/index.jsonl, atomically."""
    from vidprep.shards.atomic import writing

    out = Path(out_dir)
    parts = sorted((out / PARTS_DIR).glob("shard-*.jsonl"))
    with writing(out / "index.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as dst:
        for part in parts:
            with open(part, encoding="utf-8") as src:
                dst.writelines(line for line in src if not line.startswith(('{"error"', '{"unit"')))
    return out / "index.jsonl"


def _rate(pts: list) -> float:
    """Frame rate of a clip from its real timestamps (median interval), 25 when it cannot be told."""
    if len(pts) < 2:
        return 25.0
    step = float(np.median(np.diff(np.asarray(pts, dtype=np.float64))))
    return 1.0 / step if step > 0 else 25.0
