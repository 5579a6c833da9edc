"""What every model backend provides: the small interface the feature extractor and the driver use.

A backend is one model of one family (``torchvision``, ``open_clip``, ``hf``, ``timm``). It resolves ``--weights``
into a :class:`WeightsChoice`, says how frames are prepared (:class:`InputSpec`), checks the weights before any
decoding (``verify``), and builds a headless module whose ``forward`` maps a preprocessed batch to features:
(N,3,H,W) -> (N,D) for 2D models, (B,3,T,H,W) -> (B,D) for clip models. Image-text models can also embed text
(``encode_text``), for zero-shot labels. Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# PIL resampling numbers as stored in HF preprocessor configs and timm/open_clip names, -> torchvision modes.
PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class InputSpec:
    """How frames are prepared for a model (resize, center crop, scale to [0, 1], normalize).

    ``resize``: one value = the short side (aspect kept); two values = exact (H, W) (torchvision's video presets,
    open_clip's and SigLIP's "squash"). ``antialias`` is False for torchvision's video presets because those models
    were trained without it. ``clip_len``: frames per clip for 3D models (None for 2D).
    """

    resize: tuple[int, ...]
    crop: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    antialias: bool = True
    clip_len: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view, stored in the shard config."""
        return {"resize": list(self.resize), "crop": list(self.crop), "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "antialias": self.antialias, "clip_len": self.clip_len}

    def describe(self) -> str:
        """Short human form, e.g. ``resize 256, crop 224`` or ``16 frames, resize 128x171, crop 112``."""
        resize = "x".join(str(v) for v in self.resize)
        crop = str(self.crop[0]) if self.crop[0] == self.crop[1] else f"{self.crop[0]}x{self.crop[1]}"
        text = f"resize {resize}, crop {crop}"
        return f"{self.clip_len} frames, {text}" if self.clip_len else text


@dataclass(frozen=True)
class WeightsChoice:
    """Resolved ``--weights``: where the parameters come from.

    ``source``: ``none`` (seeded random), ``file`` (a local file, ``path``), ``torchvision`` (a weights enum member
    in torch hub's cache), ``hub`` (a file of a Hugging Face hub repository, looked up in the HF cache by the
    backend). ``enum`` is torchvision's weights enum member whose metadata preprocessing follows; ``extra`` holds
    family-specific facts (an open_clip pretrained tag, an HF repository and its file names).
    """

    source: Literal["torchvision", "file", "none", "hub"]
    id: str
    enum: Any = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class FeatureSpec:
    """What the engine needs to know about a built model: name, kind, feature dimension, clip length."""

    name: str
    kind: Literal["2d", "3d"]
    dim: int
    clip_len: int | None = None
    channels_last: bool = False
    family: str = "torchvision"
    image_text: bool = False


class MissingExtra(Exception):
    """Raised inside a backend when its optional library is not installed (turned into a ConfigError)."""


class Backend:
    """One model of one family. Subclasses set the attributes and implement the methods below."""

    family: str = ""
    name: str = ""
    kind: Literal["2d", "3d"] = "2d"
    image_text: bool = False
    default_split: dict[str, Any] = {}

    def known_spec(self) -> FeatureSpec | None:
        """The model's FeatureSpec when it is known without importing its library or reading weights (then the
        model may be built in the background); None when only building tells."""
        return None

    def resolve_weights(self, text: str) -> WeightsChoice:  # pragma: no cover - interface
        """Interpret ``--weights`` (``none``, ``DEFAULT``, a family-specific name, or a path)."""
        raise NotImplementedError

    def input_spec(self, choice: WeightsChoice) -> InputSpec:  # pragma: no cover - interface
        """Preprocessing from the library's own config for this model and weights."""
        raise NotImplementedError

    def feature_spec(self, choice: WeightsChoice) -> FeatureSpec:  # pragma: no cover - interface
        """Kind, dimension and clip length, known without reading weights (for --stats-from checks)."""
        raise NotImplementedError

    def verify(self, choice: WeightsChoice) -> Any:  # pragma: no cover - interface
        """Check the weights before any decoding (WeightsError); a WeightsProof, or None for ``none``."""
        raise NotImplementedError

    def build(self, choice: WeightsChoice, *, seed: int = 0, proof: Any = None) -> tuple[Any, dict[str, Any]]:
        """The headless module in eval mode on the CPU, and the weights' provenance for the shard."""
        raise NotImplementedError  # pragma: no cover - interface

    def encode_text(self, model: Any, prompts: list[str]) -> Any:
        """(K,D) float text embeddings of ``prompts`` (image-text models only)."""
        from vidprep.errors import ConfigError

        raise ConfigError(f"--text-labels: {self.name} is not an image-text model (use an open_clip: model)")

    def tokenizer(self) -> Callable[[list[str]], Any]:
        """The text tokenizer (image-text models only), loaded now so a missing one fails before any decoding."""
        from vidprep.errors import ConfigError

        raise ConfigError(f"--text-labels: {self.name} is not an image-text model (use an open_clip: model)")


def seeded(seed: int, make: Any) -> Any:
    """``make()`` under ``torch.manual_seed(seed)``, without disturbing the caller's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
