"""The stage registry: one entry per stage, holding its config model, its CLI option group and its builder.

Every list of stage names is derived from :data:`REGISTRY` (in pipeline order, ``split`` first): the pipeline
tables and ``RunConfig`` fields (:mod:`vidprep.config`), the stage commands and their option groups
(:mod:`vidprep.cli.stage_cmds`), ``vidprep run``'s stage order (:mod:`vidprep.cli.run_cmd`). A builder turns a
run's config into the stage's steps (:mod:`vidprep.engine.steps`); the worker composes the steps of every stage
the run uses, in registry order. Importing this module imports no torch, cv2 or Typer: builders import their
stage code when they run, in the worker.

Adding a stage: its computation in one module under ``stages/``, its steps (an adapter) in ``engine/``, its config
model in ``config.py`` (a field on ``RunConfig``), its options and help in ``engine/stage_options.py``, and one
:class:`StageEntry` here (see README, "Development").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from vidprep.config import AugmentConfig, EnhanceConfig, FeaturesConfig, RunConfig, SplitConfig
from vidprep.engine import stage_options as opts
from vidprep.engine.stage_options import OptionSpec

if TYPE_CHECKING:
    from vidprep.engine.steps import Steps
    from vidprep.stages.models import WeightsProof


@dataclass(frozen=True)
class BuildEnv:
    """What builders may need besides the config: the weights check the driver already made (hash once per run),
    and whether a model may be built in the background while the first video decodes (the serial executor;
    the run then waits for it before anything is published: `Steps.wait_ready`)."""

    weights_proof: WeightsProof | None = None
    background: bool = False


@dataclass(frozen=True)
class StageEntry:
    """One stage: its ``[name]`` table's model, its CLI option group + command help, and its builder.

    ``preview``: its command takes ``--preview`` (a before/after contact sheet).
    """

    name: str
    config: type[BaseModel]
    options: tuple[OptionSpec, ...]
    build: Callable[[RunConfig, BuildEnv], Steps]
    help: str
    preview: bool = False


def _split(config: RunConfig, env: BuildEnv) -> Steps:
    """Scene scoring and quality metrics (frame steps), then clip planning and the --keep filter (clip steps)."""
    from vidprep.engine.curation import CurateRows, QualityStep
    from vidprep.engine.split_steps import PlanClips, SceneStep
    from vidprep.engine.steps import Steps

    split = config.split
    steps = Steps([SceneStep(split)], [PlanClips(split)])
    if split.metrics:
        steps.extend(Steps([QualityStep(split)], [CurateRows(split)]))
    return steps


def _enhance(config: RunConfig, env: BuildEnv) -> Steps:
    from vidprep.engine.pixel_steps import EnhanceStep
    from vidprep.engine.steps import Steps

    assert config.enhance is not None
    return Steps([EnhanceStep(config.enhance)], [])


def _augment(config: RunConfig, env: BuildEnv) -> Steps:
    from vidprep.engine.pixel_steps import AugmentStep
    from vidprep.engine.steps import Steps

    assert config.augment is not None
    return Steps([], [AugmentStep(config.augment, config.seed)])


def _features(config: RunConfig, env: BuildEnv) -> Steps:
    """2D models: per-frame features while frames stream (unless augmented copies replace them), pooled per clip;
    3D models: per clip. Then zero-shot scores when ``--text-labels`` asks for them."""
    from vidprep.engine.clip_stream import StreamedClipFeatures, streams_clips
    from vidprep.engine.featurize import ClipFeatures, FrameFeatureStep, ZeroShotStep
    from vidprep.engine.steps import Steps
    from vidprep.executors import threads
    from vidprep.stages.features import FeatureExtractor
    from vidprep.stages.zero_shot import zero_shot_for

    assert config.features is not None
    share = threads.current()
    extractor = FeatureExtractor(config.features, seed=config.seed, threads=share.threads(),
                                 thread_budget=share.threads, max_threads=share.fixed or share.cpus,
                                 proof=env.weights_proof, background=env.background)
    steps = Steps([], [ClipFeatures(extractor, config)], deferred=[extractor])
    if extractor.spec.kind == "2d" and config.augment is None:
        steps.frame.append(FrameFeatureStep(extractor))
    elif extractor.spec.kind != "2d" and streams_clips(config):
        split = config.split
        assert split.clip_frames is not None
        steps.frame.append(StreamedClipFeatures(extractor, split.clip_frames, split.stride or split.clip_frames,
                                                extractor.spec.clip_len or split.clip_frames))
    zero_shot = zero_shot_for(extractor, config.features)
    if zero_shot is not None:
        steps.clip.append(ZeroShotStep(zero_shot))
    return steps


#: Stage name -> entry, in pipeline order (split first; each stage command runs the stages up to its own).
REGISTRY: dict[str, StageEntry] = {
    "split": StageEntry("split", SplitConfig, opts.SPLIT, _split, opts.HELP["split"]),
    "enhance": StageEntry("enhance", EnhanceConfig, opts.ENHANCE, _enhance, opts.HELP["enhance"], preview=True),
    "augment": StageEntry("augment", AugmentConfig, opts.AUGMENT, _augment, opts.HELP["augment"], preview=True),
    "features": StageEntry("features", FeaturesConfig, opts.FEATURES, _features, opts.HELP["features"]),
}


#: Output options (format, frame codec, JPEG quality): every stage command takes them; the sinks read them.
OUTPUT_OPTIONS: tuple[OptionSpec, ...] = opts.OUTPUT


def stage_names() -> tuple[str, ...]:
    """Every registered stage, in pipeline order."""
    return tuple(REGISTRY)


def upto(stage: str) -> tuple[str, ...]:
    """The stages a command named ``stage`` may use: those up to and including it."""
    names = stage_names()
    return names[: names.index(stage) + 1]


def build_steps(config: RunConfig, env: BuildEnv = BuildEnv()) -> Steps:
    """The steps of every stage this run uses (``split`` always), composed in registry order."""
    from vidprep.engine.steps import Steps

    steps = Steps()
    for name, entry in REGISTRY.items():
        if name == "split" or getattr(config, name, None) is not None:
            steps.extend(entry.build(config, env))
    return steps.ordered()


def model_catalogue() -> tuple[list[dict], list[dict]]:
    """What the features stage offers, for ``vidprep features --list-models``: the model families (what each
    needs, whether it is installed) and the rows of the torchvision registry (name, kind, dim, input)."""
    from vidprep.stages.features import list_models
    from vidprep.stages.models import families

    return families(), list_models()
