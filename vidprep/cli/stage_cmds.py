"""One command per registered stage (`vidprep split | enhance | augment | features`): each a whole pipeline
ending at that stage. Commands, option groups and help come from the stage registry (:mod:`vidprep.engine.registry`).

Options come from `--config FILE` (stage tables) overridden by flags; the effective config is validated before any
video is opened. Completed shard paths stream to stdout; everything else goes to stderr.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from vidprep.cli.options import INPUT_OPTS, INPUTS, LOG_OPTS, OUTPUT, PREVIEW_OPT, RUN_OPTS, typer_group
from vidprep.cli.output import emit, emit_json, exits_on_error, setup_logging
from vidprep.cli.signature import Opt, pick, with_options
from vidprep.config import RunConfig, load_toml, run_config_from
from vidprep.config_tables import TABLES
from vidprep.engine.registry import OUTPUT_OPTIONS, REGISTRY, stage_names, upto


def stage_opts(stage: str) -> tuple[Opt, ...]:
    """A registered stage's CLI option group."""
    return typer_group(REGISTRY[stage].options)


RUN_KEYS = {"videos_per_shard": "videos_per_shard", "seed": "seed", "timeout": "timeout_s", "max_pixels": "max_pixels"}


def build_config(stage: str, options: dict[str, Any], file_tables: dict[str, dict] | None = None, *,
                 shard_inputs: bool = False) -> RunConfig:
    """Merge the config file's tables (stages up to ``stage``) with the flags the user gave, then validate.

    Per-model split defaults are for videos: with only shard inputs (frames already sampled) none are added.
    Image-text models default to ``--normalize l2`` either way.
    """
    tables = {k: dict(v) for k, v in (file_tables or {}).items()}
    used = upto(stage)
    tables = {k: v for k, v in tables.items() if k in used or k in TABLES}
    for name in used:
        given = pick(options, stage_opts(name))
        if given or name == stage:
            tables.setdefault(name, {}).update(given)
    given_output = pick(options, typer_group(OUTPUT_OPTIONS))
    if given_output:  # a flag overrides the file's value wherever the file gives it ([output], or [split] of old)
        for key in given_output:
            tables.get("split", {}).pop(key, None)
        tables.setdefault("output", {}).update(given_output)
    run_table = tables.setdefault("run", {})
    run_table.update({RUN_KEYS[k]: v for k, v in options.items() if k in RUN_KEYS and v is not None})
    return run_config_from(tables, model_defaults=not shard_inputs)


def _load_tables(config: Path | None) -> dict[str, dict]:
    return load_toml(config) if config else {}


def split_stdin(inputs: list[str], *, nul: bool) -> tuple[list[str], Iterator[str] | None]:
    """With '-' among the inputs: stream shard paths from stdin (pipes), or inline video paths as a list."""
    from vidprep.inputs import is_shard_path, iter_stdin

    if "-" not in inputs:
        return inputs, None
    rest = [i for i in inputs if i != "-"]
    lines = iter_stdin(nul=nul)
    first = next(lines, None)
    if first is not None and first.endswith(".h5") and is_shard_path(Path(first)):
        return rest, itertools.chain([first], lines)
    return rest + ([first] if first else []) + list(lines), None


def checked_stdin(stream: Iterator[str] | None, root: str | None, output: Path, listed: Any) -> Iterator[str]:
    """Shard paths streamed from stdin with the per-path checks of any input; each refused path is logged, recorded
    in OUT/errors.jsonl (the stream is read after OUT is prepared) and added to ``listed.problems`` (exit 3)."""
    import logging

    from vidprep.inputs import InputProblem, checked_stream
    from vidprep.shards.manifest import append_error

    def record(problem: InputProblem) -> None:
        logging.getLogger("vidprep.cli.stage_cmds").error("%s: %s", problem.path, problem.message)
        listed.problems.append(problem)
        append_error(output, {"path": problem.path, "video_id": None, "stage": "input", "error_type": "InputError",
                              "message": f"{problem.path}: {problem.message}"})

    return checked_stream(stream or (), root, record)


