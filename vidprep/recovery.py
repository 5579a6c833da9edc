"""Find the units an earlier (possibly killed) run completed, with the failures each one recorded inside itself.

A unit is complete when its shard (or, for image/mp4 output, its index part) exists under its final name. The
failures of a unit are stored inside that file, so errors.jsonl can be restored if the run died after the rename.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("vidprep.recovery")


def completed_units(out_dir: Path, fmt: str) -> Iterator[tuple[str, object | None, list[dict]]]:
    """Yield (name, shard summary or None, error records) for every completed unit in ``out_dir``."""
    if fmt == "h5":
        yield from _shards(out_dir)
    else:
        yield from _parts(out_dir)


def _shards(out_dir: Path) -> Iterator[tuple[str, object | None, list[dict]]]:
    import h5py

    from vidprep.shards.manifest import fsync_and_hash

    for path in sorted(out_dir.glob("shard-*.h5")):
        try:
            with h5py.File(path, "r") as f:
                errors = json.loads(f["meta/errors_json"][()].decode()) if "meta/errors_json" in f else []
                entry = _entry(f, path)
        except (OSError, KeyError, ValueError) as err:
            log.warning("%s: unreadable shard skipped during recovery: %s", path, err)
            continue
        digest, size = fsync_and_hash(path)
        yield path.name, {**entry, "bytes": size, "sha256": digest}, errors


def _entry(f: object, path: Path) -> dict:
    ids = f["videos/id"].asstr()[:].tolist()
    frames = sum(f[f"frames/{v}/pts_s"].shape[0] for v in range(len(ids)))
    return {"name": path.name, "path": str(path), "kind": str(f.attrs["kind"]), "videos": len(ids),
            "clips": int(f["clips/video_index"].shape[0]), "frames": int(frames), "video_ids": ids}


def _parts(out_dir: Path) -> Iterator[tuple[str, object | None, list[dict]]]:
    from vidprep.sinks import PARTS_DIR

    for part in sorted((out_dir / PARTS_DIR).glob("shard-*.jsonl")):
        errors = []
        for line in part.read_text(encoding="utf-8").splitlines():
            if line.startswith('{"error"'):
                errors.append(json.loads(line)["error"])
        yield part.name, None, errors
