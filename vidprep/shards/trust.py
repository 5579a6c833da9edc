"""Shards are untrusted input: refuse anything in one that would read another file or allocate without bound.

HDF5 can make a dataset read its bytes from any local file (external storage), from datasets of other HDF5 files
(virtual datasets), or resolve a name in another file (external links); soft links can alias or loop. A dataset
may also claim any shape without storing it. So before anything reads data from a shard, `check_file` walks
every object through HDF5's low-level API *without following links* and refuses:

- any link that is not a hard link (soft, external, user-defined);
- any dataset with external storage or a virtual layout;
- filters other than gzip (deflate), shuffle and fletcher32 (others may load a plugin library);
- a dataset that claims more bytes than the file stores for it (x1032, the most deflate can expand, when it is
  gzip-compressed), or chunks above MAX_CHUNK_BYTES; objects other than groups and datasets; more than
  MAX_OBJECTS objects.

The walk reads the file through a Python file object, so even opening a virtual dataset (which makes HDF5 open
its source files to learn the extent) cannot reach another file: HDF5's file driver only ever sees this one.
`open_shard` then opens the checked file normally (the same inode) and, unless told otherwise, checks the layout
with `format.layout_problems`, which also bounds the counts and frame sizes before any column is read.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from typing import BinaryIO

import h5py

from vidprep.errors import ShardError

log = logging.getLogger("vidprep.shards.trust")

ALLOWED_FILTERS = {h5py.h5z.FILTER_DEFLATE: "gzip", h5py.h5z.FILTER_SHUFFLE: "shuffle",
                   h5py.h5z.FILTER_FLETCHER32: "fletcher32"}
DEFLATE_MAX_RATIO = 1032  # zlib cannot expand data more than ~1032:1
MAX_CHUNK_BYTES = 256 * 2**20  # one 8192x8192 RGB frame is 192 MiB
MAX_OBJECTS = 4_000_000  # groups + datasets; a shard has about 5 per video
_LINK_KINDS = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}


def open_regular(path: str | os.PathLike) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading without blocking (a FIFO named .h5 must not hang us); refuse non-regular files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise ShardError(f"cannot open: {err.strerror}", path=os.fspath(path)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ShardError("not a regular file (FIFO, device or directory)", path=os.fspath(path))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st


def root_format(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not taken as a shard (not HDF5, or its root attribute format is not 'vidprep-shard'), or None.

    Cheap: reads the root attributes only. Used to sort a stray ``.h5`` (model weights, someone else's data) out of
    the inputs as one error record instead of processing it.
    """
    from vidprep.shards.format import FORMAT

    try:
        fh, _ = open_regular(path)
    except ShardError as err:
        return str(err).removeprefix(f"{os.fspath(path)}: ")
    try:
        with fh, h5py.File(fh, "r") as f:
            value = f.attrs.get("format")
    except Exception as err:  # noqa: BLE001 - any failure to parse means "not a shard"
        return f"not an HDF5 file ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not (isinstance(value, str) and value == FORMAT):  # an array attribute must not make this raise
        shown = "missing" if value is None else repr(value)[:80]
        return f"not a vidprep shard: root attribute format is {shown}, expected {FORMAT!r}"
    return None


def check_file(path: str | os.PathLike) -> list[str]:
    """Every trust problem of the file at ``path`` (empty list: nothing in it reads elsewhere or claims too much)."""
    problems, _ = _check(path)
    return problems


def _check(path: str | os.PathLike) -> tuple[list[str], os.stat_result | None]:
    try:
        fh, st = open_regular(path)
    except ShardError as err:
        return [str(err).removeprefix(f"{os.fspath(path)}: ")], None
    try:
        with fh, h5py.File(fh, "r") as f:
            return walk(f, st.st_size), st
    except Exception as err:  # noqa: BLE001 - a file HDF5 cannot parse is a problem, not a crash
        return [f"cannot open as HDF5: {type(err).__name__}: {' '.join(str(err).split())[:300]}"], None


