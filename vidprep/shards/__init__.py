"""vidprep shards: the `vidprep-shard` HDF5 format, its writer, reader and checks (docs/format.md).

Names are imported on first use, so `import vidprep.shards` stays cheap; torch is only imported by
`vidprep.shards.torch`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ShardSet": "vidprep.shards.reader",
    "ShardWriter": "vidprep.shards.writer",
    "ShardSummary": "vidprep.shards.writer",
    "cleanup_temp": "vidprep.shards.manifest",
    "validate": "vidprep.shards.format",
    "shard_name": "vidprep.shards.format",
    "FORMAT": "vidprep.shards.format",
    "FORMAT_VERSION": "vidprep.shards.format",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidprep.shards' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
