"""``open_clip:<arch>`` and ``open_clip:/model/dir``: open-clip-torch image-text models (CLIP, SigLIP, ...).

The architecture is one of open_clip's built-in configs (offline, ``open_clip.list_models()``) or a local directory
holding ``open_clip_config.json`` (``{"model_cfg": ..., "preprocess_cfg": ...}``, open_clip's own ``local-dir:``
layout) and optionally its weights (``open_clip_model.safetensors``, ...). Features are the image tower's embedding
(``encode_image``, in the joint image-text space, not normalized: use ``--normalize l2``); the text tower embeds
zero-shot prompts (``encode_text``), with the tokenizer loaded offline (open_clip ships its BPE vocabulary; models
with a Hugging Face tokenizer need it in the HF cache).

Weights: ``none`` (seeded random), ``PATH`` (an open_clip state dict or safetensors file), ``TAG`` (a pretrained tag
such as ``openai`` or ``laion2b_s34b_b79k``, read from the Hugging Face cache), ``DEFAULT`` (the arch's first tag;
for a directory: the weights file in it). Preprocessing is open_clip's: the tag's config (the first tag's for
``none`` and files), else the directory's ``preprocess_cfg``: resize mode (``shortest`` + center crop, or
``squash``), interpolation, mean/std.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from vidprep.errors import ConfigError, WeightsError
from vidprep.stages.models import weights as w
from vidprep.stages.models.base import Backend, FeatureSpec, InputSpec, WeightsChoice, seeded

log = logging.getLogger("vidprep.stages.models.open_clip")

DIR_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors")
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def make_backend(ref: str) -> OpenClipBackend:
    """The backend for ``open_clip:<arch>`` or ``open_clip:<dir>``."""
    import open_clip

    path = Path(ref).expanduser()
    if path.is_dir():
        cfg_path = path / "open_clip_config.json"
        if not cfg_path.is_file():
            raise ConfigError("--model: an open_clip model directory needs open_clip_config.json", path=str(path))
        from vidprep.stages.models.hf import _read_json

        data = _read_json(cfg_path)
        if not isinstance(data.get("model_cfg"), dict):
            raise ConfigError("open_clip_config.json has no model_cfg object", path=str(cfg_path))
        return OpenClipBackend(ref, data["model_cfg"], data.get("preprocess_cfg") or {}, local=path.resolve())
    if ref not in open_clip.list_models():
        raise ConfigError(f"--model open_clip:{ref}: not an open_clip architecture (see open_clip.list_models(), "
                          "or give a directory with open_clip_config.json)")
    return OpenClipBackend(ref, open_clip.get_model_config(ref), {})


class OpenClipBackend(w.CachedFileWeights, Backend):
    """One open_clip architecture (or model directory)."""

    family = "open_clip"
    kind = "2d"
    image_text = True

    def __init__(self, ref: str, model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any], *,
                 local: Path | None = None) -> None:
        import open_clip

        self.ref, self.model_cfg, self.local = ref, model_cfg, local
        self.name = f"open_clip:{ref}"
        self.tags = [] if local else list(open_clip.list_pretrained_tags_by_model(ref))
        self.base_pre = {**model_cfg.get("preprocess_cfg", {}), **preprocess_cfg}
        size = min(self.input_spec(self._default_choice()).resize)
        self.default_split = {"fps": 1.0, "size": size}

    def _default_choice(self) -> WeightsChoice:
        return WeightsChoice("none", "none", extra={"tag": self.tags[0]} if self.tags else {})

    def resolve_weights(self, text: str) -> WeightsChoice:
        tag_of_default = {"tag": self.tags[0]} if self.tags else {}
        if text.lower() == "none":
            return WeightsChoice("none", "none", extra=tag_of_default)
        if text == "DEFAULT" and self.local is not None:
            found = next((self.local / n for n in DIR_WEIGHTS if (self.local / n).is_file()), None)
            if found is None:
                raise WeightsError(f"--weights DEFAULT: the model directory holds no weights "
                                   f"({' or '.join(DIR_WEIGHTS)}); use --weights none or PATH", path=str(self.local))
            return WeightsChoice("file", str(found))
        tag = self.tags[0] if text == "DEFAULT" and self.tags else text
        if tag in self.tags:
            return self._tag_choice(tag)
        path = Path(text).expanduser()
        if path.is_file():
            return WeightsChoice("file", str(path.resolve()), extra=tag_of_default)
        known = ", ".join(["none", "DEFAULT", *self.tags[:6]] + (["..."] if len(self.tags) > 6 else []))
        raise WeightsError(f"--weights for {self.name}: not a pretrained tag or a weights file (use {known}, or a "
                           "file path)", path=text)

    def _tag_choice(self, tag: str) -> WeightsChoice:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(self.ref, tag)
        repo = (cfg.get("hf_hub") or "").strip("/")
        if not repo:
            raise WeightsError(f"--weights {tag}: open_clip fetches {self.ref}/{tag} from {cfg.get('url') or '?'}, "
                               "not the Hugging Face hub; download it and pass --weights PATH")
        return WeightsChoice("hub", f"{self.ref}/{tag}", extra={"tag": tag, "repo": repo, "files": HUB_FILES})

    def input_spec(self, choice: WeightsChoice) -> InputSpec:
        import open_clip

        pre = dict(self.base_pre)
        if choice.extra.get("tag"):
            pre.update({k: v for k, v in open_clip.get_pretrained_cfg(self.ref, choice.extra["tag"]).items()
                        if k in ("mean", "std", "interpolation", "resize_mode", "size") and v})
        return _input_spec(pre, self.model_cfg, self.name)

    def feature_spec(self, choice: WeightsChoice) -> FeatureSpec:
        return FeatureSpec(self.name, "2d", int(self.model_cfg["embed_dim"]), None, False, self.family, True)

    def weights_what(self, choice: WeightsChoice) -> str:
        return f"weights {choice.id}"

    def _create(self, choice: WeightsChoice) -> Any:
        import open_clip

        quick = False
        if choice.source == "hub":
            quick = bool(open_clip.get_pretrained_cfg(self.ref, choice.extra["tag"]).get("quick_gelu"))
        name = f"local-dir:{self.local}" if self.local is not None else self.ref
        logging.disable(logging.WARNING)  # open_clip warns on the root logger that no weights were loaded: we load them
        try:
            return open_clip.create_model(name, pretrained=None, load_weights=False, force_quick_gelu=quick)
        finally:
            logging.disable(logging.NOTSET)

    def build(self, choice: WeightsChoice, *, seed: int = 0, proof: Any = None) -> tuple[Any, dict[str, Any]]:
        info, state = self.read_weights(choice, seed, proof)
        model = seeded(seed, lambda: self._create(choice))
        if state is not None:
            w.load_matching(model, state, where=info.get("file", choice.id), name=self.name)
        return OpenClipImage(model.eval()).eval(), info

    def tokenizer(self) -> Any:
        """open_clip's tokenizer for this model, loaded offline (an HF tokenizer must already be cached)."""
        import open_clip

        hf_name = self.model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
        if hf_name:
            import huggingface_hub as hub

            cached = hub.try_to_load_from_cache(hf_name, "tokenizer_config.json")
            if not isinstance(cached, str) and not w.can_reach(w.HF_HOST):
                raise ConfigError(f"--text-labels: {self.name} uses the Hugging Face tokenizer {hf_name}, which is not "
                                  f"in the HF cache ({hub.constants.HF_HUB_CACHE}): run `huggingface-cli download "
                                  f"{hf_name}` where a network is reachable")
        return open_clip.get_tokenizer(f"local-dir:{self.local}" if self.local is not None else self.ref)

    def encode_text(self, model: Any, prompts: list[str]) -> Any:
        tokens = self.tokenizer()(prompts)
        device = next(model.parameters()).device
        with torch.inference_mode():
            return model.clip.encode_text(tokens.to(device)).float()


