"""`--preview FILE.png`: a before/after contact sheet for the first few clips, because people judge by looking.

It decodes only the first frames of up to three inputs again (cheap, independent of the run's output), applies the
same enhancement or augmentation the run used, and writes original rows above processed rows.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np

from vidprep.config import RunConfig
from vidprep.inputs import InputList

log = logging.getLogger("vidprep.preview")


def _first_frames(listed: InputList, cfg: RunConfig, clips: int, frames: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``clips`` (video_id, (T,H,W,3)) samples from the inputs, videos first, then shard inputs."""
    from vidprep.errors import VidprepError
    from vidprep.media.decode import decode
    from vidprep.media.probe import probe

    out: list[tuple[str, np.ndarray]] = []
    for item in listed.videos:
        if len(out) == clips:
            return out
        try:
            stream = decode(probe(item.path), cfg.split.sampling(), cfg.split.size_spec(), timeout_s=cfg.timeout_s,
                            max_pixels=cfg.max_pixels, deinterlace=cfg.split.deinterlace)
            got = [f.rgb for f in itertools.islice(stream, frames)]
            stream.close()
        except VidprepError as err:
            log.warning("preview skips %s: %s", item.video_id, err)
            continue
        if got:
            out.append((item.video_id, np.stack(got)))
    return out + _shard_frames(listed.shards, clips - len(out), frames)


def _shard_frames(paths: list[str], clips: int, frames: int) -> list[tuple[str, np.ndarray]]:
    from vidprep.shards.source import iter_videos

    out: list[tuple[str, np.ndarray]] = []
    for path in paths:
        try:
            for video in iter_videos(path):
                if len(out) >= clips:
                    return out
                rgb = next(video.chunks())[0][:frames]
                out.append((video.video_id, rgb))
        except Exception as err:  # noqa: BLE001 - the run itself already recorded this input's error
            log.warning("preview skips %s: %s", path, " ".join(str(err).split()))
    return out


def _process(stage: str, cfg: RunConfig, video_id: str, clip: np.ndarray) -> np.ndarray:
    if stage == "enhance":
        from vidprep.stages.enhance import Enhancer

        if cfg.enhance is None:
            raise ValueError("preview of enhance: the run has no enhance stage")
        return Enhancer(cfg.enhance).apply(clip)
    from vidprep.stages.augment import Augmenter

    if cfg.augment is None:
        raise ValueError("preview of augment: the run has no augment stage")
    frames, _ = Augmenter(cfg.augment, cfg.seed).augment_clip(clip, video_id=video_id, clip_index=0, copy_index=1)
    return frames


def write_preview(listed: InputList, cfg: RunConfig, stage: str, path: Path, *, clips: int = 3,
                  frames: int = 6) -> None:
    """Write the contact sheet PNG for ``stage`` ('enhance' or 'augment')."""
    from vidprep.media.encode import write_image
    from vidprep.stages.preview import contact_sheet

    samples = _first_frames(listed, cfg, clips, frames)
    if not samples:
        log.warning("no frames for a preview; %s not written", path)
        return
    pairs = [(clip, _process(stage, cfg, vid, clip)) for vid, clip in samples]
    label = ("original", "enhanced" if stage == "enhance" else "augmented (copy 1)")
    write_image(path, contact_sheet(pairs, max_frames=frames, label=label))
    log.info("preview written to %s", path)
