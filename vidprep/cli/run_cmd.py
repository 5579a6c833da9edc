"""`vidprep run PIPELINE.toml INPUTS... -o OUT`: several stages in one process per worker, one decode per video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidprep.cli.options import INPUT_OPTS, LOG_OPTS, RUN_OPTS
from vidprep.cli.output import emit, exits_on_error
from vidprep.cli.signature import with_options
from vidprep.config import RunConfig
from vidprep.engine.registry import stage_names

_RUN_OPTS = tuple(o for o in RUN_OPTS if o.name != "config")


def _tables_help() -> str:
    """The pipeline file's tables as the help shows them: every registered stage, then [run]."""
    return ", ".join(f"\\[{name}]" for name in (*stage_names(), "output", "run"))


def to_toml(config: RunConfig) -> str:
    """The effective config as a pipeline file (unset options omitted)."""
    data = config.model_dump(mode="json")
    lines = ["[run]"]
    lines += [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    for table in (*stage_names(), "output"):
        if isinstance(data.get(table), dict):
            lines += ["", f"[{table}]"]
            lines += [f"{k} = {_value(v)}" for k, v in data[table].items() if v is not None]
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)


@with_options(INPUT_OPTS, LOG_OPTS, _RUN_OPTS)
def run(
    pipeline: Annotated[Path, typer.Argument(
        help=f"TOML file with {_tables_help()} tables.")],
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Videos, directories, @lists or '-'.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output directory.")] = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the effective config and exit.")] = False,
    **options: Any,
) -> None:
    """Run the stages listed in a pipeline file in one process per worker: one decode per video, no
    intermediate files. Unknown tables or keys fail before any work.

    Examples:

      vidprep run examples/pipelines/cnn_frames.toml videos/ -o frames/

      vidprep run examples/pipelines/clip_features_3d.toml videos/ -o feats/ --workers 2

      vidprep run examples/pipelines/augmented_clips.toml videos/ -o aug/ --print-config
    """
    from vidprep.cli.output import setup_logging
    from vidprep.cli.stage_cmds import build_config, run_stage
    from vidprep.config import load_toml
    from vidprep.errors import UsageError

    setup_logging(options["quiet"], options["verbose"])
    tables = load_toml(pipeline)
    last = [s for s in reversed(stage_names()) if s in tables]
    stage = last[0] if last else "split"
    if print_config:
        emit(to_toml(build_config(stage, options, tables)).rstrip("\n"))
        return
    if not inputs or output is None:
        raise UsageError("run needs PIPELINE.toml INPUTS... -o OUTPUT")
    run_stage(stage, inputs, output, {**options, "config": pipeline})


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("run")(exits_on_error(run))
