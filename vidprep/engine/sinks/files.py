"""Image and mp4 output: clips as image folders (jpg/png) or frame-exact mp4 files, plus an index.

A unit is finished when its index part ``.parts/shard-N.jsonl`` exists: the part is renamed into place after every
file it lists is durable, and its first line names every video of the unit (for the resume check); failures are
kept in it too, so errors.jsonl can be restored after a crash. The end of a run merges the parts into index.jsonl.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidprep.engine.sinks import Made, SinkSpec, error_record, restore_errors
from vidprep.errors import printable_path
from vidprep.engine.framestore import ScratchFrames
from vidprep.shards.safepath import check_id, output_path
from vidprep.types import VideoResult

log = logging.getLogger("vidprep.engine.sinks.files")

PARTS_DIR = ".parts"


class FilesOutput:
    """The sink kind of ``--format jpg|png|mp4``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def unit_path(self, out: Path, unit: int | str) -> Path:
        """The index part of unit ``unit`` (a unit index or an input shard's name)."""
        from vidprep.shards.format import shard_name

        name = shard_name(unit) if isinstance(unit, int) else unit
        return Path(out) / PARTS_DIR / (name.removesuffix(".h5") + ".jsonl")

    def shown_name(self, name: str) -> str:
        return f"{PARTS_DIR}/{name}"

    def finished(self, out: Path) -> dict[str, Made]:
        """Part name -> what its unit was made from, restoring each part's failures into errors.jsonl."""
        found = {}
        for part in _parts(out):
            restore_errors(out, part.errors)
            found[part.name] = Made(part.input_ids, set() if part.exact else None)
        return found

    def before_units(self, out: Path, todo: list) -> None:
        """Temp files of crashed writers lie in the folders of the units still to do: remove them."""
        from vidprep.shards.cleanup import cleanup_temp

        ids = [item.video_id for u in todo for item in u.items if not isinstance(item, str)]
        cleanup_temp(out, subdirs=[PARTS_DIR, *ids])

    def finish(self, out: Path) -> None:
        """Merge the unit parts into index.jsonl."""
        merge_index(out)

    def clear(self, out: Path) -> None:
        """Remove the index and its parts (for --overwrite); a ``.parts`` that is a link is removed, not followed."""
        (out / "index.jsonl").unlink(missing_ok=True)
        parts = out / PARTS_DIR
        if parts.is_symlink() or (parts.exists() and not parts.is_dir()):
            parts.unlink()
        for part in parts.glob("*") if parts.is_dir() else []:
            part.unlink()

    def open(self, spec: SinkSpec, path: Path, class_names: list[str], stages: Callable[[], dict]) -> FileSink:
        return FileSink(spec, path, class_names)


def unit_part_header(video_ids: Iterable[str | None]) -> str:
    """First line of an index part: every video id of its unit (failed ones too), for the resume check."""
    return json.dumps({"unit": {"video_ids": sorted({v for v in video_ids if v is not None})}}, ensure_ascii=False)


class FileSink:
    """Writes clips as image folders (jpg/png) or frame-exact mp4 files, plus one index part per unit."""

    keeps_frames = True

    def __init__(self, spec: SinkSpec, part_path: Path, class_names: list[str] | None = None) -> None:
        self.out_dir = Path(spec.out_dir)
        self.class_names = list(class_names or [])
        self.fmt = spec.config.output.format
        self.quality = spec.config.output.jpeg_quality
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

    def add_clip(self, v: int, **row: Any) -> None:
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
            "label_name": _class_name(self.class_names, int(row["label"])),
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
    with writing(out / "index.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as dst:
        for _, lines in _part_lines(out):
            dst.writelines(line + "\n" for line in lines if not line.startswith(('{"error"', '{"unit"')))
    return out / "index.jsonl"


def _rate(pts: list) -> float:
    """Frame rate of a clip from its real timestamps (median interval), 25 when it cannot be told."""
    if len(pts) < 2:
        return 25.0
    step = float(np.median(np.diff(np.asarray(pts, dtype=np.float64))))
    return 1.0 / step if step > 0 else 25.0


@dataclass
class _Part:
    """A published index part: its failures and the video ids its unit was made from (``exact`` is False for a
    part written before parts recorded them: then a video that produced no clip is missing from the set)."""

    name: str
    errors: list[dict] = field(default_factory=list)
    input_ids: set[str] = field(default_factory=set)
    exact: bool = True


def _part_lines(out_dir: Path) -> Iterator[tuple[Path, list[str]]]:
    """(path, lines) of every readable index part, in unit order; one that is not a regular file of its own (a
    link, a FIFO) is never read: `out_entries` refuses the directory before a run, this keeps a part linked in
    since then out of the resume check and the index."""
    from vidprep.errors import ShardError
    from vidprep.shards.manifest import read_own_text

    for part in sorted((out_dir / PARTS_DIR).glob("shard-*.jsonl")):
        try:
            lines = read_own_text(part).splitlines()
        except FileNotFoundError:
            continue
        except ShardError as err:
            log.warning("%s; its unit is not counted as finished", err)
            continue
        yield part, lines


def _parts(out_dir: Path) -> Iterator[_Part]:
    """Every readable index part with what it records (`_part_lines`)."""
    for part, lines in _part_lines(out_dir):
        found, seen = _Part(part.name, exact=False), set()
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: line is not valid JSON; skipped", part)
                continue
            if "unit" in rec:
                found.input_ids, found.exact = set(rec["unit"].get("video_ids", [])), True
            elif "error" in rec:
                found.errors.append(rec["error"])
                seen.add(rec["error"].get("video_id"))
            else:
                seen.add(rec.get("video_id"))
        if not found.exact:  # a part from before units recorded their inputs: what its lines name
            found.input_ids = {v for v in seen if v}
        yield found


def _class_name(class_names: list[str], label: int) -> str | None:
    """The name of class number ``label``, None when unlabeled (-1) or out of range."""
    return class_names[label] if 0 <= label < len(class_names) else None
