"""Tiny random-initialized model directories for every backend family, written as a user would write them.

Each helper saves a model the way its library does (``save_pretrained`` for transformers: config.json +
model.safetensors; open_clip's ``open_clip_config.json`` layout) so tests reach the backends through the real CLI
(``--model hf:DIR``, ``--model open_clip:DIR``) with no network. Sizes are minimal: 32 px images, 8 px patches,
hidden width 32, 2 layers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
PRE_SHORT = {"size": {"shortest_edge": 40}, "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
             "resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
PRE_SQUASH = {"size": {"height": 32, "width": 32}, "do_center_crop": False, "resample": 3,
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}

HF_TINY: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "dinov2": ("Dinov2Model", {"model_type": "dinov2", **TINY_VIT, "mlp_ratio": 2}, PRE_SHORT),
    "clip": ("CLIPVisionModelWithProjection", {"model_type": "clip_vision_model", **TINY_VIT,
                                                "intermediate_size": 64, "projection_dim": 16}, PRE_SHORT),
    "siglip": ("SiglipVisionModel", {"model_type": "siglip_vision_model", **TINY_VIT, "intermediate_size": 64},
               PRE_SQUASH),
    "videomae": ("VideoMAEModel", {"model_type": "videomae", **TINY_VIT, "intermediate_size": 64, "num_frames": 4,
                                   "tubelet_size": 2, "use_mean_pooling": False},
                 {**PRE_SHORT, "resample": 2}),
}

OPEN_CLIP_TINY = {
    "model_cfg": {"embed_dim": 16,
                  "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}},
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                       "interpolation": "bicubic", "resize_mode": "shortest"},
}


def hf_model(kind: str, seed: int = 0) -> Any:
    """The tiny transformers model of ``kind``, seeded."""
    import torch
    import transformers

    cls_name, config, _ = HF_TINY[kind]
    cfg = transformers.AutoConfig.for_model(**config)
    torch.manual_seed(seed)
    return getattr(transformers, cls_name)(cfg).eval()


def hf_dir(root: Path, kind: str, *, seed: int = 0, weights: bool = True) -> Path:
    """A model directory (config.json, preprocessor_config.json, model.safetensors) for ``hf:DIR``."""
    out = root / f"hf-{kind}-{seed}"
    if (out / "config.json").is_file():
        return out
    _, config, pre = HF_TINY[kind]
    out.mkdir(parents=True, exist_ok=True)
    if weights:
        hf_model(kind, seed).save_pretrained(out)  # config.json + model.safetensors
    else:
        (out / "config.json").write_text(json.dumps(config))
    (out / "preprocessor_config.json").write_text(json.dumps(pre))
    return out


def open_clip_dir(root: Path, *, seed: int = 0, weights: bool = True) -> Path:
    """An open_clip model directory (open_clip_config.json [+ open_clip_model.safetensors]) for ``open_clip:DIR``."""
    out = root / f"open-clip-{seed}-{int(weights)}"
    if (out / "open_clip_config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps(OPEN_CLIP_TINY))
    if weights:
        from safetensors.torch import save_file

        save_file(open_clip_model(out, seed).state_dict(), str(out / "open_clip_model.safetensors"))
    return out


def open_clip_model(directory: Path, seed: int = 0) -> Any:
    """The tiny open_clip model of ``directory``'s config, seeded."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    return open_clip.create_model(f"local-dir:{directory}", load_weights=False).eval()
