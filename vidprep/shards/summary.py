"""Summaries of finished shards read back from disk (recovery after a crash before the manifest update)."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator
from pathlib import Path

import h5py

log = logging.getLogger("vidprep.shards.summary")


def completed_shards(out_dir: Path, skip: Collection[str] = ()) -> Iterator[tuple[str, dict, list[dict]]]:
    """(name, manifest entry, stored failures) of every readable shard in ``out_dir`` except those in ``skip``.

    The entry's ``input_ids`` are the video ids the unit was made from: stored ones and failed ones.
    """
    from vidprep.errors import ShardError
    from vidprep.shards.manifest import fsync_and_hash
    from vidprep.shards.trust import open_shard

    for path in sorted(out_dir.glob("shard-*.h5")):
        if path.name in skip:
            continue
        try:
            with open_shard(path) as f:  # read back like any untrusted shard: no links, external or virtual data
                errors = json.loads(f["meta/errors_json"][()].decode()) if "meta/errors_json" in f else []
                entry = shard_entry(f, path)
            digest, size = fsync_and_hash(path)
        except FileNotFoundError:
            continue  # removed since the listing
        except (OSError, KeyError, ValueError, ShardError) as err:
            log.warning("%s: unreadable shard skipped during recovery (its unit is made again): %s", path, err)
            continue
        ids = set(entry["video_ids"]) | {e["video_id"] for e in errors if e.get("video_id")}
        entry["input_ids"] = sorted(ids)
        yield path.name, {**entry, "bytes": size, "sha256": digest}, errors


def shard_entry(f: h5py.File, path: Path) -> dict:
    """The manifest entry of an open shard (without bytes/sha256: those need the closed file)."""
    ids = f["videos/id"].asstr()[:].tolist()
    frames = sum(f[f"frames/{v}/pts_s"].shape[0] for v in range(len(ids)))
    return {"name": path.name, "path": str(path), "kind": str(f.attrs["kind"]), "videos": len(ids),
            "clips": int(f["clips/video_index"].shape[0]), "frames": int(frames), "video_ids": ids}
