"""`vidprep env`: versions of everything that matters for a bug report."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Annotated

import typer

from vidprep import __version__
from vidprep.cli.output import emit, emit_json


def _module_version(name: str, attr: str = "__version__") -> str:
    try:
        mod = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - a broken optional package is itself the information
        return f"not available ({type(err).__name__})"
    return str(getattr(mod, attr, "unknown"))


def _ffmpeg_versions() -> dict[str, str]:
    from vidprep.media.ffmpeg import tool_versions

    try:
        return tool_versions()
    except Exception as err:  # noqa: BLE001
        return {"ffmpeg": f"not available ({err})"}


def _accelerators() -> dict[str, str]:
    try:
        import torch
    except Exception:  # noqa: BLE001
        return {"cuda": "torch not available"}
    cuda = torch.cuda.is_available()
    info = {"cuda": f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}" if cuda else "no"}
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = "yes" if mps is not None and mps.is_available() else "no"
    info["torch_threads"] = str(torch.get_num_threads())
    return info


def collect() -> dict[str, str]:
    """Versions of vidprep, Python, the libraries it uses, ffmpeg, and the CPU/GPU."""
    info = {
        "vidprep": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "numpy": _module_version("numpy"),
        "h5py": _module_version("h5py"),
        "opencv": _module_version("cv2"),
        "albumentations": _module_version("albumentations"),
        "torch": _module_version("torch"),
        "torchvision": _module_version("torchvision"),
        "typer": _module_version("typer"),
        "pydantic": _module_version("pydantic"),
        "ray": _module_version("ray"),
    }
    try:
        import h5py

        info["hdf5"] = h5py.version.hdf5_version
    except Exception:  # noqa: BLE001
        info["hdf5"] = "not available"
    info.update(_ffmpeg_versions())
    info.update(_accelerators())
    return info


def env(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Print versions of vidprep, Python, torch, torchvision, ffmpeg, h5py/HDF5, OpenCV, albumentations; CPU/GPU.

    Examples:

      vidprep env

      vidprep env --json > env.json
    """
    info = collect()
    if json_out:
        emit_json(info)
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        emit(f"{key:<{width}}  {value}")


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("env")(env)
