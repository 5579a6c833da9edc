"""Which options apply to which inputs, and the config record of what a run applied.

Shards from an earlier step carry frames that were already sampled, scaled and cut into clips, so the split
options that shape frames and clips cannot act on them. Given for a run whose inputs are all shards, such an option
is a usage error naming it (never silently ignored); left at its default it is simply not recorded: the run's
``/meta/config_json`` then holds only the split options that still apply (output format, frame codec, labels: the
output options are recorded in ``split``, see ``RunConfig.record``), and
the frames' own sampling stays recorded in the input shards. With videos among the inputs the split options apply
to the videos and are recorded as given; the shards' frames are taken as stored.
"""

from __future__ import annotations

from vidprep.config import RunConfig
from vidprep.errors import UsageError
from vidprep.inputs import InputList

# Split options that shape frames and clips: meaningless for frames that were already sampled.
FRAME_OPTIONS = (
    "fps", "every", "num_frames", "size", "resize", "center_crop", "deinterlace", "clip_frames", "stride",
    "clip_seconds", "clip_stride", "tail", "scenes", "scene_threshold", "min_scene_seconds", "scene_window",
    "scene_min_content", "scene_detector", "scene_prob_threshold",
)


def shard_inputs_only(listed: InputList) -> bool:
    """True when no input is a video (rejected inputs count as videos unless they are ``.h5`` paths)."""
    return not listed.videos and all(p.path.endswith(".h5") for p in listed.problems)


def flag(name: str) -> str:
    """The CLI spelling of a config key."""
    return "--" + name.replace("_", "-")


def check_shard_options(config: RunConfig) -> None:
    """UsageError naming the frame-shaping split options that were given although every input is a shard."""
    given = [k for k in FRAME_OPTIONS if k in config.split.model_fields_set]
    if given:
        names = ", ".join(flag(k) for k in given)
        verb = "does" if len(given) == 1 else "do"
        raise UsageError(f"{names} {verb} not apply to shard inputs: their frames are already sampled; re-split the "
                         "videos instead (or drop the option, also from [split] in a config file)")


def record_applied(config: RunConfig, listed: InputList) -> dict:
    """The JSON-able config stored in every shard and the manifest: what this run applies to these inputs."""
    from vidprep.shards.wds_options import drop_unused_wds_keys

    record = config.record()
    drop_unused_wds_keys(record)
    if shard_inputs_only(listed):
        check_shard_options(config)
        record["split"] = {k: v for k, v in record["split"].items() if k not in FRAME_OPTIONS}
    return record
