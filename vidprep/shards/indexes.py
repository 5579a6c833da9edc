"""The indexes written when a run finishes: OUT/index.parquet for every output, OUT/metadata.jsonl for mp4 clips.

One call for the run's finish step (`finish_indexes`), so the engine needs to know nothing about either format.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vidprep.errors import DependencyError

log = logging.getLogger("vidprep.shards.indexes")

#: Files these indexes write into OUT (what --overwrite clears).
INDEX_FILES = ("index.parquet", "metadata.jsonl")


def finish_indexes(out_dir: str | Path, fmt: str) -> None:
    """Write index.parquet (shards, or index.jsonl of image/mp4 outputs) and, for ``fmt == "mp4"``, metadata.jsonl.

    A missing pyarrow is one warning, not a failed run: the shards are complete without the index.
    """
    from vidprep.shards.parquet_index import write_index

    if fmt == "mp4":
        from vidprep.shards.videofolder import write_metadata

        write_metadata(out_dir)
    try:
        write_index(out_dir)
    except DependencyError as err:
        log.warning("no %s: %s", Path(out_dir) / "index.parquet", err)
