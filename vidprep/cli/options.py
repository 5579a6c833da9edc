"""Every CLI option, declared once, grouped the way the help panels show them.

Stage options default to None ("not given") so that `--config FILE` values apply unless a flag overrides them;
the real defaults live in `vidprep.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidprep.cli.signature import Opt

_IO = "Input / output"
_RUN = "Run"
_SPLIT = "Frames and clips"
_ENH = "Enhancement"
_AUG = "Augmentation"
_FEAT = "Features"


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

RUN_OPTS = (
    _o("config", Optional[Path], "--config", help="TOML file with \\[split], \\[enhance], \\[augment], \\[features] tables; flags override it.", panel=_RUN),
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

SPLIT_OPTS = (
    _o("fps", Optional[float], "--fps", help="Sample F frames per second (first frame at or after each tick).", panel=_SPLIT),
    _o("every", Optional[int], "--every", help="Keep every N-th frame.", panel=_SPLIT),
    _o("num_frames", Optional[int], "--num-frames", help="Keep N frames spread evenly over the video.", panel=_SPLIT),
    _o("size", Optional[int], "--size", help="Scale so the short side is S pixels.", panel=_SPLIT),
    _o("resize", Optional[str], "--resize", help="Scale to exactly WxH (e.g. 320x240).", panel=_SPLIT),
    _o("center_crop", Optional[int], "--center-crop", help="Center-crop to an N x N square after scaling.", panel=_SPLIT),
    _o("deinterlace", Optional[str], "--deinterlace", help="auto (streams flagged interlaced, default) | on | off.", panel=_SPLIT),
    _o("clip_frames", Optional[int], "--clip-frames", help="Clips of T sampled frames.", panel=_SPLIT),
    _o("stride", Optional[int], "--stride", help="Step between clip starts, in sampled frames (default T).", panel=_SPLIT),
    _o("clip_seconds", Optional[float], "--clip-seconds", help="Clips of X seconds of real time.", panel=_SPLIT),
    _o("clip_stride", Optional[float], "--clip-stride", help="Step between clip starts in seconds (default X).", panel=_SPLIT),
    _o("tail", Optional[str], "--tail", help="Last incomplete clip: drop | pad | keep (default drop).", panel=_SPLIT),
    _o("scenes", Optional[bool], "--scenes/--no-scenes", help="Cut at shot boundaries; clips never cross a cut.", panel=_SPLIT),
    _o("scene_threshold", Optional[float], "--scene-threshold", help="Adaptive detector ratio threshold (default 3.0).", panel=_SPLIT),
    _o("min_scene_seconds", Optional[float], "--min-scene-seconds", help="Shortest scene (default 0.6 s).", panel=_SPLIT),
    _o("scene_detector", Optional[str], "--scene-detector", help="adaptive (default) | transnetv2 | hybrid (transnetv2/hybrid need: pip install vidprep\\[scenes]).", panel=_SPLIT),
    _o("scene_prob_threshold", Optional[float], "--scene-prob-threshold", help="TransNetV2 transition probability threshold (default 0.5).", panel=_SPLIT),
    _o("format", Optional[str], "--format", help="h5 (shards, default) | jpg | png | mp4 | wds (WebDataset tars).", panel=_SPLIT),
    _o("wds_media", Optional[str], "--wds-media", help="Frames in wds samples: jpg (one per frame, default) | mp4.", panel=_SPLIT),
    _o("frame_codec", Optional[str], "--frame-codec", help="Frames in shards: raw (default) | jpeg.", panel=_SPLIT),
    _o("jpeg_quality", Optional[int], "--jpeg-quality", help="JPEG quality 1-100 (default 90).", panel=_SPLIT),
    _o("labels", Optional[str], "--labels", help="CSV of video_id,label.", panel=_SPLIT),
    _o("label_from_dir", Optional[bool], "--label-from-dir", help="Class = the video's parent directory name.", panel=_SPLIT),
    _o("metrics", Optional[bool], "--metrics/--no-metrics", help="Per-clip quality metrics and perceptual hashes (default on).", panel=_SPLIT),
    _o("keep", Optional[str], "--keep", help="Keep only clips whose metrics pass, e.g. 'motion > 1.5 and black_ratio < 0.5'.", panel=_SPLIT),
)

ENHANCE_OPTS = (
    _o("white_balance", Optional[str], "--white-balance", help="none | grayworld | whitepatch | percentile.", panel=_ENH),
    _o("wb_percentile", Optional[float], "--wb-percentile", help="Percentile for the stretch (default 1).", panel=_ENH),
    _o("contrast", Optional[str], "--contrast", help="none | clahe | equalize | autolevels | gamma.", panel=_ENH),
    _o("clahe_clip", Optional[float], "--clahe-clip", help="CLAHE clip limit (default 2.0).", panel=_ENH),
    _o("clahe_grid", Optional[int], "--clahe-grid", help="CLAHE tiles per side (default 8).", panel=_ENH),
    _o("gamma", Optional[float], "--gamma", help="Gamma for --contrast gamma (default 1.0).", panel=_ENH),
    _o("temporal_smoothing", Optional[float], "--temporal-smoothing", help="Weight of the past in the moving average of per-frame statistics, 0 = off (default 0.9).", panel=_ENH),
)

AUGMENT_OPTS = (
    _o("rotate", Optional[float], "--rotate", help="Rotate by a uniform angle in +-DEG.", panel=_AUG),
    _o("scale", Optional[str], "--scale", help="Zoom factor range MIN:MAX.", panel=_AUG),
    _o("crop", Optional[str], "--crop", help="Random crop N or WxH.", panel=_AUG),
    _o("random_resized_crop", Optional[bool], "--random-resized-crop", help="Random-resized crop to --crop size.", panel=_AUG),
    _o("hflip", Optional[float], "--hflip", help="Probability of a horizontal flip.", panel=_AUG),
    _o("color_jitter", Optional[str], "--color-jitter", help="B,C,S,H jitter strengths.", panel=_AUG),
    _o("copies", Optional[int], "--copies", help="Augmented copies per clip (default 1).", panel=_AUG),
    _o("keep_original", Optional[bool], "--keep-original", help="Also keep the unaugmented clip as copy 0.", panel=_AUG),
)

FEATURE_OPTS = (
    _o("model", Optional[str], "--model", help="resnet18 | open_clip:ARCH | hf:ID or DIR | timm:NAME (see --list-models).", panel=_FEAT),
    _o("weights", Optional[str], "--weights", help="DEFAULT | a weights/tag name | PATH (file or model dir) | none.", panel=_FEAT),
    _o("pool", Optional[str], "--pool", help="2D models on clips: mean | max | none (keep T).", panel=_FEAT),
    _o("device", Optional[str], "--device", help="auto | cpu | cuda | mps.", panel=_FEAT),
    _o("batch_size", Optional[int], "--batch-size", help="Frames or clips per forward pass.", panel=_FEAT),
    _o("precision", Optional[str], "--precision", help="auto | fp32 | fp16 | bf16.", panel=_FEAT),
    _o("normalize", Optional[str], "--normalize", help="none | l2 | zscore | pca.", panel=_FEAT),
    _o("pca_dim", Optional[int], "--pca-dim", help="PCA output dimension.", panel=_FEAT),
    _o("whiten", Optional[bool], "--whiten", help="Whiten after PCA.", panel=_FEAT),
    _o("quantize", Optional[str], "--quantize", help="none | uint8 (after PCA).", panel=_FEAT),
    _o("stats_from", Optional[str], "--stats-from", help="Apply normalization.h5 fitted by another run.", panel=_FEAT),
    _o("dtype", Optional[str], "--dtype", help="Stored feature dtype: float32 | float16.", panel=_FEAT),
    _o("text_labels", Optional[str], "--text-labels", help="Zero-shot labels (image-text models): a file with one class prompt per line; scores go to /clips/text_scores.", panel=_FEAT),
    _o("text_template", Optional[str], "--text-template", help="Prompt template for --text-labels, e.g. 'a photo of {}'.", panel=_FEAT),
)

PREVIEW_OPT = (
    _o("preview", Optional[Path], "--preview", help="Write a before/after contact sheet PNG for a few clips.", panel=_IO),
)
