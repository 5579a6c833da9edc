"""`vidprep shards info | verify | ls`: inspect, check and list shard directories."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from vidprep.cli.output import emit, emit_json, exits_on_error, setup_logging

app = typer.Typer(help="Inspect, verify and list vidprep shards.", no_args_is_help=True)

PATHS = Annotated[list[str], typer.Argument(help="Shard directories or shard .h5 files.")]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


@app.command("info")
@exits_on_error
def info_cmd(
    paths: PATHS,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Summarize shards: kind, counts, frame/feature shape and dtype, labels, model and normalization, size.

    Examples:

      vidprep shards info frames/

      vidprep shards info feats/ --json | jq .feature_shape
    """
    from vidprep.shards.inspect import info
    from vidprep.shards.wds_read import is_wds

    setup_logging()
    if is_wds(paths):  # --format wds output: the tar equivalent
        from vidprep.shards import wds_inspect

        info = wds_inspect.info  # type: ignore[assignment]
    data = info(paths)
    if json_out:
        emit_json(data)
        return
    for key, value in data.items():
        shown = _human(value) if key == "bytes" else value
        emit(f"{key:<18} {shown}")


@app.command("verify")
@exits_on_error
def verify_cmd(
    paths: PATHS,
    inputs: Annotated[
        Optional[list[str]],
        typer.Option("--inputs", help="Also check these inputs are each in a shard or in errors.jsonl."),
    ] = None,
) -> None:
    """Validate every shard, compare checksums with manifest.json, find duplicate videos and leftovers.
    Exit 0 only when clean; otherwise one line per problem and exit 1.

    Examples:

      vidprep shards verify frames/

      vidprep shards verify frames/ --inputs videos/
    """
    from vidprep.shards.inspect import verify
    from vidprep.shards.wds_read import is_wds

    setup_logging()
    if is_wds(paths):  # --format wds output: the same checks on tars
        from vidprep.shards import wds_inspect

        verify = wds_inspect.verify  # type: ignore[assignment]
    problems = verify(paths, inputs=_input_ids(inputs) if inputs else None)
    for line in problems:
        sys.stderr.write(f"vidprep: {line}\n")
    if problems:
        raise typer.Exit(1)
    emit("ok")


def _input_ids(inputs: list[str]) -> list[str]:
    from vidprep.inputs import expand

    return [v.video_id for v in expand(inputs).videos]


@app.command("ls")
@exits_on_error
def ls_cmd(
    paths: PATHS,
    clips: Annotated[bool, typer.Option("--clips", help="One line per clip instead of per video.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line.")] = False,
    parquet: Annotated[bool, typer.Option(
        "--parquet", help="Write (or rewrite) OUT/index.parquet, one row per clip, for each output directory given; "
        "prints the paths written.")] = False,
    top_labels: Annotated[int, typer.Option("--top-labels", help="With zero-shot scores (features --text-labels): "
                                                                 "the K best labels per clip (implies --clips).")] = 0,
) -> None:
    """List videos (or clips) with counts and times, or write the Parquet clip index of existing outputs.

    Examples:

      vidprep shards ls frames/

      vidprep shards ls frames/ --clips --jsonl | head

      vidprep shards ls --parquet frames/

      vidprep shards ls clipfeats/ --top-labels 3
    """
    from vidprep.errors import UsageError
    from vidprep.shards.inspect import ls

    setup_logging()
    if parquet:
        _write_parquet(paths, clips or jsonl or top_labels > 0)
        return
    if top_labels < 0:
        raise UsageError("--top-labels must be >= 0")
    from vidprep.shards.wds_read import is_wds

    if is_wds(paths):  # --format wds output: clips or videos from the samples' metadata
        from vidprep.shards import wds_inspect

        rows = wds_inspect.ls(paths, clips=clips)  # type: ignore[arg-type]
    else:
        rows = ls(paths, clips=clips or top_labels > 0, top_labels=top_labels)
    for row in rows:
        if jsonl:
            emit_json(row)
        else:
            emit("\t".join(_cell(v) for v in row.values()))


def _write_parquet(paths: list[str], listing: bool) -> None:
    """`ls --parquet`: one index.parquet per output directory (exit 2 for anything else)."""
    from pathlib import Path

    from vidprep.errors import UsageError
    from vidprep.shards.parquet_index import write_index

    if listing:
        raise UsageError("--parquet writes index files; it does not combine with --clips or --jsonl")
    for path in paths:
        if not Path(path).is_dir():
            raise UsageError("--parquet needs an output directory (it writes DIR/index.parquet)", path=path)
    for path in paths:
        written = write_index(path)
        if written is None:
            raise UsageError("--parquet: no shard-*.h5, shard-*.tar or index.jsonl in this directory", path=path)
        emit(str(written))


def _cell(v: Any) -> str:
    if isinstance(v, list) and all(isinstance(x, list) and len(x) == 2 for x in v):  # top labels: label:score
        return ",".join(f"{label}:{score:.3f}" for label, score in v)
    return f"{v:.3f}" if isinstance(v, float) else str(v)