class OpenClipImage(torch.nn.Module):
    """The image tower of an open_clip model as a features module (the text tower stays for zero-shot prompts)."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(x)


def _input_spec(pre: dict[str, Any], model_cfg: dict[str, Any], name: str) -> InputSpec:
    """open_clip's eval transform (``image_transform`` with a PreprocessCfg) as an InputSpec."""
    from open_clip.transform import PreprocessCfg

    size = pre.get("size") or model_cfg.get("vision_cfg", {}).get("image_size") or 224
    cfg = PreprocessCfg(**{**{k: v for k, v in pre.items() if k in PreprocessCfg.__dataclass_fields__}, "size": size})
    h, wd = (cfg.size, cfg.size) if isinstance(cfg.size, int) else tuple(cfg.size)
    interp = "bilinear" if cfg.interpolation == "bilinear" else "bicubic"  # as open_clip maps it
    if cfg.resize_mode == "squash":
        resize: tuple[int, ...] = (h, wd)
    elif cfg.resize_mode == "shortest" and h == wd:
        resize = (h,)
    else:
        raise ConfigError(f"--model {name}: open_clip resize_mode {cfg.resize_mode!r} at {h}x{wd} is not supported")
    return InputSpec(resize=resize, crop=(h, wd), mean=tuple(cfg.mean), std=tuple(cfg.std), interpolation=interp)
