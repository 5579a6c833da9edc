"""`vidprep probe`: one metadata row per video; bad files get one error line each and exit 3."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidprep.cli.options import INPUTS
from vidprep.cli.output import emit_json, exits_on_error, setup_logging
from vidprep.errors import EXIT_PARTIAL, VidprepError, printable_path

log = logging.getLogger("vidprep.cli")

COLUMNS = (
    ("id", "id"),
    ("container", "container"),
    ("codec", "codec"),
    ("pix_fmt", "pix_fmt"),
    ("size", "WxH"),
    ("rotation", "rot"),
    ("avg_fps", "avg fps"),
    ("real_fps", "real fps"),
    ("vfr", "vfr"),
    ("duration_s", "duration s"),
    ("num_frames", "frames"),
    ("has_audio", "audio"),
)


def probe_row(video_id: str, path: str) -> dict[str, Any]:
    """Probe one file into a flat row (raises ProbeError)."""
    from vidprep.media.probe import probe

    info = probe(path)
    row = {"id": video_id, **info.to_dict(), "path": printable_path(path)}
    row["size"] = f"{info.width}x{info.height}"
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for _, title in COLUMNS:
        table.add_column(title, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in COLUMNS))
    Console(file=sys.stdout, soft_wrap=False, width=max(160, Console().width)).print(table)


@exits_on_error
def probe(
    inputs: INPUTS,
    json_out: Annotated[bool, typer.Option("--json", help="A JSON array on stdout.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per video on stdout.")] = False,
    glob: Annotated[Optional[str], typer.Option("--glob", help="Only files whose name matches.")] = None,
    root: Annotated[Optional[Path], typer.Option("--root", help="Input root; ids are relative to it.")] = None,
    null: Annotated[bool, typer.Option("-0", "--null", help="NUL-separated paths on stdin.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only warnings and errors.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Debug messages.")] = False,
) -> None:
    """Show metadata of videos: container, codec, displayed size, rotation, frame rates, VFR, duration, frames, audio.

    Examples:

      vidprep probe videos/

      vidprep probe clip.mp4 other.mkv --json | jq '.[].real_fps'

      find data -name '*.mov' | vidprep probe - --jsonl > meta.jsonl
    """
    from vidprep.inputs import expand

    setup_logging(quiet, verbose)
    listed = expand(inputs, glob=glob, root=str(root) if root else None, nul=null)
    failures = [f"{p.path}: {p.message}" for p in listed.problems]
    rows = []
    for item in listed.videos:
        try:
            rows.append(probe_row(item.video_id, item.path))
        except VidprepError as err:
            failures.append(str(err))
    for line in failures:
        sys.stderr.write(f"vidprep: error: {line}\n")
    if json_out:
        emit_json(rows)
    elif jsonl:
        for row in rows:
            emit_json(row)
    elif rows:
        _print_table(rows)
    if failures:
        raise typer.Exit(EXIT_PARTIAL)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("probe")(probe)
