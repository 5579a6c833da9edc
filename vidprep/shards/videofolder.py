"""OUT/metadata.jsonl for ``--format mp4``: the Hugging Face VideoFolder layout, so
``datasets.load_dataset("videofolder", data_dir=OUT)`` loads the clips and their columns with no custom code.

One line per clip file, in index.jsonl order: ``file_name`` (the clip's mp4, relative to OUT, as VideoFolder
requires) and the clip's columns: video_id, source, clip_index, aug_index, label, label_name, start_s, end_s,
padded, frame_first and frame_last (source ordinals), ordinals and pts_s (per frame), and aug_params as a JSON
string ("" when none, so every row has the same type).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from vidprep.shards.atomic import atomic_write_text

log = logging.getLogger("vidprep.shards.videofolder")

METADATA_NAME = "metadata.jsonl"
_COLUMNS = ("video_id", "source", "clip_index", "aug_index", "label", "label_name", "start_s", "end_s", "padded")


def metadata_record(rec: dict) -> dict:
    """The metadata.jsonl line of one index.jsonl record of an mp4 output (one file per clip)."""
    ordinals = rec.get("ordinals") or []
    params = rec.get("aug_params")
    out = {"file_name": rec["files"][0]}
    out.update({k: rec.get(k) for k in _COLUMNS})
    out.update(frame_first=ordinals[0] if ordinals else None, frame_last=ordinals[-1] if ordinals else None,
               ordinals=ordinals, pts_s=rec.get("pts_s") or [],
               aug_params=json.dumps(params, sort_keys=True) if params else "")
    return out


def write_metadata(out_dir: str | Path) -> Path | None:
    """Write OUT/metadata.jsonl (atomically) from OUT/index.jsonl; None when there is no index.jsonl."""
    out = Path(out_dir)
    index = out / "index.jsonl"
    if not index.is_file():
        return None
    lines = []
    for line in index.read_text(encoding="utf-8").splitlines():
        if line.strip():
            lines.append(json.dumps(metadata_record(json.loads(line)), ensure_ascii=False) + "\n")
    atomic_write_text(out / METADATA_NAME, "".join(lines))
    log.info("wrote %s (%d clips)", out / METADATA_NAME, len(lines))
    return out / METADATA_NAME
