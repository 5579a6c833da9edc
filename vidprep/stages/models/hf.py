"""``hf:<model id>`` and ``hf:/model/dir``: transformers vision towers (DINOv2, CLIP, SigLIP) and VideoMAE clips.

Where the architecture comes from, never the hub unasked:

- a model id vidprep ships (:data:`hf_configs.SHIPPED`: DINOv2 small/base/large, CLIP ViT-B/32 and B/16 vision
  towers, SigLIP base 224 and SigLIP 2 base 224 vision towers, VideoMAE base): built from the shipped config;
- a local model directory (``config.json``, optional ``preprocessor_config.json``, ``model.safetensors`` or
  ``pytorch_model.bin``), as ``save_pretrained`` writes it: what a user brings, and what the tests use;
- any other id: its ``config.json`` must be in the Hugging Face cache (or downloadable when a network is reachable
  and ``VIDPREP_OFFLINE`` is unset), else exit 2 naming what to put where.

Features: DINOv2 and SigLIP the pooled output (DINOv2: the layer-normed CLS token; SigLIP: its attention-pooling
head), CLIP the projected image embedding, ViT the CLS token, VideoMAE the mean of its last hidden states over all
tokens of a 16-frame clip. Weights files are read by vidprep (safetensors or ``torch.load(weights_only=True)``) and
handed to transformers' loader, which maps checkpoint keys (renames, base prefixes such as ``videomae.``); keys of
other towers and heads are ignored, every key of the tower must be present. No remote code is ever run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from vidprep.errors import ConfigError, WeightsError
from vidprep.stages.models import weights as w
from vidprep.stages.models.base import PIL_RESAMPLE, Backend, FeatureSpec, InputSpec, WeightsChoice, seeded
from vidprep.stages.models.hf_configs import SHIPPED

log = logging.getLogger("vidprep.stages.models.hf")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: model_type -> (transformers class, sub-config attribute or None, which output is the feature)
TOWERS: dict[str, tuple[str, str | None, str]] = {
    "dinov2": ("Dinov2Model", None, "pooler"),
    "clip": ("CLIPVisionModelWithProjection", "vision_config", "image_embeds"),
    "clip_vision_model": ("CLIPVisionModelWithProjection", None, "image_embeds"),
    "siglip": ("SiglipVisionModel", "vision_config", "pooler"),
    "siglip_vision_model": ("SiglipVisionModel", None, "pooler"),
    "vit": ("ViTModel", None, "cls"),
    "videomae": ("VideoMAEModel", None, "mean"),
}


def make_backend(ref: str) -> HFBackend:
    """``hf:<id>`` (shipped or cached) or ``hf:<dir>`` (a local model directory)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return HFBackend(ref, _read_json(path / "config.json"), _read_json(path / "preprocessor_config.json", {}),
                         local=path.resolve())
    if ref in SHIPPED:
        entry = SHIPPED[ref]
        return HFBackend(ref, dict(entry["config"]), dict(entry["preprocessor"]), fps=entry.get("fps"))
    if ref.startswith(("/", ".", "~")) or path.suffix:
        raise ConfigError(f"--model hf:{ref}: no such model directory (it needs config.json and weights)")
    cfg_path, _ = w.hf_cached(ref, ("config.json",), what=f"--model hf:{ref} (not one vidprep ships)")
    pre = _cached_json(ref, "preprocessor_config.json")
    return HFBackend(ref, _read_json(cfg_path), pre or {}, hub_config=True)


def _read_json(path: Path, default: dict | None = None) -> dict[str, Any]:
    if not path.is_file() and default is not None:
        return default
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"not a readable JSON model config: {err}", path=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("not a JSON object", path=str(path))
    return data


def _cached_json(repo: str, filename: str) -> dict[str, Any] | None:
    import huggingface_hub as hub

    found = hub.try_to_load_from_cache(repo, filename)
    return _read_json(Path(found)) if isinstance(found, str) else None


