"""The indexes written when a run finishes: OUT/index.parquet for every output, OUT/metadata.jsonl for mp4 clips.

One call for the run's finish step (`finish_indexes`), so the engine needs to know nothing about either format.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vidprep.errors import DependencyError, ShardError

log = logging.getLogger("vidprep.shards.indexes")

#: Files these indexes write into OUT (what --overwrite clears).
INDEX_FILES = ("index.parquet", "metadata.jsonl")


def finish_indexes(out_dir: str | Path, fmt: str, *, changed: bool = True) -> None:
    """Write index.parquet (shards, or index.jsonl of image/mp4 outputs) and, for ``fmt == "mp4"``, metadata.jsonl.

    Without ``changed`` (a resume that published no new output) only a missing index is written, so resuming a
    finished run never reads the shards the manifest already vouches for.

    An index that cannot be written (no pyarrow, a full disk, an unreadable shard) is one warning, not a failed run:
    the shards and clip files are complete without it; re-running the command (a resume with nothing left to do) or
    `vidprep shards ls --parquet OUT` writes it later.
    """
    from vidprep.shards.parquet_index import write_index
    from vidprep.shards.videofolder import write_metadata

    writers = ([("metadata.jsonl", write_metadata)] if fmt == "mp4" else []) + [("index.parquet", write_index)]
    for name, write in writers:
        if not changed and (Path(out_dir) / name).is_file():
            continue
        try:
            write(out_dir)
        except (DependencyError, ShardError, OSError, KeyError, ValueError) as err:
            log.warning("%s: %s not written (%s: %s); re-running the same command writes it", out_dir, name,
                        type(err).__name__, err)
