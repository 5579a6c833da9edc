"""The honest weights policy shared by every model family: where parameters come from, and how they are read.

- A local file (``--weights PATH``): a ``.safetensors`` file (read with safetensors: no code at all) or a torch
  state dict read with ``torch.load(weights_only=True)`` (a pickle that holds code is refused, never run).
- A library cache that already holds the files (torch hub checkpoints, the Hugging Face hub cache). A missing file
  is downloaded only when its host is reachable and ``VIDPREP_OFFLINE`` is unset; otherwise a :class:`WeightsError`
  names exactly what to put where. Never a silent fallback to random weights.
- ``none``: seeded random initialization (the family's backend seeds it).

A file's identity is its sha256 (and, from the HF cache, the repository and revision); it goes into the shard's
``/meta/config_json`` through the extractor's ``describe()``. Importing this module does not import torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidprep.errors import WeightsError

log = logging.getLogger("vidprep.stages.models.weights")

OFFLINE_ENV = "VIDPREP_OFFLINE"
STATE_DICT_KEYS = ("state_dict", "model")
STRIP_PREFIXES = ("module.", "_orig_mod.")
HF_HOST = "huggingface.co"


def offline() -> bool:
    """True when ``VIDPREP_OFFLINE`` (or the HF hub's own offline switch) says never to download."""
    flags = (os.environ.get(OFFLINE_ENV, ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return any(v.lower() in ("1", "true", "yes") for v in flags)


def can_reach(host: str, timeout: float = 3.0) -> bool:
    """True unless offline mode is set or ``host`` cannot be reached on port 443 within ``timeout`` seconds."""
    if offline() or not host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_safetensors(path: Path) -> bool:
    """safetensors files are recognised by name (``*.safetensors``), as every library that writes them names them."""
    return Path(path).suffix == ".safetensors"


def read_state_dict(path: Path, *, label: str | None = None, mmap: bool = False) -> dict[str, Any]:
    """Load a state dict without running code: safetensors, or ``torch.load(weights_only=True)``.

    Accepts a plain state dict or a dict holding one under ``state_dict``/``model``; strips wrapper prefixes.
    ``mmap`` maps the tensors instead of reading them (a cheap structural check; legacy, non-zip files are read).
    """
    import pickle

    import torch

    where = label or str(path)
    if is_safetensors(path):
        return _as_state_dict(_read_safetensors(Path(path), where), where)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and _is_zip(path))
    except FileNotFoundError:
        raise WeightsError("weights file not found", path=where) from None
    except pickle.UnpicklingError:
        raise WeightsError("refused: the file holds Python objects other than tensors "
                           "(torch.load weights_only=True; nothing in it was run)", path=where) from None
    except Exception as err:  # torch raises RuntimeError/EOFError/ValueError... for truncated or foreign files
        raise WeightsError(f"not a readable weights file (truncated or corrupt?): {type(err).__name__}",
                           path=where) from None
    return _as_state_dict(obj, where)


def _read_safetensors(path: Path, where: str) -> dict[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError("reading .safetensors files needs the safetensors package "
                           "(pip install 'vidprep[hf]')", path=where) from None
    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise WeightsError("weights file not found", path=where) from None
    except Exception as err:  # SafetensorError for truncated/foreign files
        raise WeightsError(f"not a readable safetensors file (truncated or corrupt?): {type(err).__name__}",
                           path=where) from None


def _is_zip(path: Path) -> bool:
    """True for torch's zip checkpoint format (the only one ``torch.load`` can memory-map)."""
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _as_state_dict(obj: Any, where: str) -> dict[str, Any]:
    """Unwrap a checkpoint dict and check that what is left maps names to tensors."""
    import torch

    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"not a state dict (got {type(obj).__name__}; expected a dict of name -> tensor, "
                           f"or one under {'/'.join(STATE_DICT_KEYS)})", path=where)
    return {strip(k): v for k, v in obj.items()}


def strip(key: str) -> str:
    """A state dict key without DataParallel / torch.compile wrapper prefixes."""
    for prefix in STRIP_PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


@dataclass(frozen=True)
class WeightsProof:
    """A weights file the driver checked before any decoding: its path, sha256 and the stat it had then, so a
    worker that finds the file unchanged loads it without hashing it again."""

    path: str
    sha256: str
    size: int
    mtime_ns: int

    def holds_for(self, path: Path) -> bool:
        """True when ``path`` is the checked file and its size and mtime are unchanged."""
        try:
            st = path.stat()
        except OSError:
            return False
        return str(path) == self.path and (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


def proof_for(path: Path, digest: str) -> WeightsProof:
    """A proof for ``path`` with the sha256 just computed."""
    st = path.stat()
    return WeightsProof(str(path), digest, st.st_size, st.st_mtime_ns)


def check_file(path: Path) -> WeightsProof:
    """Structural check of a weights file (memory-mapped / header only) plus its sha256, as a proof."""
    read_state_dict(path, mmap=True)
    return proof_for(path, sha256_of(path))


def file_digest(path: Path, proof: WeightsProof | None) -> str:
    """sha256 of ``path``: the driver's proof when the file is unchanged, else computed now."""
    if proof is not None and proof.holds_for(path):
        return proof.sha256
    return sha256_of(path)


def load_matching(model: Any, state: dict[str, Any], *, where: str, name: str,
                  ignore: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``model``: keys starting with ``ignore`` prefixes are dropped; every other key of the
    state must exist in the model with its shape, and every key of the model must be in the state."""
    state = {k: v for k, v in state.items() if not k.startswith(ignore)} if ignore else state
    own = model.state_dict()
    shapes = [f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if shapes:
        raise WeightsError(f"does not match {name}: {len(shapes)} shape mismatches ({few(shapes)})", path=where)
    result = model.load_state_dict(state, strict=False)  # strict in effect: any key problem raises below
    problems = [f"{len(keys)} {what} keys ({few(keys)})"
                for what, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)) if keys]
    if problems:
        raise WeightsError(f"does not match {name}: {'; '.join(problems)}", path=where)


def few(items: list[str], n: int = 3) -> str:
    """The first ``n`` items, and how many more there are."""
    more = f", ... {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def hf_cached(repo: str, filenames: tuple[str, ...], *, revision: str | None = None,
              what: str) -> tuple[Path, str]:
    """The first of ``filenames`` of HF hub repository ``repo`` in the local HF cache, downloaded when that can
    work; returns (path, revision). WeightsError naming the files and where to put them otherwise."""
    try:
        import huggingface_hub as hub
    except ImportError:
        raise WeightsError(f"{what}: reading the Hugging Face cache needs huggingface_hub "
                           "(pip install 'vidprep[hf]')") from None
    for filename in filenames:
        found = hub.try_to_load_from_cache(repo, filename, revision=revision)
        if isinstance(found, str):
            return Path(found), _revision_of(Path(found))
    cache = Path(hub.constants.HF_HUB_CACHE)
    missing = (f"{what}: {' or '.join(filenames)} of {repo} is not in the Hugging Face cache ({cache}); run "
               f"`huggingface-cli download {repo} {filenames[0]}` where a network is reachable (then copy {cache}), "
               "or pass --weights PATH to a local file or model directory")
    if not can_reach(HF_HOST):
        raise WeightsError(f"{missing}; no network to download it" + (" (VIDPREP_OFFLINE is set)" if offline() else ""))
    errors = []
    for filename in filenames:
        try:
            found = hub.hf_hub_download(repo, filename, revision=revision)
            return Path(found), _revision_of(Path(found))
        except Exception as err:  # a missing alternative (e.g. no .safetensors) is normal: try the next name
            errors.append(f"{filename}: {type(err).__name__}")
    raise WeightsError(f"{missing}; download failed ({'; '.join(errors)})")


def _revision_of(path: Path) -> str:
    """The commit a cached HF file belongs to (``.../snapshots/<commit>/<file>``), or ``unknown``."""
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else "unknown"


class CachedFileWeights:
    """Weights handling shared by the backends whose weights are one file, local or in the HF hub cache (hf, timm,
    open_clip): where the file is, the driver's up-front check, and reading it with its provenance."""

    name: str

    def weights_what(self, choice: Any) -> str:
        """How error messages name these weights."""
        return f"weights of {self.name}"

    def weights_file(self, choice: Any) -> tuple[Path, dict[str, Any]]:
        """The weights file of ``choice`` and what identifies it besides its sha256 (hub file and revision)."""
        if choice.source == "hub":
            path, revision = hf_cached(choice.extra["repo"], choice.extra["files"], what=self.weights_what(choice))
            return path, {"file": str(path), "revision": revision}
        return Path(choice.id), {}

    def verify(self, choice: Any) -> WeightsProof | None:
        """The driver's check before any decoding (None for ``none``)."""
        if choice.source == "none":
            return None
        return check_file(self.weights_file(choice)[0])

    def read_weights(self, choice: Any, seed: int, proof: WeightsProof | None) -> tuple[dict[str, Any], Any]:
        """(provenance for the shard, state dict or None for seeded random weights)."""
        info: dict[str, Any] = {"weights": choice.id, "source": choice.source}
        if choice.source == "none":
            info["seed"] = seed
            return info, None
        path, more = self.weights_file(choice)
        info.update(more, sha256=file_digest(path, proof))
        return info, read_state_dict(path)
