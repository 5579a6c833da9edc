"""Validated configuration for every stage and for whole runs; defaults are defined here once.

The same models back the CLI flags, `--config FILE` and `vidprep run PIPELINE.toml`, so a bad value fails the same
way everywhere: before any video is decoded, with a message that names the option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from vidprep.types import Sampling, SizeSpec

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_pair(text: str, sep: str, name: str) -> tuple[float, float]:
    """Parse ``"A<sep>B"`` into two floats, naming the option in the error."""
    parts = str(text).replace("X", "x").split(sep)
    if len(parts) != 2:
        raise ValueError(f"{name} must look like A{sep}B, got {text!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{name} must hold two numbers, got {text!r}") from None


class SplitConfig(_Model):
    """Frame sampling, resizing, clip and scene options (`vidprep split`)."""

    fps: float | None = None
    every: int | None = None
    num_frames: int | None = None
    size: int | None = None
    resize: str | None = None
    center_crop: int | None = None
    deinterlace: Literal["auto", "on", "off"] = "auto"
    clip_frames: int | None = None
    stride: int | None = None
    clip_seconds: float | None = None
    clip_stride: float | None = None
    tail: Literal["drop", "pad", "keep"] = "drop"
    scenes: bool = False
    scene_threshold: float = 3.0
    min_scene_seconds: float = 0.6
    scene_window: int = 2
    scene_min_content: float = 15.0
    scene_detector: Literal["adaptive", "transnetv2", "hybrid"] = "adaptive"
    scene_prob_threshold: float = 0.5
    label_from_dir: bool = False
    labels: str | None = None
    metrics: bool = True
    keep: str | None = None

    @field_validator("fps", "clip_seconds", "clip_stride", "min_scene_seconds", "scene_threshold")
    @classmethod
    def _positive_float(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError("must be > 0")
        return v

    @field_validator("every", "num_frames", "size", "center_crop", "clip_frames", "stride", "scene_window")
    @classmethod
    def _positive_int(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("scene_prob_threshold")
    @classmethod
    def _probability(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError("must be between 0 and 1 (exclusive)")
        return v

    @field_validator("resize")
    @classmethod
    def _resize(cls, v: str | None) -> str | None:
        if v is not None:
            w, h = parse_pair(v, "x", "resize")
            if w < 1 or h < 1 or w != int(w) or h != int(h):
                raise ValueError(f"resize must be WxH with positive integers, got {v!r}")
        return v

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: str | None) -> str | None:
        if v is not None:
            from vidprep.stages.keep_expr import parse
            from vidprep.stages.quality import METRICS

            parse(v, METRICS)  # a KeepError (a ValueError) names the bad token: exit 2 before any decoding
        return v

    @model_validator(mode="after")
    def _exclusive(self) -> SplitConfig:
        chosen = [n for n in ("fps", "every", "num_frames") if getattr(self, n) is not None]
        if len(chosen) > 1:
            given = ", ".join("--" + c.replace("_", "-") for c in chosen)
            raise ValueError(f"choose one frame sampling option, got {given}")
        if self.size and self.resize:
            raise ValueError("choose --size or --resize, not both")
        if self.clip_frames and self.clip_seconds:
            raise ValueError("choose --clip-frames or --clip-seconds, not both")
        if self.stride and not self.clip_frames:
            raise ValueError("--stride needs --clip-frames")
        if self.clip_stride and not self.clip_seconds:
            raise ValueError("--clip-stride needs --clip-seconds")
        if self.label_from_dir and self.labels:
            raise ValueError("choose --label-from-dir or --labels, not both")
        if self.keep is not None and not self.metrics:
            raise ValueError("--keep filters on quality metrics: it cannot be used with --no-metrics")
        return self

    def sampling(self) -> Sampling:
        """The decoder's frame sampling rule."""
        if self.fps:
            return Sampling("fps", float(self.fps))
        if self.every and self.every > 1:  # every 1st frame is every frame: no select, one showinfo fewer
            return Sampling("every", float(self.every))
        if self.num_frames:
            return Sampling("uniform", float(self.num_frames))
        return Sampling()

    def size_spec(self) -> SizeSpec:
        """The decoder's output size rule."""
        if self.resize:
            w, h = parse_pair(self.resize, "x", "resize")
            return SizeSpec(width=int(w), height=int(h), center_crop=self.center_crop)
        return SizeSpec(short_side=self.size, center_crop=self.center_crop)


