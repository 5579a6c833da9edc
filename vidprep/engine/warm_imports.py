"""Import the libraries a run's last steps need on a daemon thread, so that on a short run they load while the
run waits on ffmpeg instead of after it.

A 1 s clip decodes in about 0.4 s, during which the main thread only waits on a pipe; then the quality metrics
import OpenCV (0.12 s) and the index writer pyarrow (0.2-0.4 s), one after the other. Imported here first, in the
order they are needed, they cost the main thread nothing. Not under Ray: Ray imports pyarrow itself, and two
threads importing it at once have broken Ray's import.
"""

from __future__ import annotations

import importlib
import threading

from vidprep.config import RunConfig

INDEX_WRITER = ("pyarrow.parquet", "vidprep.shards.arrow_columns")
"""What `vidprep.shards.parquet_index.write_index` imports at the end of every run."""


def start(config: RunConfig, executor: str) -> None:
    """Start importing, in the order the run needs them: OpenCV when quality metrics are on, the index writer
    unless the run is on Ray."""
    names = (["cv2"] if config.split.metrics else []) + (list(INDEX_WRITER) if executor != "ray" else [])
    if names:
        threading.Thread(target=_import_all, args=(names,), name="vidprep-warm-imports", daemon=True).start()


def _import_all(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # whoever needs the module reports it missing, as without this thread
