"""Import torchvision without loading ``torch._dynamo``, which its import pulls in and vidprep never uses.

torchvision 0.29's ``torchvision.ops.roi_align`` imports one function, ``is_compile_supported``, from
``torch._dynamo.utils`` when torchvision is imported, and that loads torch's whole compiler stack: 1.3 s of the
~2 s ``import torchvision`` costs on a 2-core EPYC (``python -X importtime``), paid by every process that builds a
model, on cores the decoder needs. vidprep's models, transforms and BatchNorm folding (torch.fx) never touch it.

So while torchvision imports, ``torch._dynamo`` and ``torch._dynamo.utils`` are stand-ins whose
``is_compile_supported`` imports the real function on its first call; they are removed from ``sys.modules`` as soon
as the import ends, so anything that imports ``torch._dynamo`` later (``torch.compile``, another library) gets the
real module as usual. A torchvision that needs more of ``torch._dynamo`` than the stand-ins have fails to import
with them; it is then imported again the ordinary way (which raises whatever a real failure is). When
``torch._dynamo`` is already loaded there is nothing to save and torchvision is imported directly.

The stand-ins are visible to another thread that imports ``torch._dynamo`` during those ~0.15 s; vidprep imports
nothing that does while a model is built (the decoder's threads import no torch).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

DYNAMO = "torch._dynamo"
DYNAMO_UTILS = "torch._dynamo.utils"


def import_torchvision() -> types.ModuleType:
    """The ``torchvision`` module, imported without ``torch._dynamo`` when it is not loaded yet (module docstring)."""
    loaded = sys.modules.get("torchvision")
    if loaded is not None:
        return loaded
    import torch  # noqa: F401 - torch itself imports normally; only its compiler stack is left out

    if DYNAMO in sys.modules:
        return importlib.import_module("torchvision")
    stand_ins = _stand_ins()
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - whatever failed with the stand-ins is retried (and reported) without them
        _forget("torchvision")  # the partial import, so the ordinary one below starts clean
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return importlib.import_module("torchvision")


def is_compile_supported(device_type: Any) -> Any:
    """torch._dynamo.utils.is_compile_supported, imported on first use (the stand-in's only function)."""
    from torch._dynamo.utils import is_compile_supported as real

    return real(device_type)


def _stand_ins() -> dict[str, types.ModuleType]:
    package = types.ModuleType(DYNAMO, "stand-in while torchvision imports (vidprep.stages.models.torchvision_import)")
    package.__path__ = []  # a package, so ``torch._dynamo.utils`` resolves under it
    utils = types.ModuleType(DYNAMO_UTILS, package.__doc__)
    utils.is_compile_supported = is_compile_supported  # type: ignore[attr-defined]
    return {DYNAMO: package, DYNAMO_UTILS: utils}


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
