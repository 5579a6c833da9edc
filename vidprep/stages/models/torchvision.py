"""Feature model registry and weights loading (torchvision 2D image models and 3D video models).

Features are the input of each model's final classifier layer: that layer (``ModelSpec.head``) is replaced by
``nn.Identity``, so a 2D model gives one pooled penultimate vector per frame and a 3D model one per clip.

Weights (``--weights``), never falling back from one source to another:

- ``DEFAULT`` or a torchvision weights name (``ResNet18_Weights.IMAGENET1K_V1`` or ``IMAGENET1K_V1``): the pretrained
  file is read from torch hub's checkpoint directory (``torch.hub.get_dir()/checkpoints/<file name of the URL>``,
  ``$TORCH_HOME/hub/checkpoints`` by default), its sha256 checked against the prefix in its name. A missing file is
  downloaded only when download.pytorch.org is reachable and ``VIDPREP_OFFLINE`` is not set; otherwise a
  :class:`WeightsError` says which file to put where, and where to get it.
- a path to a state dict file (``torch.save(model.state_dict())``, or a checkpoint dict holding one under
  ``state_dict``/``model``): read with ``torch.load(weights_only=True)``, so a pickle that holds code is refused and
  never run. ``module.``/``_orig_mod.`` prefixes (DataParallel, torch.compile) are stripped. The head's keys are
  ignored (a fine-tuned head of any size, or none, is fine); every other key must match the model exactly.
- ``none``: random initialization after ``torch.manual_seed(seed)`` (deterministic; for tests and baselines).

Preprocessing always follows the metadata of a torchvision weights enum (``weights.transforms()``): the chosen one,
or the model's DEFAULT one for ``none`` and file weights (read from the enum, nothing is downloaded).
Shared weights reading and proofs live in :mod:`vidprep.stages.models.weights`; the generic backend interface in
:mod:`vidprep.stages.models.base`. Importing this module does not import torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from vidprep.errors import ConfigError, WeightsError
from vidprep.stages.models import weights as w
from vidprep.stages.models.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backend,
    FeatureSpec,
    InputSpec,
    WeightsChoice,
)
from vidprep.stages.models.torchvision_import import import_torchvision
from vidprep.stages.models.weights import WeightsProof

log = logging.getLogger("vidprep.stages.models.torchvision")

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a torchvision builder, its weights enum and how to feed it.

    ``head`` is the dotted name of the final classifier layer (replaced by Identity); ``channels_last`` says the
    model is a convnet that runs faster in channels-last memory format; ``default_split`` holds the split options
    used when the user chose none (2D: 1 fps; 3D: clips of ``clip_len`` frames at the frame rate of the weights'
    evaluation protocol).
    """

    name: str
    kind: Literal["2d", "3d"]
    dim: int
    weights_enum: str
    default_weights: str
    head: str
    input: InputSpec
    channels_last: bool = True
    default_split: dict[str, Any] = field(default_factory=dict)

    @property
    def clip_len(self) -> int | None:
        """Frames per clip (3D models) or None."""
        return self.input.clip_len

    @property
    def builder(self) -> Any:
        """The torchvision builder function (imports torchvision)."""
        import_torchvision()
        from torchvision.models import get_model_builder

        return get_model_builder(self.name)


def _image(name: str, dim: int, enum: str, head: str, resize: int = 256, *, weights: str = "IMAGENET1K_V1",
           interpolation: str = "bilinear", channels_last: bool = True) -> ModelSpec:
    spec = InputSpec(resize=(resize,), crop=(224, 224), interpolation=interpolation)
    return ModelSpec(name, "2d", dim, enum, weights, head, spec, channels_last,
                     {"fps": 1.0, "size": resize})


def _video(name: str, dim: int, enum: str, head: str, clip_len: int, resize: tuple[int, ...], crop: int, *,
           imagenet_stats: bool = False, channels_last: bool = True) -> ModelSpec:
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet_stats else (KINETICS_MEAN, KINETICS_STD)
    spec = InputSpec(resize=resize, crop=(crop, crop), mean=mean, std=std, antialias=False, clip_len=clip_len)
    return ModelSpec(name, "3d", dim, enum, "KINETICS400_V1", head, spec, channels_last,
                     {"fps": 15.0, "clip_frames": clip_len, "size": min(resize)})


