"""Feature model families behind one interface (:class:`~vidprep.stages.models.base.Backend`).

``--model`` names a model as ``family:name``; a name without a prefix is a torchvision registry model (as before):

- ``resnet18``, ``r2plus1d_18``, ...: torchvision (built in; :mod:`.torchvision`)
- ``open_clip:ViT-B-32``, ``open_clip:/dir``: open-clip-torch image tower, image-text (``vidprep[clip]``)
- ``hf:facebook/dinov2-small``, ``hf:/dir``: DINOv2 / CLIP / SigLIP vision towers, VideoMAE (``vidprep[hf]``)
- ``timm:resnet50``: any timm image backbone, pooled pre-logits features (``vidprep[timm]``)

A family whose library is missing is a usage error naming the install command. Weights follow one policy for every
family (:mod:`.weights`). The names below stay importable from here for the rest of vidprep and its tests.
Importing this package does not import torch or any model library.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from typing import Any

from vidprep.errors import ConfigError
from vidprep.stages.models import weights
from vidprep.stages.models.base import Backend, FeatureSpec, InputSpec, WeightsChoice
from vidprep.stages.models.torchvision import (
    KINETICS_MEAN, KINETICS_STD, MODELS, ModelSpec, TorchvisionBackend, _replace, build_model, ensure_hub_file,
    get_spec, hub_file, input_spec_for, list_models, load_weights, resolve_weights, verify_weights,
)
from vidprep.stages.models.weights import OFFLINE_ENV, WeightsProof, read_state_dict, sha256_of

__all__ = [
    "FAMILIES", "KINETICS_MEAN", "KINETICS_STD", "MODELS", "OFFLINE_ENV", "Backend", "FeatureSpec", "InputSpec",
    "ModelSpec", "WeightsChoice", "WeightsProof", "_replace", "build_model", "ensure_hub_file", "families",
    "get_backend", "get_spec", "hub_file", "input_spec_for", "list_models", "load_weights", "read_state_dict",
    "resolve_weights", "sha256_of", "verify_weights", "weights",
]

#: family -> (module, import name of its library, the extra that installs it, example names, what --weights takes)
FAMILIES: dict[str, dict[str, Any]] = {
    "torchvision": {"module": "vidprep.stages.models.torchvision", "library": "torchvision", "extra": "",
                    "examples": "resnet18, resnet50, vit_b_16, r2plus1d_18, ... (see below)",
                    "weights": "DEFAULT | weights enum name | PATH | none"},
    "open_clip": {"module": "vidprep.stages.models.open_clip", "library": "open_clip", "extra": "clip",
                  "examples": "open_clip:ViT-B-32, open_clip:ViT-B-16-SigLIP, open_clip:/model/dir",
                  "weights": "DEFAULT (first pretrained tag) | TAG (e.g. openai) | PATH | none"},
    "hf": {"module": "vidprep.stages.models.hf", "library": "transformers", "extra": "hf",
           "examples": "hf:facebook/dinov2-small, hf:facebook/dinov2-base, hf:openai/clip-vit-base-patch32, "
                       "hf:google/siglip-base-patch16-224, hf:MCG-NJU/videomae-base, hf:/model/dir",
           "weights": "DEFAULT (HF cache or the model dir) | PATH (file or dir) | none"},
    "timm": {"module": "vidprep.stages.models.timm", "library": "timm", "extra": "timm",
             "examples": "timm:resnet50, timm:convnext_tiny, timm:vit_small_patch16_224, ... (timm.list_models())",
             "weights": "DEFAULT (HF cache) | PATH | none"},
}


def split_name(name: str) -> tuple[str, str]:
    """``family:rest`` -> (family, rest); a name without a known family prefix is a torchvision name."""
    family, sep, rest = name.partition(":")
    if sep and family in FAMILIES and family != "torchvision":
        return family, rest
    if sep and family == "torchvision":
        return "torchvision", rest
    return "torchvision", name


def installed(family: str) -> bool:
    """True when the family's library can be imported here."""
    return importlib.util.find_spec(FAMILIES[family]["library"]) is not None


def install_hint(family: str) -> str:
    """The command that installs a family's extra."""
    return f"pip install 'vidprep[{FAMILIES[family]['extra']}]'"


@lru_cache(maxsize=16)
def get_backend(name: str) -> Backend:
    """The backend for ``--model name`` (cached per process); ConfigError for unknown names or missing extras."""
    family, rest = split_name(name)
    if family == "torchvision":
        return TorchvisionBackend(get_spec(rest))
    if not rest:
        raise ConfigError(f"--model: {name!r} names no model after '{family}:' (e.g. {FAMILIES[family]['examples']})")
    if not installed(family):
        raise ConfigError(f"--model {name}: the {family} family needs {FAMILIES[family]['library']}: "
                          f"{install_hint(family)}")
    module = importlib.import_module(FAMILIES[family]["module"])
    return module.make_backend(rest)


def families() -> list[dict[str, Any]]:
    """One row per family for ``--list-models``: name, examples, --weights forms, extra and whether installed."""
    return [{"family": fam, "examples": row["examples"], "weights": row["weights"],
             "needs": install_hint(fam) if row["extra"] else "(built in)", "installed": installed(fam)}
            for fam, row in FAMILIES.items()]
