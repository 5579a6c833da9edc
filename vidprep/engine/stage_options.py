"""What each stage shows on the command line, as plain data: its option group and its command's help text.

The stage registry (:mod:`vidprep.engine.registry`) holds these; `vidprep.cli` turns each :class:`OptionSpec` into a
Typer option. Kept free of Typer so the library never imports the CLI framework. Stage options default to None
("not given") so that `--config FILE` values apply unless a flag overrides them; the real defaults live in
:mod:`vidprep.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

_SPLIT = "Frames and clips"
_OUT = "Output"
_ENH = "Enhancement"
_AUG = "Augmentation"
_FEAT = "Features"


@dataclass(frozen=True)
class OptionSpec:
    """One CLI option: the config key (and Python parameter name), its type, its flags, help and help panel."""

    name: str
    type: Any
    flags: tuple[str, ...]
    help: str
    panel: str
    default: Any = None


def _o(name: str, typ: Any, *flags: str, help: str, panel: str, default: Any = None) -> OptionSpec:
    return OptionSpec(name, typ, flags, help, panel, default)


SPLIT = (
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
    _o("labels", Optional[str], "--labels", help="CSV of video_id,label.", panel=_SPLIT),
    _o("label_from_dir", Optional[bool], "--label-from-dir", help="Class = the video's parent directory name.", panel=_SPLIT),
    _o("metrics", Optional[bool], "--metrics/--no-metrics", help="Per-clip quality metrics and perceptual hashes (default on).", panel=_SPLIT),
    _o("keep", Optional[str], "--keep", help="Keep only clips whose metrics pass, e.g. 'motion > 1.5 and black_ratio < 0.5'.", panel=_SPLIT),
)

OUTPUT = (
    _o("format", Optional[str], "--format", help="h5 (shards, default) | jpg | png | mp4 | wds (WebDataset tars).", panel=_OUT),
    _o("wds_media", Optional[str], "--wds-media", help="Frames in wds samples: jpg (one per frame, default) | mp4.", panel=_OUT),
    _o("frame_codec", Optional[str], "--frame-codec", help="Frames in shards: raw (default) | jpeg.", panel=_OUT),
    _o("jpeg_quality", Optional[int], "--jpeg-quality", help="JPEG quality 1-100 (default 90).", panel=_OUT),
)

ENHANCE = (
    _o("white_balance", Optional[str], "--white-balance", help="none | grayworld | whitepatch | percentile.", panel=_ENH),
    _o("wb_percentile", Optional[float], "--wb-percentile", help="Percentile for the stretch (default 1).", panel=_ENH),
    _o("contrast", Optional[str], "--contrast", help="none | clahe | equalize | autolevels | gamma.", panel=_ENH),
    _o("clahe_clip", Optional[float], "--clahe-clip", help="CLAHE clip limit (default 2.0).", panel=_ENH),
    _o("clahe_grid", Optional[int], "--clahe-grid", help="CLAHE tiles per side (default 8).", panel=_ENH),
    _o("gamma", Optional[float], "--gamma", help="Gamma for --contrast gamma (default 1.0).", panel=_ENH),
    _o("temporal_smoothing", Optional[float], "--temporal-smoothing", help="Weight of the past in the moving average of per-frame statistics, 0 = off (default 0.9).", panel=_ENH),
)

AUGMENT = (
    _o("rotate", Optional[float], "--rotate", help="Rotate by a uniform angle in +-DEG.", panel=_AUG),
    _o("scale", Optional[str], "--scale", help="Zoom factor range MIN:MAX.", panel=_AUG),
    _o("crop", Optional[str], "--crop", help="Random crop N or WxH.", panel=_AUG),
    _o("random_resized_crop", Optional[bool], "--random-resized-crop", help="Random-resized crop to --crop size.", panel=_AUG),
    _o("hflip", Optional[float], "--hflip", help="Probability of a horizontal flip.", panel=_AUG),
    _o("color_jitter", Optional[str], "--color-jitter", help="B,C,S,H jitter strengths.", panel=_AUG),
    _o("copies", Optional[int], "--copies", help="Augmented copies per clip (default 1).", panel=_AUG),
    _o("keep_original", Optional[bool], "--keep-original", help="Also keep the unaugmented clip as copy 0.", panel=_AUG),
)

FEATURES = (
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

#: Each stage command's help: what it does and 2-3 copy-pasteable examples.
HELP = {
    "split": """Segment videos into frames or clips and write HDF5 shards (or jpg/png/mp4 files).

Examples:

  vidprep split videos/ -o frames/ --fps 2 --size 224

  vidprep split videos/ -o clips/ --clip-frames 16 --stride 8 --size 112 --label-from-dir

  vidprep split movie.mp4 -o scenes/ --scenes --format mp4
""",
    "enhance": """Color balance and contrast, flicker-free (statistics smoothed over time).

Examples:

  vidprep enhance videos/ -o enh/ --fps 1 --white-balance grayworld --contrast clahe

  vidprep split videos/ -o frames/ --fps 2 | vidprep enhance - -o enh/ --contrast autolevels

  vidprep enhance videos/ -o enh/ --contrast equalize --format mp4 --preview sheet.png
""",
    "augment": """Rotate/scale/crop/flip/jitter with one random draw per clip; K reproducible copies.

Examples:

  vidprep augment videos/ -o aug/ --clip-frames 16 --size 128 --crop 112 --hflip 0.5 --copies 4

  vidprep augment frames/ -o aug/ --rotate 15 --scale 0.9:1.1 --color-jitter 0.2,0.2,0.2,0.05 --seed 7

  vidprep augment videos/ -o aug/ --fps 2 --random-resized-crop --crop 224 --keep-original --preview aug.png
""",
    "features": """Features from image models (per frame, pooled) or video models (per clip), normalized: torchvision,
open_clip (CLIP/SigLIP, zero-shot labels), Hugging Face (DINOv2, CLIP/SigLIP towers, VideoMAE) and timm.

Examples:

  vidprep features videos/ -o feats/ --model resnet50 --fps 1 --normalize pca --pca-dim 256 --quantize uint8

  vidprep features videos/ -o feats/ --model r2plus1d_18 --clip-frames 16 --size 112 --weights ckpt.pt

  vidprep features videos/ -o clip/ --model open_clip:ViT-B-32 --weights openai --text-labels labels.txt

  vidprep features videos/ -o dino/ --model hf:facebook/dinov2-small --weights ./dinov2-small/

  vidprep features --list-models
""",
}
