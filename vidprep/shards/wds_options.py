"""Which options combine with ``--format wds`` (checked when the run config is built, so misuse is exit 2 before
any decoding).

- ``--wds-media`` only acts on wds output.
- ``--frame-codec`` is the HDF5 frame codec; wds frames are ``--wds-media`` (``--jpeg-quality`` applies to jpg).
- Feature normalization (``--normalize l2|zscore|pca``, ``--stats-from``) is a second pass that rewrites finished
  HDF5 shards in place once the whole run's statistics are known; a tar is written once and never rewritten, so
  feature runs with ``--format wds`` need ``--normalize none`` (image-text models default to ``l2``: say
  ``--normalize none`` explicitly). Normalize the loaded features yourself, or write ``--format h5`` shards.
"""

from __future__ import annotations

from typing import Any


def check_wds_options(output: Any, features: Any) -> None:
    """Raise ValueError naming the option that does not combine with the output format (see the module doc);
    ``output`` is the run's OutputConfig."""
    given = output.model_fields_set
    if output.format != "wds":
        if "wds_media" in given:
            raise ValueError(f"--wds-media applies to --format wds only (this run writes --format {output.format})")
        return
    if "frame_codec" in given:
        raise ValueError("--frame-codec applies to HDF5 shards; wds samples hold frames as --wds-media jpg|mp4")
    if features is not None and (features.normalize != "none" or features.stats_from):
        used = f"--normalize {features.normalize}" if features.normalize != "none" else "--stats-from"
        raise ValueError(f"{used} does not combine with --format wds: normalization rewrites finished HDF5 shards "
                         "in a second pass and a tar is never rewritten. Use --normalize none with --format wds "
                         "(image-text models default to l2: pass --normalize none), or --format h5")


def drop_unused_wds_keys(record: dict) -> None:
    """Leave ``wds_media`` out of a config record unless the run writes wds frames, so the records (and resume
    fingerprints) of every other output stay what they were before the wds format existed."""
    split = record.get("split") or {}
    if split.get("format") != "wds" or record.get("features") is not None:
        split.pop("wds_media", None)
