"""`vidprep filter` and `vidprep dedup`: curate finished shards on their stored metrics and hashes, no decoding."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidprep.cli.output import emit, emit_json, exits_on_error, setup_logging
from vidprep.errors import EXIT_PARTIAL


def register(app: typer.Typer) -> None:
    """Add the filter and dedup commands to the app."""
    app.command("filter")(filter_cmd)
    app.command("dedup")(dedup_cmd)


@exits_on_error
def filter_cmd(
    shards: Annotated[Path, typer.Argument(help="Directory of shards written by a vidprep stage.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory for the filtered shards.")],
    keep: Annotated[Optional[str], typer.Option("--keep", help="Keep clips whose metrics pass, e.g. 'motion > 1.5 and black_ratio < 0.5'.")] = None,
    drop_duplicates: Annotated[bool, typer.Option("--drop-duplicates", help="Drop clips that OUT/duplicates.jsonl marks as not kept.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an output directory written with another filter.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only warnings and errors on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON summary on stdout instead of shard paths.")] = False,
) -> None:
    """Copy clips that pass a new filter (and their frames, features, metrics) into new shards, without decoding.

    Examples:

      vidprep filter clips/ -o moving/ --keep 'motion > 1.5 and black_ratio < 0.5'

      vidprep dedup clips/ && vidprep filter clips/ -o unique/ --drop-duplicates
    """
    from vidprep.engine.filter_run import run_filter

    setup_logging(quiet)
    summary = run_filter(shards, output, keep, drop_duplicates, overwrite, on_shard=None if json_out else emit)
    if json_out:
        emit_json(asdict(summary))
    typer.echo(f"vidprep: kept {summary.clips_kept} of {summary.clips_in} clips in {len(summary.shards)} shard(s)"
               f"{f', {summary.skipped} already done' if summary.skipped else ''}", err=True)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


@exits_on_error
def dedup_cmd(
    shards: Annotated[Path, typer.Argument(help="Directory of frame or feature shards (with /clips/phash).")],
    features: Annotated[Optional[Path], typer.Option("--features", help="Feature shards of the same clips: confirm/extend groups by cosine similarity.")] = None,
    max_distance: Annotated[int, typer.Option("--max-distance", help="Largest Hamming distance of matching frame hashes (default 12 of 64).")] = 12,
    min_similarity: Annotated[float, typer.Option("--min-similarity", help="Fraction of matched frames for a duplicate (default 0.5).")] = 0.5,
    cosine: Annotated[float, typer.Option("--cosine", help="Feature cosine similarity for tier 2 (default 0.95).")] = 0.95,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only warnings and errors on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON summary on stdout instead of the table path.")] = False,
) -> None:
    """Find near-duplicate clips (re-encoded, rescaled, cropped, grayscale, trimmed) and write OUT/duplicates.jsonl.

    Examples:

      vidprep dedup clips/

      vidprep dedup clips/ --features feats/
    """
    from vidprep.engine.dedup_run import run_dedup

    setup_logging(quiet)
    summary = run_dedup(shards, features, max_distance=max_distance, min_similarity=min_similarity, cosine=cosine)
    if json_out:
        emit_json(summary)
    else:
        emit(summary["table"])
    if summary.get("failed"):
        raise typer.Exit(EXIT_PARTIAL)