# Clip lengths and 15 fps are the evaluation protocol in torchvision's weights docs (meta["_docs"]).
MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    _image("resnet18", 512, "ResNet18_Weights", "fc"),
    _image("resnet50", 2048, "ResNet50_Weights", "fc", 232, weights="IMAGENET1K_V2"),
    _image("efficientnet_b0", 1280, "EfficientNet_B0_Weights", "classifier.1", interpolation="bicubic"),
    _image("mobilenet_v3_large", 1280, "MobileNet_V3_Large_Weights", "classifier.3", 232, weights="IMAGENET1K_V2"),
    _image("convnext_tiny", 768, "ConvNeXt_Tiny_Weights", "classifier.2", 236),
    _image("vit_b_16", 768, "ViT_B_16_Weights", "heads.head", channels_last=False),
    _video("r3d_18", 512, "R3D_18_Weights", "fc", 16, (128, 171), 112),
    _video("r2plus1d_18", 512, "R2Plus1D_18_Weights", "fc", 16, (128, 171), 112),
    _video("mc3_18", 512, "MC3_18_Weights", "fc", 16, (128, 171), 112),
    _video("s3d", 1024, "S3D_Weights", "classifier.1", 128, (256, 256), 224),
    _video("swin3d_t", 768, "Swin3D_T_Weights", "head", 32, (256,), 224, imagenet_stats=True, channels_last=False),
)}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``, or a ConfigError listing the known models."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"--model: unknown model {name!r} (known: {', '.join(MODELS)})") from None


def list_models() -> list[dict[str, Any]]:
    """Registry rows for ``--list-models``: name, kind, dim, default input, default weights and split options."""
    return [{"name": s.name, "kind": s.kind, "dim": s.dim, "input": s.input.describe(),
             "weights": f"{s.weights_enum}.{s.default_weights}", "split": dict(s.default_split)}
            for s in MODELS.values()]


def resolve_weights(spec: ModelSpec, text: str) -> WeightsChoice:
    """Interpret ``--weights`` for ``spec``: ``none``, ``DEFAULT``, a weights name, or a path to a file."""
    import_torchvision()
    from torchvision.models import get_model_weights

    enum_cls = get_model_weights(spec.name)
    default = enum_cls[spec.default_weights]
    if text.lower() == "none":
        return WeightsChoice("none", "none", default)
    member = _weights_member(spec, enum_cls, text)
    if member is not None:
        return WeightsChoice("torchvision", f"{enum_cls.__name__}.{member.name}", member)
    path = Path(text).expanduser()
    if path.is_file():
        return WeightsChoice("file", str(path.resolve()), default)
    known = ", ".join(["none", "DEFAULT", *(m.name for m in enum_cls)])
    if path.exists() or os.sep in text or path.suffix:
        raise WeightsError(f"--weights: no such weights file for {spec.name} (or not a regular file)", path=text)
    raise WeightsError(f"--weights: unknown weights {text!r} for {spec.name} (use one of {known}, or a file path)")


def _weights_member(spec: ModelSpec, enum_cls: Any, text: str) -> Any | None:
    """The enum member named by ``text`` (``DEFAULT``, ``NAME`` or ``Enum.NAME``), None if it names none."""
    enum_name, _, member = text.rpartition(".")
    if enum_name and enum_name.endswith("_Weights") and enum_name != enum_cls.__name__:
        raise WeightsError(f"--weights: {text} are not weights for {spec.name} (those are {enum_cls.__name__}.*)")
    if enum_name and enum_name != enum_cls.__name__:
        return None
    if member == "DEFAULT":
        return enum_cls[spec.default_weights]
    return enum_cls.__members__.get(member)


def hub_file(weights: Any) -> Path:
    """Where torch hub keeps the checkpoint of a torchvision weights enum member."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def ensure_hub_file(weights: Any, name: str) -> tuple[Path, str]:
    """Path and sha256 of a torchvision checkpoint: from the hub cache, or downloaded when that can work."""
    import torch

    path = hub_file(weights)
    missing = f"pretrained weights {name} not found: put {path.name} at {path} (from {weights.url})"
    if not path.is_file():
        if not _can_download(weights.url):
            raise WeightsError(f"{missing}; no network to download it")
        log.info("downloading %s to %s", weights.url, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(weights.url, str(path), hash_prefix=_hash_prefix(path), progress=False)
        except Exception as err:  # any failure (network, disk, hash) leaves the same instruction
            raise WeightsError(f"{missing}; download failed: {err}") from None
    digest = w.sha256_of(path)
    if not digest.startswith(_hash_prefix(path) or ""):
        raise WeightsError(f"pretrained weights {name}: {path} is corrupt (sha256 {digest[:12]}...); "
                           f"delete it and put a fresh copy from {weights.url} there")
    return path, digest


def _hash_prefix(path: Path) -> str | None:
    """The sha256 prefix torchvision puts in checkpoint names (``resnet18-f37072fd.pth``)."""
    import torch

    found = torch.hub.HASH_REGEX.search(path.name)
    return found.group(1) if found else None


def _can_download(url: str, timeout: float = 3.0) -> bool:
    """True unless offline mode is set or the weights host cannot be reached within ``timeout`` seconds."""
    return w.can_reach(urlparse(url).hostname or "", timeout)


def verify_weights(choice: WeightsChoice) -> WeightsProof | None:
    """Check weights without building the model (exit 2 material, raised as WeightsError); None for ``none``.

    A file is opened memory-mapped (``torch.load(mmap=True, weights_only=True)``), so its structure is checked
    without reading the tensors; key and shape matching happens when a worker builds the model.
    """
    if choice.source == "none":
        return None
    if choice.source == "torchvision":
        path, digest = ensure_hub_file(choice.enum, choice.id)
    else:
        return w.check_file(Path(choice.id))
    return w.proof_for(path, digest)


def _checked_file(choice: WeightsChoice, proof: WeightsProof | None) -> tuple[Path, str]:
    """Path and sha256 of the weights file: the driver's proof when the file is unchanged, else checked now."""
    path = hub_file(choice.enum) if choice.source == "torchvision" else Path(choice.id)
    if proof is not None and proof.holds_for(path):
        return path, proof.sha256
    if choice.source == "torchvision":
        return ensure_hub_file(choice.enum, choice.id)
    return path, w.sha256_of(path)