def run_stage(stage: str, inputs: list[str], output: Path, options: dict[str, Any]) -> None:
    """Shared body of the four stage commands."""
    from vidprep.engine.applicable import shard_inputs_only
    from vidprep.cli.progress import Progress
    from vidprep.errors import EXIT_PARTIAL, UsageError
    from vidprep.inputs import WorkUnit, expand
    from vidprep.engine.driver import RunOptions, run

    setup_logging(options["quiet"], options["verbose"])
    tables = _load_tables(options.get("config"))
    root = str(options["root"]) if options.get("root") else None
    inputs, stream = split_stdin(inputs, nul=options.get("null", False))
    listed = expand(inputs, glob=options.get("glob"), root=root, nul=options.get("null", False))
    if not listed.videos and not listed.shards and not listed.problems and stream is None:
        raise UsageError("no input videos found (directories are searched for video extensions; see --glob)")
    cfg = build_config(stage, options, tables, shard_inputs=shard_inputs_only(listed))
    run_opts = RunOptions(options.get("executor"), options.get("workers"), options["shard_index"],
                          options["num_shards"], options["overwrite"], options.get("ray_address"))
    bars: list[Progress] = []

    def plan(units: list[WorkUnit]) -> None:
        bars.append(Progress(len(units), sum(len(u.items) for u in units), quiet=options["quiet"]))

    try:
        summary = run(listed, cfg, output, run_opts, on_plan=plan, on_unit=lambda result: bars[0].update(result),
                      on_shard=None if options["json_out"] else emit,
                      shard_inputs=listed.shards if stream is None
                      else itertools.chain(listed.shards, checked_stdin(stream, root, output, listed)))
    finally:
        for bar in bars:
            bar.close()
    if options.get("preview"):
        from vidprep.engine.preview import write_preview

        write_preview(listed, cfg, stage, options["preview"])
    code = summary.exit_code or (EXIT_PARTIAL if listed.problems else 0)  # stdin problems arrive during the run
    if options["json_out"]:
        emit_json({k: v for k, v in asdict(summary).items()} | {"exit_code": code})
    if code:
        raise typer.Exit(EXIT_PARTIAL)


def _make(stage: str) -> Any:
    """The command of a registered stage: the shared options, then the groups of every stage up to it."""
    groups = [INPUT_OPTS, LOG_OPTS, RUN_OPTS] + [stage_opts(s) for s in upto(stage)] + [typer_group(OUTPUT_OPTIONS)]
    if REGISTRY[stage].preview:
        groups.append(PREVIEW_OPT)

    @with_options(*groups)
    def command(inputs: INPUTS, output: OUTPUT, **options: Any) -> None:
        run_stage(stage, inputs, output, options)

    command.__doc__ = REGISTRY[stage].help
    command.__name__ = stage
    return exits_on_error(command)


def list_models() -> None:
    """Print the model families (what each needs, whether installed), then the torchvision registry."""
    from vidprep.engine.registry import model_catalogue

    families, torchvision_models = model_catalogue()
    emit("family\tinstalled\tneeds\t--weights\texamples")
    for fam in families:
        emit("\t".join([fam["family"], "yes" if fam["installed"] else "no", fam["needs"], fam["weights"],
                        fam["examples"]]))
    emit("")
    emit("torchvision model\tkind\tdim\tinput")
    for row in torchvision_models:
        emit("\t".join(str(row[k]) for k in ("name", "kind", "dim", "input")))


def _features_entry() -> Any:
    inner = _make("features")
    import functools
    import inspect
    from typing import Annotated, Optional

    sig = inspect.signature(inner)
    params = list(sig.parameters.values())
    params[0] = params[0].replace(annotation=Annotated[Optional[list[str]], typer.Argument(help="Videos, dirs, @lists, '-' or shard dirs.")], default=None)
    params[1] = params[1].replace(annotation=Annotated[Optional[Path], typer.Option("-o", "--output", help="Output directory.")], default=None)
    params.append(inspect.Parameter("list_models_flag", inspect.Parameter.KEYWORD_ONLY, default=False,
                                    annotation=Annotated[bool, typer.Option("--list-models", help="Print the model registry and exit.")]))

    @functools.wraps(inner)
    def features(*args: Any, **kwargs: Any) -> None:
        from vidprep.errors import UsageError

        if kwargs.pop("list_models_flag", False):
            list_models()
            return
        if not kwargs.get("inputs") or kwargs.get("output") is None:
            setup_logging()
            from vidprep.cli.output import report_error

            report_error(UsageError("features needs INPUTS and -o OUTPUT (or --list-models)"))
            raise typer.Exit(2)
        inner(*args, **kwargs)

    features.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return features


#: Stage commands with an entry of their own (extra flags around the generic command).
CUSTOM_ENTRIES = {"features": _features_entry}


def register(app: typer.Typer) -> None:
    """Add one command per registered stage to the app."""
    for stage in stage_names():
        custom = CUSTOM_ENTRIES.get(stage)
        app.command(stage)(custom() if custom else _make(stage))