class HFBackend(w.CachedFileWeights, Backend):
    """One transformers model: its config, its preprocessing, and where its weights may come from."""

    family = "hf"

    def __init__(self, ref: str, config: dict[str, Any], preprocessor: dict[str, Any], *, fps: float | None = None,
                 local: Path | None = None, hub_config: bool = False) -> None:
        self.ref, self.local, self.hub_config = ref, local, hub_config
        self.name = f"hf:{ref}"
        model_type = config.get("model_type")
        if model_type not in TOWERS:
            raise ConfigError(f"--model {self.name}: model_type {model_type!r} is not supported "
                              f"(supported: {', '.join(TOWERS)})")
        self.model_type = model_type
        self.config = _config_object(config)
        self.cls_name, sub, self.output = TOWERS[model_type]
        self.tower_config = _tower_config(self.config, model_type, sub)
        self.kind = "3d" if model_type == "videomae" else "2d"
        self.clip_len = int(self.tower_config.num_frames) if self.kind == "3d" else None
        self.input = _input_spec(preprocessor or _default_preprocessor(model_type), self.clip_len, self.name)
        size = min(self.input.resize)
        self.default_split = ({"fps": float(fps or 7.5), "clip_frames": self.clip_len, "size": size}
                              if self.kind == "3d" else {"fps": 1.0, "size": size})

    @property
    def dim(self) -> int:
        """Feature dimension: the projection for CLIP, the hidden size otherwise."""
        if self.output == "image_embeds":
            return int(self.tower_config.projection_dim)
        return int(self.tower_config.hidden_size)

    def resolve_weights(self, text: str) -> WeightsChoice:
        if text.lower() == "none":
            return WeightsChoice("none", "none")
        if text == "DEFAULT":
            if self.local is not None:
                return WeightsChoice("file", str(_weights_in(self.local, self.name)))
            return WeightsChoice("hub", self.ref, extra={"repo": self.ref, "files": WEIGHT_FILES})
        path = Path(text).expanduser()
        if path.is_dir():
            return WeightsChoice("file", str(_weights_in(path.resolve(), "--weights")))
        if path.is_file():
            return WeightsChoice("file", str(path.resolve()))
        raise WeightsError(f"--weights for {self.name}: no such weights file or model directory "
                           "(use DEFAULT, none, a file or a directory)", path=text)

    def input_spec(self, choice: WeightsChoice) -> InputSpec:
        return self.input

    def feature_spec(self, choice: WeightsChoice) -> FeatureSpec:
        return FeatureSpec(self.name, self.kind, self.dim, self.clip_len, False, self.family)

    def build(self, choice: WeightsChoice, *, seed: int = 0, proof: Any = None) -> tuple[Any, dict[str, Any]]:
        import transformers

        info, state = self.read_weights(choice, seed, proof)
        cls = getattr(transformers, self.cls_name)
        if state is None:
            model = seeded(seed, lambda: cls(self.tower_config))
        else:
            model = _load(cls, self.tower_config, state, where=info.get("file", choice.id), name=self.name)
        return HFFeatures(model.eval(), self.output, self.kind == "3d").eval(), info


class HFFeatures(torch.nn.Module):
    """A transformers tower as a features module: preprocessed pixels in, (N,D) features out."""

    def __init__(self, model: Any, output: str, video: bool) -> None:
        super().__init__()
        self.model, self.output, self.video = model, output, video

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.video:  # the engine gives (B,3,T,H,W); VideoMAE takes (B,T,3,H,W)
            x = x.permute(0, 2, 1, 3, 4)
        out = self.model(pixel_values=x)
        if self.output == "pooler":
            return out.pooler_output
        if self.output == "image_embeds":
            return out.image_embeds
        if self.output == "cls":
            return out.last_hidden_state[:, 0]
        return out.last_hidden_state.mean(dim=1)


def _config_object(config: dict[str, Any]) -> Any:
    """A transformers config from a plain dict (only built-in model types: no remote code)."""
    from transformers import AutoConfig

    values = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "auto_map")}
    try:
        return AutoConfig.for_model(config["model_type"], **values)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--model: cannot build a {config['model_type']} config: {err}") from None


