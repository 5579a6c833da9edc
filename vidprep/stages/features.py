"""Batched CNN feature extraction over uint8 RGB frames and clips (pure: numpy in, numpy out).

A :class:`FeatureExtractor` loads one model of any family (a backend of :mod:`vidprep.stages.models`) once and
runs it in batches under ``torch.inference_mode()`` with the device, precision, memory format and thread count chosen by
:mod:`vidprep.stages.runtime`; on a CPU, batches run on two streams at once (:mod:`vidprep.stages.model_streams`),
each batch preprocessed on the stream that runs it.

Preprocessing is the backend's :class:`InputSpec` (for torchvision the chosen weights' ``weights.transforms()``;
for open_clip, transformers and timm their own eval configs) applied to whole batches with the same torchvision
functional ops in the same order, on the model's device: resize (uint8, as torchvision does, which also takes
PyTorch's fast uint8 path), center crop, scale to [0, 1], normalize by mean/std. So features equal a plain
torchvision forward of ``weights.transforms()(frames)`` (to float rounding: convnets run with BatchNorm folded
into their convolutions, :mod:`vidprep.stages.models.fold`). Frames arrive as (N,H,W,3); viewing them as (N,3,H,W) is a
channels-last tensor without a copy, and 3D clips (B,T,H,W,3) become (B,3,T,H,W) in channels-last-3d, again free.

Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from vidprep.config import FeaturesConfig
from vidprep.errors import ConfigError, DeferredBuildError
from vidprep.stages.model_streams import ModelStreams, stream_count
from vidprep.stages.models import MODELS, FeatureSpec, InputSpec, ModelSpec, WeightsProof, get_backend, list_models
from vidprep.stages.models.attention import widen_attention_inputs
from vidprep.stages.models.fold import fold_batchnorm
from vidprep.stages.models.torchvision_import import import_torchvision
from vidprep.stages.runtime import Runtime, choose_runtime, default_batch_size, memory_format

__all__ = ["MODELS", "FeatureExtractor", "InputSpec", "ModelSpec", "list_models", "pool_frames", "preprocess"]

log = logging.getLogger("vidprep.stages.features")

#: Backends whose convnets get BatchNorm folded into their convolutions (see stages/models/fold.py). Not open_clip or
#: hf: their modules carry more than the image forward (text towers, config-driven methods) that a trace would drop.
FOLDED_FAMILIES = frozenset({"torchvision", "timm"})


def pool_frames(feats: np.ndarray, how: str) -> np.ndarray:
    """Pool per-frame features over time (axis -2): ``mean``/``max`` turn (T,D) into (D,) and (B,T,D) into (B,D);
    ``none`` returns them unchanged."""
    if feats.ndim not in (2, 3):
        raise ValueError(f"pool_frames expects (T,D) or (B,T,D) features, got shape {feats.shape}")
    if how == "mean":
        return feats.mean(axis=-2)
    if how == "max":
        return feats.max(axis=-2)
    if how == "none":
        return feats
    raise ValueError(f"unknown pooling {how!r} (use mean, max or none)")


def preprocess(frames: Any, spec: InputSpec) -> Any:
    """uint8 (N,3,H,W) tensor -> normalized float (N,3,crop_h,crop_w), exactly as ``weights.transforms()`` does."""
    import torch

    import_torchvision()
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    x = F.resize(frames, list(spec.resize), interpolation=InterpolationMode(spec.interpolation),
                 antialias=spec.antialias)
    x = F.center_crop(x, list(spec.crop))
    x = F.convert_image_dtype(x, torch.float)
    return F.normalize(x, mean=list(spec.mean), std=list(spec.std))


def _check_uint8(array: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """Reject anything but uint8 RGB with ``ndim`` dimensions (shape errors would otherwise surface deep in torch)."""
    if not isinstance(array, np.ndarray) or array.ndim != ndim or array.shape[-1] != 3 or array.dtype != np.uint8:
        shape = getattr(array, "shape", None)
        dtype = getattr(array, "dtype", type(array).__name__)
        raise ValueError(f"{what} must be uint8 RGB with {ndim} dimensions (..., 3), got {shape} {dtype}")
    return array


class FeatureExtractor:
    """One feature model, loaded once, applied to batches of frames (2D models) or clips (3D models).

    Arguments:
        cfg: model, weights, device, precision, batch size and pooling options.
        seed: seeds the random initialization for ``weights="none"``.
        threads: intra-op CPU threads for this model now (default: torch's current count).
        thread_budget: the threads it may use, re-read before every batch (the engine's share, which changes as
            other units start and finish; default: ``threads`` always).
        max_threads: the most ``thread_budget`` can give (sets how many streams a CPU model gets; default
            ``threads``).
        proof: the driver's check of the weights file (`verify_weights`), so it is not hashed again.
        background: build the model on a thread when the backend knows the model's shape without building it
            (`Backend.known_spec`), so the caller can decode while torch imports and the weights load. ``spec`` and
            ``dim`` are there at once; `ready` says whether the rest is; anything else waits for the build
            (`wait`), and a failed build raises `DeferredBuildError` wherever it is first needed.

    Raises:
        ConfigError: unknown model or unavailable device.
        WeightsError: weights missing, corrupt, unsafe or not matching the model.
    """

    spec: FeatureSpec

    def __init__(self, cfg: FeaturesConfig, *, seed: int = 0, threads: int | None = None,
                 thread_budget: Callable[[], int] | None = None, max_threads: int | None = None,
                 proof: WeightsProof | None = None, background: bool = False) -> None:
        self.cfg = cfg
        self.backend = get_backend(cfg.model)
        known = self.backend.known_spec() if background else None
        build = functools.partial(self._build, seed=seed, threads=threads, thread_budget=thread_budget,
                                  max_threads=max_threads, proof=proof)
        if known is None:
            build()
            return
        self.spec = known
        self._built: Future[None] = Future()
        threading.Thread(target=self._build_in_background, args=(build,), name="vidprep-model-build",
                         daemon=True).start()

    def _build_in_background(self, build: Callable[[], None]) -> None:
        try:
            build()
        except BaseException as err:  # noqa: BLE001 - handed to whoever needs the model first
            self._built.set_exception(err)
        else:
            self._built.set_result(None)

    def ready(self) -> bool:
        """True once the model is built (or its build failed: `wait` then raises); never waits."""
        built = self.__dict__.get("_built")
        return built is None or built.done()

    def failed(self) -> bool:
        """True when a background build has ended in an error (never waits)."""
        built = self.__dict__.get("_built")
        return built is not None and built.done() and built.exception() is not None

    def wait(self) -> None:
        """Wait for a background build; raises `DeferredBuildError` carrying its error if it failed."""
        built = self.__dict__.get("_built")
        if built is None:
            return
        try:
            built.result()
        except BaseException as err:  # noqa: BLE001 - every failure of the build is the run's, not a video's
            raise DeferredBuildError(err) from err

    def __getattr__(self, name: str) -> Any:
        """An attribute the background build sets (model, runtime, batch size, ...): wait for it first."""
        if name.startswith("__") or "_built" not in self.__dict__:
            raise AttributeError(name)
        self.wait()
        return object.__getattribute__(self, name)

    def _build(self, *, seed: int, threads: int | None, thread_budget: Callable[[], int] | None,
               max_threads: int | None, proof: WeightsProof | None) -> None:
        """Everything that needs torch: runtime, weights, model, streams, batch size."""
        cfg = self.cfg
        self.runtime: Runtime = choose_runtime(cfg.device, cfg.precision, threads)
        choice = self.backend.resolve_weights(cfg.weights)
        self.spec = self.backend.feature_spec(choice)  # the same as known_spec when that is given
        self.input: InputSpec = self.backend.input_spec(choice)
        model, self.weights_info = self.backend.build(choice, seed=seed, proof=proof)
        self.batchnorm_folded = 0
        if self.backend.family in FOLDED_FAMILIES:
            model, self.batchnorm_folded = fold_batchnorm(model)
        self.attention_widened = 0
        if self.runtime.precision in ("bf16", "fp16"):
            model, self.attention_widened = widen_attention_inputs(model)
        self.memory_format = memory_format(self.spec.kind, self.spec.channels_last, self.runtime.device)
        self.model = model.to(self.runtime.device, memory_format=self.memory_format)
        fixed = self.runtime.threads
        self.streams = ModelStreams(stream_count(self.runtime.device, max_threads or fixed),
                                    thread_budget or (lambda: fixed))
        self.default_batch_size = default_batch_size(self.spec.kind, self.runtime.device, self.streams.streams)
        self.batch_size = cfg.batch_size or self.default_batch_size
        log.info("features: %s (%s) on %s, %s, batch %d, %d threads, %d streams", self.spec.name,
                 self.weights_info["weights"], self.runtime.device, self.runtime.precision, self.batch_size,
                 self.runtime.threads, self.streams.streams)

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.spec.dim

    def preprocess_spec(self) -> dict[str, Any]:
        """The preprocessing applied (resize, crop, mean, std, interpolation, antialias, clip_len), for the shard."""
        return self.input.to_dict()

    def describe(self) -> dict[str, Any]:
        """Model, weights provenance (id, source, file and sha256), preprocessing and runtime, for shard metadata."""
        return {"model": self.spec.name, "family": self.spec.family, "kind": self.spec.kind, "dim": self.dim,
                **self.weights_info,
                "preprocessing": self.preprocess_spec(), "precision": self.runtime.precision,
                "device": self.runtime.device, "memory_format": str(self.memory_format).removeprefix("torch."),
                "batch_size": self.batch_size, "streams": self.streams.streams,
                "batchnorm_folded": self.batchnorm_folded, "attention_inputs_widened": self.attention_widened}

    def extract_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N,H,W,3) uint8 frames -> (N,D) float32 features (2D models)."""
        return self._batched(self._checked_frames(frames), self._frames_tensor)

    def submit_frames(self, frames: np.ndarray) -> Future[np.ndarray]:
        """Start the features of one batch of (N,H,W,3) uint8 frames (2D models) on a stream; (N,D) float32 when
        done. Waits first while every stream is busy, so a caller feeding batches as frames decode stays bounded."""
        frames = self._checked_frames(frames)
        return self.streams.submit(lambda: self._forward(self._frames_tensor, frames))

    def _checked_frames(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` if they are uint8 (N,H,W,3) and this is a 2D model; ValueError / ConfigError otherwise."""
        _check_uint8(frames, 4, "frames")
        if self.spec.kind != "2d":
            raise ConfigError(f"--model {self.spec.name} is a 3D video model: it takes clips, not single frames")
        return frames

    def submit_clips(self, clips: np.ndarray) -> Future[np.ndarray]:
        """Start the features of one batch of (B,T,H,W,3) uint8 clips (3D models) on a stream, as
        :meth:`submit_frames` does for frames."""
        _check_uint8(clips, 5, "clips")
        if self.spec.kind != "3d":
            raise ConfigError(f"--model {self.spec.name} is a 2D image model: submit its clips' frames instead")
        return self.streams.submit(lambda: self._forward(self._clips_tensor, clips))

    def extract_clips(self, clips: np.ndarray) -> np.ndarray:
        """(B,T,H,W,3) uint8 clips -> (B,D) float32 features.

        3D models see each clip whole. For 2D models every frame is featurized and pooled over time with
        ``cfg.pool`` (``none`` gives (B,T,D)).
        """
        _check_uint8(clips, 5, "clips")
        if self.spec.kind == "3d":
            return self._batched(clips, self._clips_tensor)
        b, t = clips.shape[:2]
        feats = self.extract_frames(clips.reshape(b * t, *clips.shape[2:])).reshape(b, t, self.dim)
        return pool_frames(feats, self.cfg.pool)

    def text_embeddings(self, prompts: list[str]) -> np.ndarray:
        """(K,D) float32 embeddings of text prompts (image-text models only; ConfigError otherwise)."""
        return self.backend.encode_text(self.model, prompts).cpu().numpy().astype(np.float32)

    def _batched(self, data: np.ndarray, to_tensor: Any) -> np.ndarray:
        """Run the model over ``data`` in batches of ``self.batch_size`` on the streams; float32 (N,D) out."""
        size = self.batch_size
        jobs = (lambda a=a: self._forward(to_tensor, data[a:a + size]) for a in range(0, len(data), size))
        out = list(self.streams.map(jobs))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _forward(self, to_tensor: Any, batch: np.ndarray) -> np.ndarray:
        """One batch: preprocess, forward under inference mode and the runtime's autocast, float32 numpy out."""
        import torch

        with torch.inference_mode():
            x = to_tensor(batch)
            with self.runtime.autocast():
                y = self.model(x)
            return y.float().cpu().numpy()

    def _uint8_nchw(self, frames: np.ndarray) -> Any:
        """(N,H,W,3) numpy -> uint8 (N,3,H,W) tensor on the device (a channels-last view, no copy on the CPU)."""
        import torch

        frames = np.ascontiguousarray(frames) if frames.flags.writeable else frames.copy()  # torch wants writable
        x = torch.from_numpy(frames)
        return x.to(self.runtime.device, non_blocking=True).permute(0, 3, 1, 2)

    def _frames_tensor(self, frames: np.ndarray) -> Any:
        return preprocess(self._uint8_nchw(frames), self.input).contiguous(memory_format=self.memory_format)

    def _clips_tensor(self, clips: np.ndarray) -> Any:
        """(B,T,H,W,3) -> (B,3,T,h,w): the (B*T) frames are preprocessed as one batch, then viewed as clips."""
        b, t = clips.shape[:2]
        x = preprocess(self._uint8_nchw(clips.reshape(b * t, *clips.shape[2:])), self.input)
        x = x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        return x.contiguous(memory_format=self.memory_format)