def walk(f: h5py.File, file_size: int) -> list[str]:
    """Problems of every object reachable from the root by hard links (see the module docstring)."""
    problems: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[h5py.h5g.GroupID, str]] = [(f.id, "/")]
    count = 0
    while stack and len(problems) < 20:
        gid, where = stack.pop()
        for raw in gid:
            count += 1
            if count > MAX_OBJECTS:
                return problems + [f"more than {MAX_OBJECTS} objects"]
            name = where + raw.decode("utf-8", "backslashreplace")
            problems += _object(gid, raw, name, seen, stack, file_size)
    return problems


def _object(gid: h5py.h5g.GroupID, raw: bytes, name: str, seen: set[int], stack: list, file_size: int) -> list[str]:
    """Check one link of group ``gid``; queue the group it leads to."""
    kind = gid.links.get_info(raw).type
    if kind != h5py.h5l.TYPE_HARD:
        what = _LINK_KINDS.get(kind, "a user-defined link")
        return [f"{name} is {what}; only hard links are allowed (a link could read another file)"]
    oid = h5py.h5o.open(gid, raw)
    addr = h5py.h5o.get_info(oid).addr
    if addr in seen:  # the same object under a second name (or a hard-link cycle): checked once
        return []
    seen.add(addr)
    if isinstance(oid, h5py.h5g.GroupID):
        stack.append((oid, name + "/"))
        return []
    if isinstance(oid, h5py.h5d.DatasetID):
        return dataset_problems(oid, name, file_size)
    return [f"{name} is a {type(oid).__name__.removesuffix('ID').lower()} object; only groups and datasets belong "
            "in a shard"]


def dataset_problems(dsid: h5py.h5d.DatasetID, name: str, file_size: int) -> list[str]:
    """External storage, virtual layout, foreign filters and claims beyond the stored bytes of one dataset."""
    dcpl = dsid.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        return [f"{name} is a virtual dataset (it would read other files)"]
    if dcpl.get_external_count() > 0:
        return [f"{name} uses external storage (it would read another file)"]
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    foreign = [c for c in codes if c not in ALLOWED_FILTERS]
    if foreign:
        return [f"{name} uses HDF5 filter(s) {foreign}; only gzip, shuffle and fletcher32 are allowed"]
    shape = dsid.shape or ()
    itemsize = dsid.dtype.itemsize
    claimed = math.prod(int(n) for n in shape) * itemsize
    stored = dsid.get_storage_size()
    ratio = DEFLATE_MAX_RATIO if h5py.h5z.FILTER_DEFLATE in codes else 1
    if claimed > stored * ratio or stored > file_size:
        return [f"{name} claims shape {tuple(shape)} ({claimed} bytes) but the file stores {stored} bytes for it"]
    if layout == h5py.h5d.CHUNKED:
        chunk_bytes = math.prod(int(n) for n in dcpl.get_chunk()) * itemsize
        if chunk_bytes > MAX_CHUNK_BYTES:
            return [f"{name} has chunks of {chunk_bytes} bytes (at most {MAX_CHUNK_BYTES})"]
    return []


def open_shard(path: str | os.PathLike, *, layout: bool = True) -> h5py.File:
    """Open an untrusted shard for reading after `check_file` (and, with ``layout``, `format.layout_problems`).

    Raises:
        ShardError: one line naming the file and its first problems.
    """
    from vidprep.shards import format as fmt

    problems, st = _check(path)
    if problems:
        raise ShardError(_summary(problems), path=os.fspath(path))
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ShardError(f"cannot open as HDF5: {err}", path=os.fspath(path)) from None
    try:
        _same_file(f, st)
        problems = fmt.layout_problems(f) if layout else fmt.root_problems(f)
    except Exception:
        f.close()
        raise
    if problems:
        f.close()
        raise ShardError(_summary(problems), path=os.fspath(path))
    return f


def _same_file(f: h5py.File, st: os.stat_result | None) -> None:
    """The file opened for reading must be the one that was checked (not replaced in between)."""
    now = os.fstat(f.id.get_vfd_handle())
    if st is None or (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
            st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
        raise ShardError("the file changed while it was being checked", path=f.filename)


def _summary(problems: list[str]) -> str:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "refused as a shard: " + "; ".join(problems[:3]) + more