def _tower_config(config: Any, model_type: str, sub: str | None) -> Any:
    """The vision tower's config (CLIP's keeps the projection width of the full model)."""
    if sub is None:
        return config
    tower = getattr(config, sub)
    if model_type == "clip":
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(**{**tower.to_dict(), "projection_dim": config.projection_dim})
    return tower


def _default_preprocessor(model_type: str) -> dict[str, Any]:
    """Preprocessing of the shipped model of the same type, for a directory without preprocessor_config.json."""
    for entry in SHIPPED.values():
        if entry["config"]["model_type"].removesuffix("_vision_model") == model_type.removesuffix("_vision_model"):
            return dict(entry["preprocessor"])
    raise ConfigError(f"model_type {model_type}: the model directory needs a preprocessor_config.json")


def _input_spec(pre: dict[str, Any], clip_len: int | None, name: str) -> InputSpec:
    """An HF image processor config (size, crop_size, resample, mean/std) as an InputSpec."""
    size = pre.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if "shortest_edge" in size:
        resize: tuple[int, ...] = (int(size["shortest_edge"]),)
    elif "height" in size and "width" in size:
        resize = (int(size["height"]), int(size["width"]))
    else:
        raise ConfigError(f"--model {name}: unsupported preprocessor size {size!r}")
    crop_cfg = pre.get("crop_size") or {}
    if isinstance(crop_cfg, int):
        crop_cfg = {"height": crop_cfg, "width": crop_cfg}
    if pre.get("do_center_crop", bool(crop_cfg)) and crop_cfg:
        crop = (int(crop_cfg["height"]), int(crop_cfg["width"]))
    elif len(resize) == 2:
        crop = (resize[0], resize[1])
    else:
        raise ConfigError(f"--model {name}: a shortest-edge resize without a center crop gives frames of varying "
                          "shape; vidprep needs crop_size")
    interp = PIL_RESAMPLE.get(int(pre.get("resample", 2)), "bicubic")
    mean = tuple(pre.get("image_mean", (0.5, 0.5, 0.5)))
    std = tuple(pre.get("image_std", (0.5, 0.5, 0.5)))
    return InputSpec(resize=resize, crop=crop, mean=mean, std=std, interpolation=interp, clip_len=clip_len)


def _weights_in(directory: Path, what: str) -> Path:
    """The weights file of a model directory (safetensors preferred)."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise WeightsError(f"{what}: the model directory holds no weights ({' or '.join(WEIGHT_FILES)}); "
                       "add one, or use --weights none for random weights", path=str(directory))


def _load(cls: Any, config: Any, state: dict[str, Any], *, where: str, name: str) -> Any:
    """The tower built by transformers' own loader from ``state`` (already read without running code).

    transformers renames and merges checkpoint keys per model (its conversion mapping, base-model prefixes such as
    ``videomae.``), so loading goes through ``from_pretrained(None, state_dict=...)``; keys of other towers and
    heads are ignored, a missing or mis-shaped key of the tower is a WeightsError.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report goes to stderr; vidprep reports problems itself
    hf_logging.disable_progress_bar()
    try:
        model, report = cls.from_pretrained(None, config=config, state_dict=state, output_loading_info=True)
    except Exception as err:  # shape errors and the like surface as RuntimeError/ValueError
        raise WeightsError(f"does not match {name}: {' '.join(str(err).split())[:300]}", path=where) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    problems = [f"{len(report[k])} {what} keys ({w.few(sorted(map(str, report[k])))})"
                for k, what in (("missing_keys", "missing"), ("mismatched_keys", "mis-shaped")) if report.get(k)]
    if problems:
        raise WeightsError(f"does not match {name}: {'; '.join(problems)}", path=where)
    if report.get("unexpected_keys"):
        log.info("%s: ignored %d keys of other towers/heads", where, len(report["unexpected_keys"]))
    return model
