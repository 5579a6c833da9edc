"""Architectures and preprocessing of the Hugging Face models vidprep names, shipped so no hub access is needed.

These are the hyperparameters of public architectures, copied from each model's ``config.json`` and
``preprocessor_config.json`` (only the fields that shape the network or the input). With ``--weights none`` or a
local weights file the model is built from these alone; with ``--weights DEFAULT`` the files from the HF cache are
loaded into the same architecture. A model directory (``hf:/path``) brings its own config.json instead.

``resample`` uses PIL's numbers (2 bilinear, 3 bicubic), as HF preprocessor configs do.

Checked offline against independent truth in tests/test_model_configs.py (parameter counts published for each
checkpoint; the same architecture built by timm / open_clip; their pretrained preprocessing configs; DINOv2's own
eval transform). Weight-level equality needs the real checkpoints (README, "Verified architectures").
"""

from __future__ import annotations

from typing import Any

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
OPENAI = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def _dinov2(hidden: int, layers: int, heads: int) -> dict[str, Any]:
    return {
        "config": {"model_type": "dinov2", "hidden_size": hidden, "num_hidden_layers": layers,
                   "num_attention_heads": heads, "mlp_ratio": 4, "patch_size": 14, "image_size": 518,
                   "layerscale_value": 1.0, "layer_norm_eps": 1e-6, "hidden_act": "gelu", "qkv_bias": True,
                   "use_swiglu_ffn": False},
        "preprocessor": {"size": {"shortest_edge": 256}, "resample": 3, "do_center_crop": True,
                         "crop_size": {"height": 224, "width": 224}, **IMAGENET},
    }


def _clip_vision(patch: int) -> dict[str, Any]:
    return {
        "config": {"model_type": "clip_vision_model", "hidden_size": 768, "intermediate_size": 3072,
                   "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 224, "patch_size": patch,
                   "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 512},
        "preprocessor": {"size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
                         "crop_size": {"height": 224, "width": 224}, **OPENAI},
    }


def _siglip_vision(resample: int) -> dict[str, Any]:
    return {
        "config": {"model_type": "siglip_vision_model", "hidden_size": 768, "intermediate_size": 3072,
                   "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 224, "patch_size": 16,
                   "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6},
        "preprocessor": {"size": {"height": 224, "width": 224}, "resample": resample, "do_center_crop": False,
                         **HALF},
    }


#: model id -> {"config": architecture, "preprocessor": input preparation, "frames"/"fps": clip models only}
SHIPPED: dict[str, dict[str, Any]] = {
    "facebook/dinov2-small": _dinov2(384, 12, 6),
    "facebook/dinov2-base": _dinov2(768, 12, 12),
    "facebook/dinov2-large": _dinov2(1024, 24, 16),
    "openai/clip-vit-base-patch32": _clip_vision(32),
    "openai/clip-vit-base-patch16": _clip_vision(16),
    "google/siglip-base-patch16-224": _siglip_vision(3),
    # SigLIP 2 fixed-resolution checkpoints keep SigLIP's vision architecture (the NaFlex ones are not supported),
    # but their preprocessor_config.json says resample 2 (bilinear), unlike SigLIP's 3 (as pinned by public projects
    # that validate that file; open_clip and timm resize their own SigLIP 2 weights bicubic).
    "google/siglip2-base-patch16-224": _siglip_vision(2),
    "MCG-NJU/videomae-base": {
        "config": {"model_type": "videomae", "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "image_size": 224, "patch_size": 16, "num_frames": 16,
                   "tubelet_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "qkv_bias": True,
                   "use_mean_pooling": False},
        "preprocessor": {"size": {"shortest_edge": 224}, "resample": 2, "do_center_crop": True,
                         "crop_size": {"height": 224, "width": 224}, **IMAGENET},
        # Kinetics protocol: 16 frames at a sampling rate of 4 from ~30 fps video.
        "fps": 7.5,
    },
}
