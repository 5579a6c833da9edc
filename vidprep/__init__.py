"""vidprep: turn raw video collections into training-ready HDF5 shards.

The library API (docs/api.md): ``run``, ``RunConfig``, ``probe``, ``ShardSet``, ``__version__``. Names are imported
on first use (PEP 562), so ``import vidprep`` stays cheap: no torch, cv2, h5py or albumentations until needed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from vidprep.config import RunConfig
    from vidprep.engine.driver import RunSummary
    from vidprep.media.probe import probe
    from vidprep.shards.reader import ShardSet

_EXPORTS = {
    "RunConfig": "vidprep.config",
    "probe": "vidprep.media.probe",
    "ShardSet": "vidprep.shards.reader",
}

__all__ = ["RunConfig", "ShardSet", "__version__", "probe", "run"]


def run(config: RunConfig | dict | str | Path, inputs: str | Path | Iterable[str | Path], out: str | Path, *,
        executor: str | None = None, workers: int | None = None, overwrite: bool = False, glob: str | None = None,
        root: str | Path | None = None, shard_index: int = 0, num_shards: int = 1,
        ray_address: str | None = None) -> RunSummary:
    """Process videos (and/or shards of an earlier step) into shards under ``out``, as ``vidprep run`` does.

    ``config`` is a RunConfig, a dict of stage tables (``{"split": {...}, "features": {...}, "run": {...}}``) or
    the path of a pipeline TOML file; from tables, a feature model's sampling defaults are applied exactly as the
    CLI applies them. Returns the run summary (``exit_code`` 0, or 3 when some input failed); a usage error
    (bad option, unwritable output, changed inputs on resume) raises ``vidprep.errors.UsageError``.
    """
    from vidprep.config import RunConfig, load_toml, run_config_from
    from vidprep.engine.applicable import shard_inputs_only
    from vidprep.engine.driver import RunOptions
    from vidprep.engine.driver import run as run_listed
    from vidprep.errors import UsageError
    from vidprep.inputs import expand

    paths = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(p) for p in inputs]
    listed = expand(paths, glob=glob, root=str(root) if root else None)
    if not listed.videos and not listed.shards and not listed.problems:
        raise UsageError("no input videos found (directories are searched for video extensions; see glob)")
    if not isinstance(config, RunConfig):
        tables = load_toml(config) if isinstance(config, (str, Path)) else config
        config = run_config_from(tables, model_defaults=not shard_inputs_only(listed))
    options = RunOptions(executor, workers, shard_index, num_shards, overwrite, ray_address)
    return run_listed(listed, config, out, options, shard_inputs=listed.shards)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidprep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