def build_model(spec: ModelSpec, choice: WeightsChoice, *, seed: int = 0,
                proof: WeightsProof | None = None) -> tuple[Any, dict[str, Any]]:
    """Build ``spec`` headless with its weights, in eval mode on the CPU; also return weights provenance.

    Weights are read (and any problem with them raised) before the model is built, so bad weights fail fast.
    ``proof`` is the driver's `verify_weights` result, which spares hashing the file again.
    """
    import torch

    info: dict[str, Any] = {"weights": choice.id, "source": choice.source}
    state = None
    if choice.source == "none":
        info["seed"] = seed
    else:
        path, digest = _checked_file(choice, proof)
        if choice.source == "torchvision":
            info["file"] = str(path)
        info["sha256"] = digest
        state = w.read_state_dict(path)
    with torch.random.fork_rng(devices=[]):  # seeding must not disturb the caller's random state
        torch.manual_seed(seed)
        model = spec.builder(weights=None, **_builder_kwargs(spec, choice))
    _replace(model, spec.head, torch.nn.Identity())
    if state is not None:
        load_weights(model, spec, state, where=info.get("file", choice.id))
    return model.eval(), info


def _builder_kwargs(spec: ModelSpec, choice: WeightsChoice) -> dict[str, Any]:
    """Architecture arguments a weights enum implies (ViT's SWAG weights run at 384 px)."""
    if spec.name.startswith("vit_") and choice.source == "torchvision":
        return {"image_size": choice.enum.meta["min_size"][0]}
    return {}


def _replace(model: Any, dotted: str, new: Any) -> None:
    """Replace the submodule at ``dotted`` (e.g. ``classifier.1``) with ``new``."""
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)


def load_weights(model: Any, spec: ModelSpec, state: dict[str, Any], *, where: str) -> None:
    """Load ``state`` into the headless model: head keys dropped, every other key and shape must match."""
    w.load_matching(model, state, where=where, name=spec.name, ignore=(spec.head + ".",))


def input_spec_for(spec: ModelSpec, choice: WeightsChoice) -> InputSpec:
    """Preprocessing from the metadata of the chosen weights enum (e.g. ResNet50 V1 resizes to 256, V2 to 232)."""
    t = choice.enum.transforms()
    interpolation = getattr(t.interpolation, "value", str(t.interpolation))
    antialias = bool(getattr(t, "antialias", False))  # the video presets have none: they resize without it
    return InputSpec(resize=tuple(t.resize_size), crop=_pair(t.crop_size), mean=tuple(t.mean), std=tuple(t.std),
                     interpolation=interpolation, antialias=antialias, clip_len=spec.clip_len)


def _pair(values: list[int]) -> tuple[int, int]:
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


class TorchvisionBackend(Backend):
    """A registry model (:data:`MODELS`) behind the common backend interface."""

    family = "torchvision"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.name, self.kind, self.default_split = spec.name, spec.kind, dict(spec.default_split)

    def resolve_weights(self, text: str) -> WeightsChoice:
        return resolve_weights(self.spec, text)

    def input_spec(self, choice: WeightsChoice) -> InputSpec:
        return input_spec_for(self.spec, choice)

    def feature_spec(self, choice: WeightsChoice) -> FeatureSpec:
        return self.known_spec()

    def known_spec(self) -> FeatureSpec:
        """From the registry table: the same for every weights choice."""
        s = self.spec
        return FeatureSpec(s.name, s.kind, s.dim, s.clip_len, s.channels_last, self.family)

    def verify(self, choice: WeightsChoice) -> WeightsProof | None:
        return verify_weights(choice)

    def build(self, choice: WeightsChoice, *, seed: int = 0, proof: Any = None) -> tuple[Any, dict[str, Any]]:
        return build_model(self.spec, choice, seed=seed, proof=proof)
