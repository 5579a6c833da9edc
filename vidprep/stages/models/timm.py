"""``timm:<name>``: any image backbone of timm's registry, pooled pre-logits features (``num_classes=0``).

Architectures come from timm's own registry (offline). Preprocessing follows ``timm.data.resolve_data_config`` for
the model (its pretrained config): image size, ``crop_pct`` (resize the short side to ``floor(size / crop_pct)``,
then center-crop ``size``; ``crop_mode='squash'`` resizes to a square first), interpolation, mean and std.

Weights: ``none`` (seeded random), ``PATH`` (a timm state dict or safetensors file; the classifier's keys are
ignored), ``DEFAULT`` (the model's pretrained file in the Hugging Face cache: ``model.safetensors`` or
``pytorch_model.bin`` of its ``hf_hub_id``; downloaded only when reachable and ``VIDPREP_OFFLINE`` is unset).
"""

from __future__ import annotations

import logging
import math
from functools import cached_property
from pathlib import Path
from typing import Any

from vidprep.errors import ConfigError, WeightsError
from vidprep.stages.models import weights as w
from vidprep.stages.models.base import PIL_RESAMPLE, Backend, FeatureSpec, InputSpec, WeightsChoice, seeded

log = logging.getLogger("vidprep.stages.models.timm")

HF_FILES = ("model.safetensors", "pytorch_model.bin")


def make_backend(arch: str) -> TimmBackend:
    """The backend for ``timm:<arch>``."""
    return TimmBackend(arch)


class TimmBackend(w.CachedFileWeights, Backend):
    """One timm architecture, headless."""

    family = "timm"
    kind = "2d"

    def __init__(self, arch: str) -> None:
        import timm

        if not timm.is_model(arch):
            close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
            raise ConfigError(f"--model timm:{arch}: not in timm's registry"
                              + (f" (similar: {', '.join(close)})" if close else " (see timm.list_models())"))
        self.arch = arch
        self.name = f"timm:{arch}"
        self.input = _input_spec(self._data_config)
        self.default_split = {"fps": 1.0, "size": self.input.resize[0]}

    def _create(self) -> Any:
        import timm

        return timm.create_model(self.arch, pretrained=False, num_classes=0)

    @cached_property
    def _meta(self) -> Any:
        """The model built on the meta device (no memory, no init cost): config, head name, dimension."""
        import torch

        with torch.device("meta"):
            return self._create()

    @cached_property
    def _data_config(self) -> dict[str, Any]:
        from timm.data import resolve_data_config

        return resolve_data_config({}, model=self._meta)

    @cached_property
    def dim(self) -> int:
        """Feature dimension: the output width of the headless model (one forward pass on the meta device)."""
        import torch

        size = self._data_config["input_size"]
        try:
            with torch.device("meta"):
                return int(self._meta(torch.empty(1, *size)).shape[-1])
        except Exception:  # some ops have no meta kernel: fall back to what the model declares
            return int(getattr(self._meta, "head_hidden_size", None) or self._meta.num_features)

    def resolve_weights(self, text: str) -> WeightsChoice:
        if text.lower() == "none":
            return WeightsChoice("none", "none")
        if text == "DEFAULT":
            cfg = self._meta.pretrained_cfg or {}
            repo = cfg.get("hf_hub_id")
            if not repo:
                raise WeightsError(f"--weights DEFAULT: timm has no Hugging Face hub entry for {self.arch}; "
                                   "pass --weights PATH to a state dict or .safetensors file")
            return WeightsChoice("hub", repo, extra={"repo": repo, "files": HF_FILES})
        path = Path(text).expanduser()
        if path.is_file():
            return WeightsChoice("file", str(path.resolve()))
        raise WeightsError(f"--weights for {self.name}: no such weights file (use DEFAULT, none or a file path)",
                           path=text)

    def input_spec(self, choice: WeightsChoice) -> InputSpec:
        return self.input

    def feature_spec(self, choice: WeightsChoice) -> FeatureSpec:
        channels_last = not hasattr(self._meta, "patch_embed")  # convnets gain from it, ViTs do not
        return FeatureSpec(self.name, "2d", self.dim, None, channels_last, self.family)

    def build(self, choice: WeightsChoice, *, seed: int = 0, proof: Any = None) -> tuple[Any, dict[str, Any]]:
        info, state = self.read_weights(choice, seed, proof)
        model = seeded(seed, self._create)
        if state is not None:
            w.load_matching(model, state, where=info.get("file", choice.id), name=self.name,
                            ignore=_classifier_prefixes(model))
        return model.eval(), info


def _classifier_prefixes(model: Any) -> tuple[str, ...]:
    """State dict prefixes of the classifier that ``num_classes=0`` removed (ignored in weights files)."""
    names = (model.pretrained_cfg or {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    own = model.state_dict()
    return tuple(f"{n}." for n in names if not any(k.startswith(f"{n}.") for k in own))


def _input_spec(cfg: dict[str, Any]) -> InputSpec:
    """timm's eval transform (``transforms_imagenet_eval``) as an InputSpec."""
    _, h, wd = cfg["input_size"]
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    mode = cfg.get("crop_mode") or "center"
    scale = (math.floor(h / crop_pct), math.floor(wd / crop_pct))
    interp = cfg.get("interpolation") or "bilinear"
    interp = PIL_RESAMPLE.get(interp, interp) if isinstance(interp, int) else interp
    if interp not in ("bilinear", "bicubic", "nearest"):
        interp = "bicubic"  # timm's 'random' (training only) evaluates as bicubic
    if mode == "squash":
        resize: tuple[int, ...] = scale
    elif mode == "center" and h == wd:
        resize = (scale[0],)
    else:
        raise ConfigError(f"timm crop_mode {mode!r} with input {h}x{wd} is not supported by vidprep's preprocessing")
    return InputSpec(resize=resize, crop=(h, wd), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                     interpolation=interp)
