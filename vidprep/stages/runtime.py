"""Where and how feature models run: device, precision, memory format, threads and batch size.

Decisions, from model-only measurements on the development machine (2-core AMD EPYC Zen 3 VM, AVX2, no native
bf16; fp32 unless noted; resnet18 in images/s at 224 px, r2plus1d_18 in 16x112x112 clips/s)::

                          idle machine        machine shared (load ~7)
    resnet18 b16          19.5 / CL 30.1      4.8 / CL 7.3 / bf16+CL 0.98
    resnet18 b32          23.4 / CL 26.4      5.3 / CL 8.4 / bf16+CL 1.0
    r2plus1d_18 b2        0.73 / CL3d 1.14    0.17 / CL3d 0.26 / bf16+CL3d < 0.005
    r2plus1d_18 b4                            0.15 / CL3d 0.20

- ``precision=auto``: fp16 autocast on CUDA; bf16 autocast on a CPU only when it has native bf16 instructions
  (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo): without them oneDNN emulates bf16, 5-8x slower for resnet18
  and over 50x for r2plus1d_18; fp32 everywhere else (MPS included).
- channels-last for convnets: 1.1-1.6x on CPU for 2D and 3D (``channels_last_3d``) models, and the usual win with
  cuDNN; transformers (vit_b_16, swin3d_t) keep the default layout.
- threads: the caller passes ``threads`` (the engine gives a unit the CPUs it may use, affinity mask and cgroup
  quota, divided among the units running: `vidprep.executors.threads`); without it torch's own count is kept.
  On a CPU they are split between two streams that run batches side by side (`vidprep.stages.model_streams`).
  ``OMP_WAIT_POLICY=PASSIVE`` is set before torch is first imported, so idle OpenMP threads sleep instead of
  spinning on cores that the decoder (ffmpeg) needs while inference waits for frames.
- batch size on CPU: 32 frames (2D; 16 and 32 were within noise, 32 amortizes per-call overhead) and 2 clips (3D;
  4 was no faster, and long-clip models such as s3d need ~0.2 GB of activations per clip in the first layers)
  in flight, shared by the streams that run batches side by side (:mod:`vidprep.stages.model_streams`): with
  two, 16 frames / 1 clip per forward pass (resnet18 bf16 with two streams: 8, 16 and 32 frames per pass within
  noise, peak memory growing with the batch; r2plus1d_18: 1 clip on each of two streams 1.5x one stream of 2, same
  peak memory); on accelerators 128 frames / 16 clips (not measured here: a GPU-typical starting point).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidprep.errors import ConfigError

log = logging.getLogger("vidprep.stages.runtime")

if "torch" not in sys.modules:  # OpenMP reads this once, when torch's runtime loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
BATCH_SIZES = {("2d", "cpu"): 32, ("3d", "cpu"): 2, ("2d", "accel"): 128, ("3d", "accel"): 16}


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision; ``amp_dtype`` is the autocast dtype name, or None for plain fp32."""

    device: str
    precision: str
    threads: int

    @property
    def amp_dtype(self) -> Any:
        """torch dtype for autocast, or None."""
        import torch

        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)

    def autocast(self) -> Any:
        """Autocast context for this precision; a null context for fp32 (older torch rejects some device types)."""
        import torch

        dtype = self.amp_dtype
        kind = self.device.partition(":")[0]  # autocast takes a device type, not cuda:N
        return torch.autocast(kind, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def choose_runtime(device: str, precision: str, threads: int | None = None) -> Runtime:
    """Resolve ``--device`` and ``--precision`` (``auto`` rules in the module docstring) and set the thread count."""
    import torch

    dev = pick_device(device)
    prec = pick_precision(dev, precision)
    n = threads or torch.get_num_threads()
    torch.set_num_threads(n)
    log.debug("runtime: device=%s precision=%s threads=%d", dev, prec, n)
    return Runtime(dev, prec, n)


DEVICE_KINDS = ("cpu", "cuda", "mps")


def parse_device(device: str) -> tuple[str, int | None]:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` -> (kind, CUDA index or None); ConfigError naming --device else."""
    kind, sep, index = device.partition(":")
    if kind not in DEVICE_KINDS or (sep and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"--device: unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)")
    return kind, int(index) if sep else None


def pick_device(device: str) -> str:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must be usable here (ConfigError otherwise)."""
    import torch

    if device == "auto":
        found = (d for d, usable in (("cuda", torch.cuda.is_available), ("mps", _mps_available)) if usable())
        return next(found, "cpu")
    kind, index = parse_device(device)
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device: {device} is not available on this machine (torch sees no CUDA device)")
        if index is not None and index >= count:
            raise ConfigError(f"--device: {device} does not exist (torch sees {count} CUDA device(s), 0-{count - 1})")
    elif kind == "mps" and not _mps_available():
        raise ConfigError(f"--device: {device} is not available on this machine")
    return device


def check_device(device: str, *, remote: bool = False) -> None:
    """The driver's check, before any decoding, that ``--device`` can be used where the workers will run.

    Cheap: the name is checked without torch; torch is imported only for ``cuda``/``mps``, which are then looked
    up as the workers would. Skipped (``remote``) when the workers run on a Ray cluster, whose nodes may have
    GPUs the driver lacks: there a worker that cannot use the device fails its units."""
    if device == "auto" or parse_device(device)[0] == "cpu":
        return
    if remote:
        log.debug("--device %s not checked on the driver: the workers run on a Ray cluster", device)
        return
    pick_device(device)


def check_run_device(config: Any, executor: str | None, ray_address: str | None) -> None:
    """A features run's ``--device``, checked by the driver before any decoding under every executor.

    The serial, process and local-Ray executors run on this machine, so what the driver sees is what the workers
    get. A Ray cluster (``--ray-address``, ``RAY_ADDRESS`` or a Ray the caller already connected) is not checked."""
    feats = getattr(config, "features", None)
    if feats is None:
        return
    ray = sys.modules.get("ray")
    remote = executor == "ray" and bool(ray_address or os.environ.get("RAY_ADDRESS")
                                        or (ray is not None and ray.is_initialized()))
    check_device(feats.device, remote=remote)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_precision(device: str, precision: str) -> str:
    """``auto`` -> fp16 on cuda, bf16 on a CPU with native bf16, else fp32; explicit values are kept."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    if device == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU flags include a native bf16 instruction set (AVX512-BF16 or AMX-BF16)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in BF16_FLAGS)


def default_batch_size(kind: str, device: str, streams: int = 1) -> int:
    """Frames (2D) or clips (3D) per forward pass when ``--batch-size`` is not given: the batch of the table above
    shared among the streams that run at once (so the frames in flight, and the memory they take, stay the same)."""
    return max(1, BATCH_SIZES[(kind, "cpu" if device == "cpu" else "accel")] // max(1, streams))


def memory_format(kind: str, convnet: bool, device: str) -> Any:
    """channels-last (2D) / channels-last-3d (3D) for convnets off MPS, else the default contiguous format."""
    import torch

    if not convnet or device == "mps":
        return torch.contiguous_format
    return torch.channels_last if kind == "2d" else torch.channels_last_3d
