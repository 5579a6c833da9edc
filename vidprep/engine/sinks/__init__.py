"""Output formats behind one interface: a registry from format name to the sink kind that owns it.

A sink kind (``OutputKind``) owns everything about its format: where a unit's output goes (``unit_path``), how a
finished unit is recognised on resume (``finished``), what the end of a run adds (``finish``), what ``--overwrite``
clears (``clear``) and the per-unit writer (``open`` -> ``Sink``). The rule that picks the format of a run lives
here once: ``output_format``. Adding a format is one module here plus one entry in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from vidprep.errors import printable_path
from vidprep.types import VideoResult

if TYPE_CHECKING:
    from vidprep.config import RunConfig
    from vidprep.inputs import WorkUnit


@dataclass
class Made:
    """What a finished unit was made from: ``ids``, plus those of this run's unit that are in ``maybe`` (None: any).

    ``maybe`` is empty for exact records; for records written before units stored their inputs it holds the
    run's failed videos (a shard's failures are not among its stored ids), or None for an old index part, where a
    video that gave no clip has no line (then only removed videos can be told).
    """

    ids: set[str]
    maybe: set[str] | None = field(default_factory=set)

    def inputs(self, want: set[str]) -> set[str]:
        return self.ids | (want if self.maybe is None else want & self.maybe)


class Sink(Protocol):
    """The per-unit writer the worker talks to; completion is atomic (``commit`` publishes the unit)."""

    keeps_frames: bool

    def add_video(self, video_id: str, source: str, meta: dict) -> int: ...
    def append_frames(self, v: int, rgb: np.ndarray, pts: np.ndarray, idx: np.ndarray) -> int: ...
    def read_frames(self, v: int, start: int, stop: int) -> np.ndarray: ...
    def set_video_array(self, v: int, name: str, data: np.ndarray) -> None: ...
    def add_clip(self, v: int, **row: Any) -> None: ...
    def drop_video(self, v: int) -> None: ...
    def record_errors(self, failed: list[VideoResult]) -> None: ...
    def commit(self) -> Any: ...
    def __enter__(self) -> Sink: ...
    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class SinkSpec:
    """What a sink needs to open a unit's output: the run config, its record, the output dir and the unit's kind."""

    config: RunConfig
    config_record: dict
    out_dir: str
    kind: Literal["frames", "features"]


class OutputKind(Protocol):
    """One output format family: paths, resume detection, end-of-run work, clearing, and the writer."""

    name: str

    def unit_path(self, out: Path, unit: int | str) -> Path: ...
    def shown_name(self, name: str) -> str: ...
    def finished(self, out: Path) -> dict[str, Made]: ...
    def before_units(self, out: Path, todo: list[WorkUnit]) -> None: ...
    def finish(self, out: Path) -> None: ...
    def clear(self, out: Path) -> None: ...
    def open(self, spec: SinkSpec, path: Path, class_names: list[str], stages: Callable[[], dict]) -> Sink:
        """The unit's writer; ``stages`` gives what the steps applied (their ``describe``), asked for at commit:
        a model built in the background is described only once it exists."""


def output_format(config: RunConfig) -> str:
    """The run's output format (``OutputConfig.format``), decided here only: feature runs write feature shards (h5,
    or wds tars)."""
    if config.features is not None:
        return "wds" if config.output.format == "wds" else "h5"
    return config.output.format


#: Output format -> (module under vidprep.engine.sinks, class); the class is built with the format name.
REGISTRY: dict[str, tuple[str, str]] = {
    "h5": ("h5", "H5Output"),
    "jpg": ("files", "FilesOutput"),
    "png": ("files", "FilesOutput"),
    "mp4": ("files", "FilesOutput"),
    "wds": ("wds", "WdsOutput"),
}


def kind_for(fmt: str) -> OutputKind:
    """The sink kind writing format ``fmt`` (imported on first use: the h5 writer needs h5py, files need cv2)."""
    module, cls = REGISTRY[fmt]
    kind: OutputKind = getattr(importlib.import_module(f"vidprep.engine.sinks.{module}"), cls)(fmt)
    return kind


def all_kinds() -> Iterable[OutputKind]:
    """One sink kind per module (``--overwrite`` clears whatever format wrote the directory before)."""
    first = {module: fmt for fmt, (module, _) in reversed(list(REGISTRY.items()))}
    return [kind_for(fmt) for fmt in first.values()]


def error_record(result: VideoResult) -> dict:
    """The errors.jsonl record of a failed video."""
    return {
        "path": printable_path(result.path),
        "video_id": result.video_id,
        "stage": result.stage,
        "error_type": result.error_type,
        "message": result.error,
    }


def restore_errors(out: Path, errors: list[dict]) -> None:
    """Put a finished unit's failures back into errors.jsonl if a crash lost them (idempotent)."""
    from vidprep.shards.manifest import append_error, read_errors

    if not errors:
        return
    known = {(e.get("video_id"), e.get("message")) for e in read_errors(out)}
    for rec in errors:
        if (rec.get("video_id"), rec.get("message")) not in known:
            append_error(out, rec)
