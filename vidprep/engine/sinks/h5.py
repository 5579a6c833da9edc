"""The HDF5 output: one shard per unit through shards/ (frame shards keep frames, feature shards pts/ordinals).

A unit is finished when its shard exists under its final name. Shards manifest.json lists are trusted from the
manifest, never opened or hashed; a shard missing from it (a crash between the rename and the manifest update) is
summarised by shards/, recorded, and its stored failures put back in errors.jsonl.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidprep.engine.sinks import Made, SinkSpec, error_record, restore_errors
from vidprep.types import VideoResult

log = logging.getLogger("vidprep.engine.sinks.h5")


class H5Output:
    """The sink kind of ``--format h5`` (and of every feature run)."""

    def __init__(self, name: str = "h5") -> None:
        self.name = name

    def unit_path(self, out: Path, unit: int | str) -> Path:
        """The shard of unit ``unit`` (a unit index or an input shard's name)."""
        from vidprep.shards.format import shard_name

        return Path(out) / (shard_name(unit) if isinstance(unit, int) else unit)

    def shown_name(self, name: str) -> str:
        return name

    def finished(self, out: Path) -> dict[str, Made]:
        """Shard name -> what its unit was made from, for every shard on disk."""
        from vidprep.shards.manifest import load, read_errors, record_shard
        from vidprep.shards.summary import completed_shards

        listed = {s["name"]: s for s in load(out).get("shards", [])}
        on_disk = {p.name for p in out.glob("shard-*.h5")}
        found = {}
        for name, summary, errors in completed_shards(out, skip=on_disk & set(listed)):
            record_shard(out, summary)  # a crash between its rename and the manifest update
            restore_errors(out, errors)
            found[name] = Made(set(summary["input_ids"]))
        failed: set[str] | None = None
        for name in on_disk & set(listed):
            entry = listed[name]
            if "input_ids" in entry:
                found[name] = Made(set(entry["input_ids"]))
            else:  # an entry written before input_ids: stored videos plus the failures errors.jsonl lists
                if failed is None:
                    failed = {str(e["video_id"]) for e in read_errors(out) if e.get("video_id") is not None}
                found[name] = Made(set(entry.get("video_ids", [])), failed)
        return found

    def before_units(self, out: Path, todo: list) -> None:
        """Nothing: temp shards of crashed writers are cleaned when the output is prepared."""

    def finish(self, out: Path) -> None:
        """Nothing: each shard is complete when published and recorded in the manifest."""

    def clear(self, out: Path) -> None:
        """Remove every shard (for --overwrite)."""
        for path in out.glob("shard-*.h5"):
            if path.is_symlink() or not path.is_dir():
                path.unlink()  # a link is removed itself, never what it points at

    def open(self, spec: SinkSpec, path: Path, class_names: list[str], stages: Callable[[], dict]) -> ShardSink:
        return ShardSink(spec, path, class_names, stages)


class ShardSink:
    """Writes one shard through ShardWriter; frame shards keep frames, feature shards keep pts/ordinals only."""

    def __init__(self, spec: SinkSpec, path: Path, class_names: list[str], stages: Callable[[], dict]) -> None:
        from vidprep.shards.writer import ShardWriter

        output = spec.config.output
        self.keeps_frames = spec.kind == "frames"
        self.config_record, self.stages = spec.config_record, stages
        self.writer = ShardWriter(
            path,
            kind=spec.kind,
            config=spec.config_record,
            class_names=class_names or None,
            frame_codec=output.frame_codec,
            jpeg_quality=output.jpeg_quality,
            store_frames=self.keeps_frames,
        )
        self.add_video = self.writer.add_video
        self.read_frames = self.writer.read_frames
        self.set_video_array = self.writer.set_video_array
        self.add_clip = self.writer.add_clip
        self.drop_video = self.writer.drop_video

    def append_frames(self, v: int, rgb: np.ndarray, pts: np.ndarray, idx: np.ndarray) -> int:
        """Append a frame run (pixels only in frame shards)."""
        return int(self.writer.append_frames(v, rgb if self.keeps_frames else None, pts, idx))

    def record_errors(self, failed: list[VideoResult]) -> None:
        """Keep the unit's failures inside the shard, so a resumed run can restore errors.jsonl from it."""
        self.writer.set_meta("errors_json", json.dumps([error_record(r) for r in failed], ensure_ascii=False))

    def commit(self) -> Any:
        """Record what the steps applied, close and atomically publish the shard; returns its ShardSummary."""
        self.writer.set_config({**self.config_record, **self.stages()})
        return self.writer.commit()

    def __enter__(self) -> ShardSink:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.writer.abort()