class EnhanceConfig(_Model):
    """Color balance and contrast options (`vidprep enhance`)."""

    white_balance: Literal["none", "grayworld", "whitepatch", "percentile"] = "none"
    wb_percentile: float = 1.0
    contrast: Literal["none", "clahe", "equalize", "autolevels", "gamma"] = "none"
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    gamma: float = 1.0
    temporal_smoothing: float = 0.9

    @field_validator("wb_percentile")
    @classmethod
    def _pct(cls, v: float) -> float:
        if not 0 <= v < 50:
            raise ValueError("must be in [0, 50)")
        return v

    @field_validator("clahe_clip", "gamma")
    @classmethod
    def _pos(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be > 0")
        return v

    @field_validator("clahe_grid")
    @classmethod
    def _grid(cls, v: int) -> int:
        if not 1 <= v <= 64:
            raise ValueError("must be between 1 and 64")
        return v

    @field_validator("temporal_smoothing")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError("must be in [0, 1): the weight of the past in the moving average, 0 = off")
        return v


class AugmentConfig(_Model):
    """Clip-consistent random augmentation options (`vidprep augment`)."""

    rotate: float = 0.0
    scale: str | None = None
    crop: str | None = None
    random_resized_crop: bool = False
    hflip: float = 0.0
    color_jitter: str | None = None
    copies: int = 1
    keep_original: bool = False

    @field_validator("rotate")
    @classmethod
    def _rot(cls, v: float) -> float:
        if not 0 <= v <= 180:
            raise ValueError("must be in [0, 180] degrees")
        return v

    @field_validator("hflip")
    @classmethod
    def _prob(cls, v: float) -> float:
        if not 0 <= v <= 1:
            raise ValueError("must be a probability in [0, 1]")
        return v

    @field_validator("copies")
    @classmethod
    def _copies(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: str | None) -> str | None:
        if v is not None:
            lo, hi = parse_pair(v, ":", "scale")
            if not 0 < lo <= hi:
                raise ValueError(f"scale must be MIN:MAX with 0 < MIN <= MAX, got {v!r}")
        return v

    @field_validator("crop")
    @classmethod
    def _crop(cls, v: str | None) -> str | None:
        if v is not None:
            w, h = crop_size(v)
            if w < 1 or h < 1:
                raise ValueError(f"crop must be N or WxH with positive integers, got {v!r}")
        return v

    @field_validator("color_jitter")
    @classmethod
    def _jitter(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.split(",")
            if len(parts) != 4:
                raise ValueError(f"color_jitter must be B,C,S,H, got {v!r}")
            b, c, s, h = (float(p) for p in parts)
            if min(b, c, s, h) < 0 or h > 0.5:
                raise ValueError(f"color_jitter values must be >= 0 and hue <= 0.5, got {v!r}")
        return v

    @model_validator(mode="after")
    def _rrc(self) -> AugmentConfig:
        if self.random_resized_crop and not self.crop:
            raise ValueError("--random-resized-crop needs --crop for the output size")
        return self


def crop_size(text: str) -> tuple[int, int]:
    """``"N"`` -> (N, N); ``"WxH"`` -> (W, H)."""
    if "x" in text.lower():
        w, h = parse_pair(text.lower(), "x", "crop")
        return int(w), int(h)
    n = int(float(text))
    return n, n


class FeaturesConfig(_Model):
    """Model, weights, runtime and normalization options (`vidprep features`)."""

    model: str = "resnet18"
    weights: str = "DEFAULT"
    pool: Literal["mean", "max", "none"] = "mean"
    device: str = "auto"
    batch_size: int | None = None
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    normalize: Literal["none", "l2", "zscore", "pca"] = "none"
    pca_dim: int | None = None
    whiten: bool = False
    quantize: Literal["none", "uint8"] = "none"
    stats_from: str | None = None
    dtype: Literal["float32", "float16"] = "float32"
    text_labels: str | None = None
    text_template: str | None = None

    @field_validator("text_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and v.count("{}") != 1:
            raise ValueError(f"must hold one '{{}}' where the label goes (e.g. 'a photo of {{}}'), got {v!r}")
        return v

    @field_validator("batch_size", "pca_dim")
    @classmethod
    def _pos(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be >= 1")
        return v

    @model_validator(mode="after")
    def _norm(self) -> FeaturesConfig:
        if (self.pca_dim or self.whiten) and self.normalize != "pca":
            raise ValueError("--pca-dim/--whiten need --normalize pca")
        if self.quantize == "uint8" and self.normalize != "pca":
            raise ValueError("--quantize uint8 needs --normalize pca (as published frame-feature datasets do)")
        if self.text_template and not self.text_labels:
            raise ValueError("--text-template needs --text-labels")
        return self


#: Output options that pipeline files and shards written before OutputConfig existed keep in [split].
OUTPUT_KEYS = ("format", "wds_media", "frame_codec", "jpeg_quality")


class OutputConfig(_Model):
    """What the sink writes: the output format (:func:`vidprep.engine.sinks.output_format` decides a run's) and
    how frame shards store frames. Also accepted in ``[split]`` (where it lived before) and recorded there."""

    format: Literal["h5", "jpg", "png", "mp4", "wds"] = "h5"
    wds_media: Literal["jpg", "mp4"] = "jpg"
    frame_codec: Literal["raw", "jpeg"] = "raw"
    jpeg_quality: int = 90

    @field_validator("jpeg_quality")
    @classmethod
    def _quality(cls, v: int) -> int:
        if not 1 <= v <= 100:
            raise ValueError("must be between 1 and 100")
        return v


class RunConfig(_Model):
    """A whole run: which stages, with which options, and how work is cut into shards."""

    split: SplitConfig = SplitConfig()
    enhance: EnhanceConfig | None = None
    augment: AugmentConfig | None = None
    features: FeaturesConfig | None = None
    output: OutputConfig = OutputConfig()
    videos_per_shard: int = 16
    seed: int = 0
    timeout_s: float = 600.0
    max_pixels: int = 8192 * 8192

    @field_validator("videos_per_shard")
    @classmethod
    def _vps(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @model_validator(mode="after")
    def _feature_outputs(self) -> RunConfig:
        """Feature runs write feature shards only (no frames): output options for frames would do nothing."""
        if self.features is not None:
            output = self.output
            if "format" in output.model_fields_set and output.format not in ("h5", "wds"):
                raise ValueError(f"--format {output.format}: features writes feature shards (h5 or wds) only; use "
                                 "split, enhance or augment for jpg/png/mp4 outputs")
            for name in ("frame_codec", "jpeg_quality", "wds_media"):
                if name in output.model_fields_set:
                    raise ValueError(f"--{name.replace('_', '-')}: feature shards store no frames")
        from vidprep.shards.wds_options import check_wds_options

        check_wds_options(self.output, self.features)
        return self

    def record(self) -> dict[str, Any]:
        """The config as recorded in ``/meta/config_json`` and the manifest: output options inside ``split``, where
        shards have always recorded them (same keys, same resume fingerprints as before OutputConfig)."""
        data = self.model_dump(mode="json")
        split, output = data["split"], data.pop("output")
        keys = list(split)
        at = keys.index("label_from_dir")  # where SplitConfig held them: even manifest.json's key order is kept
        data["split"] = {**{k: split[k] for k in keys[:at]}, **output, **{k: split[k] for k in keys[at:]}}
        return data

    def stages(self) -> list[str]:
        """Names of the stages this run applies after splitting, in order (the stage registry's order)."""
        from vidprep.engine.registry import stage_names

        return [s for s in stage_names()[1:] if getattr(self, s) is not None]


def load_toml(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a pipeline file (see :func:`vidprep.config_tables.load_toml`)."""
    from vidprep.config_tables import load_toml as load

    return load(path)


def run_config_from(tables: dict[str, dict[str, Any]], *, model_defaults: bool = False) -> RunConfig:
    """Build a RunConfig from stage tables (see :func:`vidprep.config_tables.run_config_from`)."""
    from vidprep.config_tables import run_config_from as build_run

    return build_run(tables, model_defaults=model_defaults)
