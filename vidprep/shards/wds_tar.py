"""WebDataset tar shards (``--format wds``): the sample key rule and the writer of one ``shard-NNNNN.tar``.

A tar holds one *sample* per clip: members ``<key>.json`` (metadata), the frames (``<key>.mp4``, or one
``<key>.<i:04d>.jpg`` per frame) and ``<key>.npy`` (features) when present, in that order, each sample's members
contiguous — what the ``webdataset`` library and Hugging Face ``load_dataset("webdataset")`` group by key. The unit's
own record (every input video id, its failures, class names) is the last member, ``__vidprep_unit__``: a name both
libraries skip (webdataset skips ``__*__`` names, datasets skips names starting with ``__``).

Key rule (`sample_key`): ``<slug>-<hash>-c<clip:06d>-a<aug:03d>``. ``slug`` is the video id with every character
other than ``A-Z a-z 0-9 _ -`` replaced by ``_``, leading ``_``/``-`` removed, cut to 64 characters (``v`` when
nothing is left); ``hash`` is 8 hex digits of BLAKE2b over the id's UTF-8 bytes, so ids that slug alike
(``a/b.mp4``, ``a_b.mp4``) stay apart. A key therefore has no ``.`` (webdataset splits at the first dot of a
member's name), no ``/`` (no directories, nothing to traverse) and never starts with ``_`` or ``.``; the exact id is
in the sample's ``.json``. Member headers are fixed (mode 0644, mtime 0, uid/gid 0, no user names, PAX format), so
the same samples give the same bytes.

The tar is written under a temp name (`vidprep.shards.atomic`), fsynced and renamed into place by `commit`, as
HDF5 shards are.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import tarfile
from pathlib import Path
from typing import Any

from vidprep.errors import ShardError
from vidprep.shards import atomic
from vidprep.shards.manifest import ShardSummary, fsync_and_hash

log = logging.getLogger("vidprep.shards.wds_tar")

TAR_RE = re.compile(r"^shard-(\d+)\.tar$")
UNIT_MEMBER = "__vidprep_unit__"
EMBEDDINGS_MEMBER = "__vidprep_text_embeddings__"
FORMAT_NAME = "vidprep-wds"
FORMAT_VERSION = 1
SLUG_CHARS = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tar_name(unit: int) -> str:
    """File name of unit ``unit``'s tar."""
    return f"shard-{unit:05d}.tar"


def sample_key(video_id: str, clip_index: int, aug_index: int) -> str:
    """The stable, tar-safe key of a clip (see the module docstring for the rule)."""
    slug = _UNSAFE.sub("_", video_id).lstrip("_-")[:SLUG_CHARS] or "v"
    digest = hashlib.blake2b(video_id.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{slug}-{digest}-c{int(clip_index):06d}-a{int(aug_index):03d}"


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON (NaN stays NaN, which Python's json, webdataset and datasets read back)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class TarShardWriter:
    """Writes one tar shard: samples appended in order, the unit record last, published atomically by `commit`."""

    def __init__(self, path: str | Path, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.temp = atomic.temp_path_for(self.path)
        atomic.claim(self.temp)
        self._tar: tarfile.TarFile | None = tarfile.open(self.temp, "w", format=tarfile.PAX_FORMAT)
        self.keys: list[str] = []
        self.frames = 0
        self.failed: BaseException | None = None  # a write that failed midway leaves a torn member: never publish

    def add_sample(self, key: str, members: list[tuple[str, bytes]], frames: int = 0) -> None:
        """Append one sample: ``members`` are (suffix after ``key.``, bytes), ``json`` first by convention."""
        if key in self.keys:
            raise ValueError(f"sample key {key!r} written twice")
        for suffix, data in members:
            self._add(f"{key}.{suffix}", data)
        self.keys.append(key)
        self.frames += frames

    def _add(self, name: str, data: bytes) -> None:
        if self._tar is None or self.failed is not None:
            raise ShardError(f"writer is closed or failed earlier ({self.failed})", path=str(self.path))
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        try:
            self._tar.addfile(info, io.BytesIO(data))
        except BaseException as err:
            self.failed = err
            raise

    def commit(self, unit: dict[str, Any], embeddings: bytes | None = None) -> ShardSummary:
        """Write the unit record (and text embeddings), close, fsync and publish; returns the manifest summary."""
        if embeddings is not None:
            self._add(EMBEDDINGS_MEMBER, embeddings)
        record = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": self.kind,
                  "samples": len(self.keys), "frames": self.frames, **unit}
        self._add(UNIT_MEMBER, json_bytes(record))
        assert self._tar is not None
        self._tar.close()
        self._tar = None
        digest, size = fsync_and_hash(self.temp)
        atomic.release(self.temp)
        atomic.publish(self.temp, self.path, synced=True)
        log.debug("%s: %d samples", self.path, len(self.keys))
        videos = tuple(unit.get("video_ids", ()))
        return ShardSummary(self.path, self.kind, len(videos), len(self.keys), self.frames, size, digest, videos)

    def abort(self) -> None:
        """Drop the unfinished tar (its temp file)."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        atomic.release(self.temp)
        self.temp.unlink(missing_ok=True)
