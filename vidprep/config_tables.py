"""Stage tables -> a validated RunConfig: pipeline TOML loading, merging, per-model defaults, error messages.

The tables are named after the registered stages (:mod:`vidprep.engine.registry`) plus ``[run]``; the same path
backs `--config FILE`, `vidprep run PIPELINE.toml` and the library's ``vidprep.run(config_dict, ...)``, so a bad
value fails the same way everywhere, before any video is decoded, naming the option.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from vidprep.config import OUTPUT_KEYS, OutputConfig, RunConfig, SplitConfig
from vidprep.errors import ConfigError


#: Tables besides the stages': output options and run options.
TABLES = ("output", "run")


def _legacy_output(tables: dict[str, dict[str, Any]]) -> None:
    """Output options given in [split] (where they lived before [output]) move to the output table."""
    split = tables.get("split") or {}
    moved = {k: split.pop(k) for k in OUTPUT_KEYS if k in split}
    if not moved:
        return
    output = tables.setdefault("output", {})
    both = [k for k in moved if k in output]
    if both:
        raise ConfigError(f"[split] {both[0]} and [output] {both[0]}: give it once, in [output]")
    output.update(moved)


def format_validation_error(err: ValidationError) -> str:
    """One line naming each bad option the way the CLI spells it."""
    parts = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not str(p).isdigit()]
        name = "--" + loc[-1].replace("_", "-") if loc else "config"
        msg = "unknown option" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {msg}" if loc else msg)
    return "; ".join(parts)


def build(model: type[BaseModel], values: dict[str, Any], *, section: str = "") -> Any:
    """Construct a config model, turning validation errors into ConfigError."""
    try:
        return model(**values)
    except ValidationError as err:
        prefix = f"[{section}] " if section else ""
        raise ConfigError(prefix + format_validation_error(err)) from None


def load_toml(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a pipeline file: tables named after stages plus an optional [run] table; unknown tables fail."""
    from vidprep.named_files import read_text

    p = Path(path)
    try:
        data = tomllib.loads(read_text(p))
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(p)) from None
    except OSError as err:
        raise ConfigError(f"cannot read config file: {err.strerror}", path=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid TOML: {err}", path=str(p)) from None
    from vidprep.engine.registry import stage_names

    stages = stage_names()
    unknown = [k for k in data if k not in (*stages, *TABLES)]
    if unknown:
        raise ConfigError(f"unknown stage table [{unknown[0]}] (known: {', '.join((*stages, *TABLES))})",
                          path=str(p))
    for key, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"[{key}] must be a table", path=str(p))
    return data


def run_config_from(tables: dict[str, dict[str, Any]], *, model_defaults: bool = False) -> RunConfig:
    """Build a RunConfig from stage tables (as loaded from TOML and merged with CLI flags).

    A features table gets its model's defaults where the user chose none (so the library and the CLI build the
    same config from the same tables): l2 normalization for image-text models always, and with ``model_defaults``
    (the inputs include videos) the model's sampling defaults in the split table. An unknown model is refused here.
    """
    tables = {k: dict(v) if isinstance(v, dict) else v for k, v in tables.items()}
    if "features" in tables:
        apply_model_defaults(tables, sampling=model_defaults)
    _legacy_output(tables)
    run_opts = dict(tables.get("run", {}))
    kwargs: dict[str, Any] = {"split": build(SplitConfig, tables.get("split", {}), section="split")}
    if "output" in tables:
        kwargs["output"] = build(OutputConfig, tables["output"], section="output")
    from vidprep.engine.registry import REGISTRY

    for name, entry in list(REGISTRY.items())[1:]:
        if name in tables:
            kwargs[name] = build(entry.config, tables[name], section=name)
    return build(RunConfig, {**run_opts, **kwargs}, section="run")


def apply_model_defaults(tables: dict[str, dict[str, Any]], *, sampling: bool = True) -> None:
    """Per-model defaults when the user chose none: sampling (1 fps for 2D models, model-length clips for clip
    models) and, for image-text models, l2 normalization (their embeddings are compared by cosine)."""
    from vidprep.stages.models import get_backend

    feats = tables["features"]
    backend = get_backend(feats.get("model", "resnet18"))
    if backend.image_text and not any(feats.get(k) for k in ("normalize", "stats_from")):
        feats["normalize"] = "l2"
    if not sampling:
        return
    split = tables.setdefault("split", {})
    chose_frames = any(split.get(k) for k in ("fps", "every", "num_frames", "clip_frames", "clip_seconds", "scenes"))
    chose_size = any(split.get(k) for k in ("size", "resize", "center_crop"))
    for key, value in backend.default_split.items():
        if (key in ("size", "resize", "center_crop") and not chose_size) or (key not in ("size",) and not chose_frames):
            split.setdefault(key, value)
