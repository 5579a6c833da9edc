"""Find the units an earlier (possibly killed) run completed, with the failures each one recorded inside itself.

A unit is complete when its shard (or, for image/mp4 output, its index part) exists under its final name. The
failures of a unit are stored inside that file, so errors.jsonl can be restored if the run died after the rename.
Shards named in ``skip`` (those manifest.json already vouches for) are not opened: resuming a large output must
not re-read and hash every finished shard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("vidprep.recovery")


@dataclass
class Completed:
    """A completed unit found on disk: its file name, the shard summary (h5 only), its failures and its inputs.

    ``input_ids`` are the video ids the unit was made from (stored and failed ones); ``exact`` is False for an index
    part written before parts recorded them (then a video that produced no clip is missing from the set).
    """

    name: str
    summary: dict | None
    errors: list[dict] = field(default_factory=list)
    input_ids: set[str] = field(default_factory=set)
    exact: bool = True


def completed_units(out_dir: Path, fmt: str, skip: Collection[str] = ()) -> Iterator[Completed]:
    """Every completed unit in ``out_dir`` except the shards named in ``skip``."""
    if fmt == "h5":
        yield from _shards(out_dir, skip)
    else:
        yield from _parts(out_dir)


def _shards(out_dir: Path, skip: Collection[str]) -> Iterator[Completed]:
    import h5py

    from vidprep.shards.manifest import fsync_and_hash

    for path in sorted(out_dir.glob("shard-*.h5")):
        if path.name in skip:
            continue
        try:
            with h5py.File(path, "r") as f:
                errors = json.loads(f["meta/errors_json"][()].decode()) if "meta/errors_json" in f else []
                entry = _entry(f, path)
            digest, size = fsync_and_hash(path)
        except FileNotFoundError:
            continue  # removed since the listing
        except (OSError, KeyError, ValueError) as err:
            log.warning("%s: unreadable shard skipped during recovery: %s", path, err)
            continue
        ids = set(entry["video_ids"]) | {e["video_id"] for e in errors if e.get("video_id")}
        entry["input_ids"] = sorted(ids)
        yield Completed(path.name, {**entry, "bytes": size, "sha256": digest}, errors, ids)


def _entry(f: object, path: Path) -> dict:
    ids = f["videos/id"].asstr()[:].tolist()
    frames = sum(f[f"frames/{v}/pts_s"].shape[0] for v in range(len(ids)))
    return {"name": path.name, "path": str(path), "kind": str(f.attrs["kind"]), "videos": len(ids),
            "clips": int(f["clips/video_index"].shape[0]), "frames": int(frames), "video_ids": ids}


def _parts(out_dir: Path) -> Iterator[Completed]:
    from vidprep.sinks import PARTS_DIR

    for part in sorted((out_dir / PARTS_DIR).glob("shard-*.jsonl")):
        try:
            lines = part.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        found, seen = Completed(part.name, None, exact=False), set()
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
