"""The `vidprep` Typer application: registers one module per command and maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from vidprep import __version__, interrupts
from vidprep.cli import env_cmd, filter_cmd, probe_cmd, run_cmd, shards_cmd, stage_cmds
from vidprep.cli.output import report_error
from vidprep.errors import EXIT_INTERRUPTED, VidprepError

app = typer.Typer(
    name="vidprep",
    help="Turn raw video collections into training-ready HDF5 shards.\n\n"
    "Stages stream the paths of finished shards on stdout, so they chain through pipes:\n\n"
    "  find data -name '*.mp4' | vidprep split - -o w/clips --clip-seconds 2 --size 128 "
    "| vidprep features - -o feats --model r3d_18",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vidprep {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Turn raw video collections into training-ready HDF5 shards."""


probe_cmd.register(app)
stage_cmds.register(app)
run_cmd.register(app)
filter_cmd.register(app)
app.add_typer(shards_cmd.app, name="shards")
env_cmd.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: Typer maps usage errors to 2 and Ctrl-C to 130; vidprep errors map here."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: idle torch threads must not spin
    interrupts.install()  # a Ctrl-C swallowed somewhere (a GC callback, HDF5's C code) still stops the run
    try:
        app(args=argv)
    except VidprepError as err:
        report_error(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("vidprep: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
