"""Before any decoding: check a ``--stats-from`` file against the run and make the config say what it applies.

A normalization file records what its statistics were fitted on (model, weights id, feature dimension) and how
(method, PCA dimension, whitening, quantization). Statistics of another model or dimension would fail (or silently
mean nothing) only after all the compute, so a mismatch is a usage error here, naming both sides. The method comes
from the file: ``--normalize``/``--pca-dim``/``--whiten``/``--quantize`` given with ``--stats-from`` must match it
(else exit 2), and the run's config takes the file's values, so ``/meta/config_json`` records what was applied.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vidprep.config import FeaturesConfig, RunConfig
from vidprep.errors import UsageError, VidprepError

log = logging.getLogger("vidprep.engine.normalize_setup")

METHOD_OPTIONS = ("normalize", "pca_dim", "whiten", "quantize")


def weights_id(info: dict[str, Any]) -> str:
    """One string for the weights a model ran with, from its provenance (``FeatureExtractor.describe()``).

    Random weights depend on the seed; a weights file is known by its content, not its path.
    """
    source = info.get("source")
    if source == "none" or info.get("weights") == "none":
        return f"none(seed={info.get('seed', 0)})"
    if source == "file" and info.get("sha256"):
        return f"sha256:{info['sha256']}"
    return str(info.get("weights"))


def run_model(feats: FeaturesConfig, seed: int) -> dict[str, Any]:
    """Model name, weights id and feature dimension this run's features will have (reads no video)."""
    from vidprep.stages.models import get_backend, sha256_of

    backend = get_backend(feats.model)
    choice = backend.resolve_weights(feats.weights)
    spec = backend.feature_spec(choice)
    info: dict[str, Any] = {"weights": choice.id, "source": choice.source, "seed": seed}
    if choice.source == "file":
        info["sha256"] = sha256_of(Path(choice.id))
    return {"model": spec.name, "weights": weights_id(info), "dim": spec.dim}


def resolve_stats_from(config: RunConfig, out: Path, overwrite: bool) -> RunConfig:
    """``config`` with the --stats-from file's method filled in; UsageError on any mismatch with the run."""
    feats = config.features
    if feats is None or not feats.stats_from:
        return config
    from vidprep.shards.normalization import NAME, stats_digest

    path = Path(feats.stats_from)
    if overwrite and path.resolve() == (out / NAME).resolve():
        raise UsageError("--stats-from names this output's own normalization.h5, which --overwrite deletes: copy it "
                         "elsewhere first", path=str(path))
    arrays, attrs = _load(path)
    _check_model(path, attrs, arrays, run_model(feats, config.seed))
    method = _method(attrs, arrays)
    _check_explicit(feats, method, path)
    if not overwrite and (out / NAME).is_file():
        _check_output_stats(out / NAME, stats_digest(arrays, attrs), path)
    return config.model_copy(update={"features": feats.model_copy(update=method)})


def _load(path: Path) -> tuple[dict, dict]:
    from vidprep.shards.normalization import load_normalization

    if not path.is_file():
        raise UsageError("--stats-from: normalization file not found", path=str(path))
    try:
        return load_normalization(path)
    except VidprepError as err:
        raise UsageError(f"--stats-from: {str(err).removeprefix(f'{err.path}: ')}", path=str(path)) from None


def _check_model(path: Path, attrs: dict, arrays: dict, run: dict[str, Any]) -> None:
    """Same model, weights and dimension as the statistics were fitted on (the dimension also from the arrays)."""
    dim = attrs.get("dim") or (len(arrays["mean"]) if "mean" in arrays else None)
    have = {"model": attrs.get("model"), "weights": attrs.get("weights"), "dim": dim}
    wrong = [k for k, v in have.items() if v is not None and str(v) != str(run[k])]
    if wrong:
        raise UsageError(f"--stats-from: the statistics were fitted on {_side(have)}; this run computes {_side(run)} "
                         f"(they differ in {', '.join(wrong)}): use statistics of the same model, or fit new ones "
                         "without --stats-from", path=str(path))
    if have["model"] is None:
        log.warning("%s does not record the model it was fitted on; only its dimension (%s) was checked", path, dim)


def _side(d: dict[str, Any]) -> str:
    model, weights = d["model"] or "(not recorded)", d["weights"] or "(not recorded)"
    return f"model {model}, weights {weights}, dim {d['dim'] or '(any)'}"


def _method(attrs: dict, arrays: dict) -> dict[str, Any]:
    """The file's method as FeaturesConfig values."""
    from vidprep.stages.normalize import NormStats

    norm = NormStats.from_arrays(arrays, attrs)
    pca = norm.method == "pca"
    return {"normalize": norm.method, "pca_dim": norm.dim_out if pca else None, "whiten": bool(pca and norm.whiten),
            "quantize": "uint8" if norm.quantized else "none"}


def _check_explicit(feats: FeaturesConfig, method: dict[str, Any], path: Path) -> None:
    """Method options the user gave must say what the file does (they cannot change fitted statistics)."""
    given = [k for k in METHOD_OPTIONS if k in feats.model_fields_set]
    wrong = [k for k in given if getattr(feats, k) != method[k]]
    if wrong:
        mine = ", ".join(f"--{k.replace('_', '-')} {_flag(getattr(feats, k))}" for k in wrong)
        theirs = ", ".join(f"{k.replace('_', '-')} {_flag(method[k])}" for k in wrong)
        raise UsageError(f"{mine} does not match the --stats-from file ({theirs}): the statistics decide the method; "
                         "drop the option, or fit new statistics without --stats-from", path=str(path))


def _flag(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_output_stats(existing: Path, digest: str, path: Path) -> None:
    """Resuming into an OUT normalized with other statistics would mix two normalizations."""
    from vidprep.shards.normalization import load_normalization, stats_digest

    have = stats_digest(*load_normalization(existing))
    if have != digest:
        raise UsageError(f"holds other statistics (id {have}) than --stats-from {path} (id {digest}); "
                         "the shards here were normalized with them: use --overwrite or another output directory",
                         path=str(existing))
