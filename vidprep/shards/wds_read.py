"""Read vidprep's WebDataset tars as untrusted input: samples, the unit record, checks for `shards verify`.

A tar is read as a stream of headers and member bytes (``tarfile`` mode ``r:``: no compression, so no
decompression bomb), never extracted: nothing is written anywhere and no member name is used as a path. A member is
refused unless it is a regular file whose name is a vidprep sample member (``<key>.<suffix>`` with a key of
`vidprep.shards.wds_tar.sample_key`'s alphabet, no ``/``, ``..``, backslash or control character) or the unit record,
and its claimed size fits in the file and under ``MAX_MEMBER_BYTES``. Symlinks, hard links, devices and
directories are refused, and so is a tar path that is itself a symlink (it could point outside OUT).
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidprep.errors import ShardError
from vidprep.shards.wds_tar import EMBEDDINGS_MEMBER, FORMAT_NAME, TAR_RE, UNIT_MEMBER

#: Largest member accepted (one mp4 clip, one feature array, one unit record).
MAX_MEMBER_BYTES = 1 << 30
MEMBER_RE = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9_-]{0,200})\.(?P<suffix>[A-Za-z0-9_.]{1,32})$")
SPECIAL = (UNIT_MEMBER, EMBEDDINGS_MEMBER)


@dataclass
class Sample:
    """One sample of a tar: its key, its row (position in the tar) and its members by suffix."""

    key: str
    row: int
    members: dict[str, bytes] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    @property
    def meta(self) -> dict[str, Any]:
        """The parsed ``.json`` member."""
        value = json.loads(self.members["json"].decode("utf-8"))
        if not isinstance(value, dict):
            raise ShardError(f"sample {self.key}: .json is not an object")
        return value


def find_tars(path_or_paths: str | Path | list[str | Path]) -> list[Path]:
    """Tar shards named by a directory (its ``shard-*.tar`` by number), a ``.tar`` file, or a list of either."""
    items = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    found: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            tars = [c for c in p.iterdir() if TAR_RE.match(c.name)]
            found += sorted(tars, key=lambda c: int(TAR_RE.match(c.name)[1]))  # type: ignore[index]
        elif p.is_file() or p.is_symlink():
            found.append(p)
        else:
            raise ShardError("no such tar shard or directory", path=str(p))
    return found


def is_wds(paths: str | Path | list[str]) -> bool:
    """True when ``paths`` name tar shards (a ``.tar`` file or a directory holding ``shard-*.tar``)."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for item in items:
        p = Path(item)
        if p.suffix == ".tar" or (p.is_dir() and any(TAR_RE.match(c.name) for c in p.iterdir())):
            return True
    return False


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every member, refusing anything that is not a plain, sanely sized vidprep member."""
    if path.is_symlink():
        raise ShardError("tar shard is a symlink; refused (it may point outside the output directory)", path=str(path))
    from vidprep.shards.trust import open_regular

    fh, st = open_regular(path)  # a FIFO named .tar must not block the read
    size = st.st_size
    try:
        with fh, tarfile.open(fileobj=fh, mode="r:") as tar:
            for info in tar:
                problem = _member_problem(info, size)
                if problem:
                    raise ShardError(f"member {info.name!r}: {problem}", path=str(path))
                handle = tar.extractfile(info)
                data = handle.read() if handle is not None else b""
                if len(data) != info.size:
                    raise ShardError(f"member {info.name!r}: truncated", path=str(path))
                yield info.name, data
    except tarfile.TarError as err:
        raise ShardError(f"not a readable tar: {err}", path=str(path)) from None


def _member_problem(info: tarfile.TarInfo, file_size: int) -> str | None:
    if not info.isreg():
        return "not a regular file (symlinks, links, devices and directories are refused)"
    if info.size < 0 or info.size > min(MAX_MEMBER_BYTES, file_size):
        return f"claims {info.size} bytes (file has {file_size}, limit {MAX_MEMBER_BYTES})"
    if info.name in SPECIAL or MEMBER_RE.match(info.name):
        return None
    return "name is not a vidprep sample member (paths, '..', backslashes and control characters are refused)"


def read_tar(path: str | Path,
             keep: tuple[str, ...] | None = None) -> tuple[list[Sample], dict[str, Any], bytes | None]:
    """Samples in order, the unit record and the text embeddings (npy bytes, or None) of one tar.

    ``keep``: the member suffixes whose bytes are kept (None: all); the others are read, checked and dropped, so
    listing or verifying a large tar holds only its metadata in memory.

    Raises:
        ShardError: a refused member, a sample split in two runs, no ``.json`` or no unit record.
    """
    p = Path(path)
    samples: list[Sample] = []
    unit: dict[str, Any] | None = None
    embeddings = None
    for name, data in _members(p):
        if name == UNIT_MEMBER:
            unit = json.loads(data.decode("utf-8"))
            continue
        if name == EMBEDDINGS_MEMBER:
            embeddings = data
            continue
        m = MEMBER_RE.match(name)
        assert m is not None  # _members refused every other name
        key, suffix = m["key"], m["suffix"]
        if not samples or samples[-1].key != key:
            if any(s.key == key for s in samples):
                raise ShardError(f"sample {key} appears twice", path=str(p))
            samples.append(Sample(key, len(samples)))
        if suffix in samples[-1].members or suffix in samples[-1].seen:
            raise ShardError(f"sample {key}: member .{suffix} twice", path=str(p))
        samples[-1].seen.add(suffix)
        if keep is None or suffix in keep:
            samples[-1].members[suffix] = data
    if not isinstance(unit, dict) or unit.get("format") != FORMAT_NAME:
        raise ShardError(f"no {UNIT_MEMBER} record: not a complete vidprep tar", path=str(p))
    for s in samples:
        if "json" not in s.seen:
            raise ShardError(f"sample {s.key} has no .json", path=str(p))
    return samples, unit, embeddings


def read_unit(path: str | Path) -> dict[str, Any]:
    """The unit record of a tar (its inputs, stored videos and failures), checking the whole tar on the way."""
    return read_tar(path, keep=())[1]


def validate_tar(path: str | Path) -> list[str]:
    """Problems of one tar (empty = valid): refused members, bad samples, counts that disagree with its record."""
    try:
        samples, unit, _ = read_tar(path, keep=("json",))
        metas = [s.meta for s in samples]
    except (ShardError, ValueError, UnicodeDecodeError) as err:  # JSON errors are ValueErrors
        return [str(err)]
    problems = []
    if unit.get("samples") != len(samples):
        problems.append(f"record says {unit.get('samples')} samples, tar has {len(samples)}")
    stored = set(unit.get("video_ids", []))
    strays = sorted({str(m.get("video_id")) for m in metas} - stored)
    if strays:
        problems.append(f"samples of videos the record does not list: {strays[:5]}")
    return problems


def list_clips(path: str | Path) -> Iterator[dict[str, Any]]:
    """One dict per sample: tar name, row, key and the sample's metadata (as `shards ls --clips` shows)."""
    p = Path(path)
    samples, _, _ = read_tar(p, keep=("json",))
    for s in samples:
        meta = s.meta
        yield {"shard": p.name, "row": s.row, "key": s.key, **{k: meta.get(k) for k in (
            "video_id", "clip_index", "aug_index", "start_s", "end_s", "frames", "label", "label_name")}}


def is_real_file(path: Path) -> bool:
    """A regular file that is not a symlink."""
    try:
        return os.path.isfile(path) and not path.is_symlink()
    except OSError:
        return False
