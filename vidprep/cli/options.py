"""Every CLI option, declared once, grouped the way the help panels show them.

The options shared by every command are declared here; each stage's own group comes from the stage registry
(:mod:`vidprep.engine.registry`, plain specs) through :func:`typer_group`. Stage options default to None ("not
given") so that `--config FILE` values apply unless a flag overrides them; the real defaults live in
`vidprep.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidprep.cli.signature import Opt
from vidprep.engine.stage_options import OptionSpec

_IO = "Input / output"
_RUN = "Run"


def _o(name: str, typ: object, *flags: str, help: str, panel: str, default: object = None) -> Opt:
    return Opt(name, Annotated[typ, typer.Option(*flags, help=help, rich_help_panel=panel)], default)


INPUTS = Annotated[
    list[str],
    typer.Argument(help="Videos, directories, @list.txt, '-' (paths on stdin) or shard dirs/.h5 from a vidprep step."),
]

OUTPUT = Annotated[Path, typer.Option("-o", "--output", help="Output directory.", rich_help_panel=_IO)]

INPUT_OPTS = (
    _o("glob", Optional[str], "--glob", help="Only files whose name matches this pattern (e.g. '*.mp4').", panel=_IO),
    _o("root", Optional[Path], "--root", help="Input root: ids are relative to it; nothing outside it is read.", panel=_IO),
    _o("null", bool, "-0", "--null", help="Paths on stdin / in @lists are NUL-separated.", panel=_IO, default=False),
)

LOG_OPTS = (
    _o("quiet", bool, "-q", "--quiet", help="Only warnings and errors on stderr.", panel=_IO, default=False),
    _o("verbose", bool, "-v", "--verbose", help="Debug messages on stderr.", panel=_IO, default=False),
    _o("json_out", bool, "--json", help="One JSON summary on stdout instead of shard paths.", panel=_IO, default=False),
)


def _tables_help() -> str:
    from vidprep.engine.registry import stage_names

    return ", ".join(f"\\[{name}]" for name in (*stage_names(), "output"))


RUN_OPTS = (
    _o("config", Optional[Path], "--config", help=f"TOML file with {_tables_help()} tables; flags override it.", panel=_RUN),
    _o("workers", Optional[int], "--workers", help="Worker processes (default: 1 per core for the process executor).", panel=_RUN),
    _o("executor", Optional[str], "--executor", help="serial | process | ray.", panel=_RUN),
    _o("ray_address", Optional[str], "--ray-address", help="Ray cluster address (or RAY_ADDRESS); never starts a cluster when given.", panel=_RUN),
    _o("videos_per_shard", Optional[int], "--videos-per-shard", help="Videos per work unit / shard (default 16).", panel=_RUN),
    _o("shard_index", int, "--shard-index", help="Array jobs: this task's index K (takes units K, K+N, ...).", panel=_RUN, default=0),
    _o("num_shards", int, "--num-shards", help="Array jobs: number of tasks N.", panel=_RUN, default=1),
    _o("seed", Optional[int], "--seed", help="Seed for augmentation and random weights (default 0).", panel=_RUN),
    _o("timeout", Optional[float], "--timeout", help="Per-video wall-clock limit in seconds (default 600).", panel=_RUN),
    _o("max_pixels", Optional[int], "--max-pixels", help="Refuse videos whose frames exceed this many pixels.", panel=_RUN),
    _o("overwrite", bool, "--overwrite", help="Replace an output directory written with another config.", panel=_RUN, default=False),
)


def typer_group(specs: tuple[OptionSpec, ...]) -> tuple[Opt, ...]:
    """A stage's option group (plain specs in the stage registry) as Typer options."""
    return tuple(_o(o.name, o.type, *o.flags, help=o.help, panel=o.panel, default=o.default) for o in specs)


PREVIEW_OPT = (
    _o("preview", Optional[Path], "--preview", help="Write a before/after contact sheet PNG for a few clips.", panel=_IO),
)
