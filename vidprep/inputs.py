"""Expand INPUTS (files, directories, @lists, stdin) into a sorted work list, and cut it into work units.

Every input is untrusted: only regular files are accepted, directory walks never follow directory symlinks (so a
loop cannot trap them), a file symlink that leaves the directory being walked is rejected, protocol prefixes
(``http:``, ``concat:``, ``subfile,``...) are refused rather than handed to ffmpeg, and with ``root`` set nothing
outside it is taken. Problems with single paths become per-path errors; the rest of the batch goes on.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vidprep.errors import UsageError, printable_path
from vidprep.media.ffinput import VIDEO_EXTENSIONS
from vidprep.shards.safepath import id_problem

log = logging.getLogger("vidprep.inputs")

_PROTOCOL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*[:,]")


@dataclass(frozen=True, order=True)
class InputItem:
    """One video to process: absolute ``path``, stable ``video_id`` (relative to its input root) and that root."""

    video_id: str
    path: str
    root: str


@dataclass(frozen=True)
class InputProblem:
    """A path that was rejected before decoding, with a one-line reason."""

    path: str
    message: str


@dataclass
class InputList:
    """The resolved inputs: videos (sorted by id), shard files from an earlier step, and rejected paths."""

    videos: list[InputItem] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)


@dataclass(frozen=True)
class WorkUnit:
    """A fixed, deterministic group of videos that becomes one shard (``shard-{index:05d}.h5``); the unit of an
    input shard holds that shard's path instead."""

    index: int
    items: tuple[InputItem | str, ...]


def display_path(path: str) -> str:
    """A printable form of a path whose bytes may not be valid UTF-8."""
    return printable_path(path)


def is_shard_path(path: Path) -> bool:
    """True for a vidprep shard file or a directory that holds vidprep output."""
    if path.is_dir():
        return (path / "manifest.json").is_file() or any(path.glob("shard-*.h5"))
    return path.suffix == ".h5"


def _shard_files(path: str) -> Iterator[tuple[str, str | None]]:
    """(shard, problem or None): a checked shard file itself, or each completed shard of a vidprep output
    directory with the checks a directory walk applies (regular file; no symlink leaving the directory)."""
    if not os.path.isdir(path):
        yield path, None
        return
    real_dir = os.path.realpath(path)
    for shard in sorted(str(p) for p in Path(path).glob("shard-*.h5")):
        problem = _file_problem(shard)
        if problem is None and not _inside(os.path.realpath(shard), real_dir):
            problem = "symlink points outside the input directory"
        yield shard, problem


def checked_stream(entries: Iterable[str], root: str | None,
                   on_problem: Callable[[InputProblem], None]) -> Iterator[str]:
    """Shard paths streamed from stdin, as they arrive, with the checks any other input gets (``--root``, regular
    file, symlinks, output directories expanded): a refused path goes to ``on_problem`` and the stream goes on.
    So a FIFO named ``x.h5`` is one problem, never opened (opening it would block until a writer appears)."""
    root_path = Path(os.path.abspath(root)) if root else None
    for entry in entries:
        for path, _, problem in _candidates(entry, None, root_path):
            if problem is None and not is_shard_path(Path(path)):
                problem = "not a shard: once stdin starts with shard paths, it must list only shards"
            for shard, bad in [(path, problem)] if problem else _shard_files(path):
                bad = bad or _shard_problem(shard)
                if bad:
                    on_problem(InputProblem(display_path(shard), bad))
                else:
                    yield shard


def read_list_file(path: str, *, nul: bool = False) -> list[str]:
    """Lines of an ``@list.txt`` file (or NUL-separated entries), blank entries skipped."""
    from vidprep.named_files import read_bytes, without_bom

    try:
        data = without_bom(read_bytes(path))
    except OSError as err:
        raise UsageError(f"cannot read input list: {err.strerror}", path=path) from None
    return _split_entries(data, nul)


def read_stdin(stream: TextIO | None = None, *, nul: bool = False) -> list[str]:
    """All path entries given on stdin (one per line, or NUL-separated with ``nul``)."""
    src = stream if stream is not None else sys.stdin
    data = src.buffer.read() if hasattr(src, "buffer") else src.read().encode()
    return _split_entries(data, nul)


def iter_stdin(*, nul: bool = False) -> Iterator[str]:
    """Path entries from stdin as they arrive (so a pipe's consumer can start before its producer ends)."""
    stream = sys.stdin.buffer
    if nul:
        yield from (e for e in _split_entries(stream.read(), True))
        return
    for raw in iter(stream.readline, b""):
        line = raw.rstrip(b"\r\n").strip()
        if line:
            yield os.fsdecode(line)


def _split_entries(data: bytes, nul: bool) -> list[str]:
    parts = data.split(b"\0") if nul else data.splitlines()
    return [os.fsdecode(p.strip(b"\r") if not nul else p) for p in parts if p.strip()]


def expand(
    inputs: Iterable[str],
    *,
    glob: str | None = None,
    root: str | None = None,
    stdin: TextIO | None = None,
    nul: bool = False,
) -> InputList:
    """Resolve INPUTS into videos and shards: de-duplicated, sorted by video id, problems collected per path."""
    result = InputList()
    entries = _entries(inputs, stdin, nul)
    root_path = Path(os.path.abspath(root)) if root else None
    found: dict[str, tuple[str, str]] = {}
    for entry in entries:
        for path, walk_root, problem in _candidates(entry, glob, root_path):
            if problem:
                result.problems.append(InputProblem(display_path(path), problem))
            elif is_shard_path(Path(path)):
                _add_shards(result, _shard_files(path))
            else:
                found.setdefault(os.path.realpath(path), (path, walk_root))
    common = str(root_path) if root_path else _common_root([r for _, r in found.values()])
    for path, _ in found.values():  # the id names output files (jpg/png/mp4); shard readers check it again
        item = InputItem(_video_id(path, common), path, common)
        if (problem := id_problem(item.video_id)) is None:
            result.videos.append(item)
        else:
            result.problems.append(InputProblem(display_path(path), f"unusable file name: the video id {problem}"))
    result.videos.sort()
    result.shards = sorted(set(result.shards))
    return result


def _add_shards(result: InputList, found: Iterable[tuple[str, str | None]]) -> None:
    """Take the files that are vidprep shards; any other file (a stray .h5, a FIFO) is one input problem."""
    for path, problem in found:
        problem = problem or _shard_problem(path)
        if problem is None:
            result.shards.append(path)
        else:
            result.problems.append(InputProblem(display_path(path), problem))


def _shard_problem(path: str) -> str | None:
    """None for a regular file whose root says it is a vidprep shard, else why it is not taken as one."""
    from vidprep.shards.trust import root_format

    return _file_problem(path) or root_format(path)


def _entries(inputs: Iterable[str], stdin: TextIO | None, nul: bool) -> list[str]:
    out: list[str] = []
    for raw in inputs:
        if raw == "-":
            out.extend(read_stdin(stdin, nul=nul))
        elif raw.startswith("@") and len(raw) > 1:
            out.extend(read_list_file(raw[1:], nul=nul))
        elif raw.strip():
            out.append(raw)
    return out


def _candidates(entry: str, glob: str | None, root: Path | None) -> Iterator[tuple[str, str, str | None]]:
    """Yield (absolute path, walk root, problem-or-None) for one input entry."""
    if _PROTOCOL.match(entry) and not os.path.lexists(entry):
        yield entry, "", "protocol or URL inputs are not accepted; give a local file path"
        return
    path = os.path.abspath(entry)
    if root is not None and not _inside(os.path.realpath(path), os.path.realpath(root)):
        yield path, "", f"outside the input root {display_path(str(root))}"
        return
    if not os.path.lexists(path):
        yield path, "", "no such file or directory"
    elif os.path.isdir(path) and not os.path.islink(path.rstrip("/")):
        yield from _walk(path, glob)
    elif os.path.isdir(path):
        yield from _walk(os.path.realpath(path), glob)
    else:
        yield path, os.path.dirname(path), _file_problem(path)


def _walk(top: str, glob: str | None) -> Iterator[tuple[str, str, str | None]]:
    """Recurse a directory without following directory links; yield video-looking files."""
    real_top = os.path.realpath(top)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False, onerror=_log_walk_error):
        dirnames.sort()
        if _is_shard_dir(dirpath, filenames):
            dirnames[:] = []
            yield dirpath, top, None
            continue
        for name in sorted(filenames):
            if not _wanted(name, glob):
                continue
            path = os.path.join(dirpath, name)
            problem = _file_problem(path)
            if problem is None and not _inside(os.path.realpath(path), real_top):
                problem = "symlink points outside the input directory"
            yield path, top, problem


def _is_shard_dir(dirpath: str, filenames: list[str]) -> bool:
    return "manifest.json" in filenames and any(f.startswith("shard-") and f.endswith(".h5") for f in filenames)


def _log_walk_error(err: OSError) -> None:
    log.warning("cannot list %s: %s", display_path(str(err.filename)), err.strerror)


def _wanted(name: str, glob: str | None) -> bool:
    if glob:
        return fnmatch.fnmatch(name, glob)
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS or name.endswith(".h5")


def _file_problem(path: str) -> str | None:
    """None for a readable regular file (symlinks followed), else the reason it is refused."""
    try:
        st = os.stat(path)
    except OSError as err:
        return f"cannot stat: {err.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (FIFO, device or socket)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _common_root(roots: list[str]) -> str:
    return os.path.commonpath(roots) if roots else os.getcwd()


def _video_id(path: str, root: str) -> str:
    """Path relative to the root, '/'-separated; non-UTF-8 bytes and control characters as ``\\xNN`` escapes
    (an id names output files and log lines, so it holds no newline, tab or NUL: see `safepath.id_problem`)."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    text = display_path(rel.replace(os.sep, "/"))
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def partition(videos: list[InputItem], videos_per_shard: int) -> list[WorkUnit]:
    """Cut the sorted video list into consecutive work units of ``videos_per_shard`` videos."""
    if videos_per_shard < 1:
        raise UsageError("--videos-per-shard must be >= 1")
    return [
        WorkUnit(k, tuple(videos[i : i + videos_per_shard]))
        for k, i in enumerate(range(0, len(videos), videos_per_shard))
    ]


def select_units(units: list[WorkUnit], shard_index: int, num_shards: int) -> list[WorkUnit]:
    """Array jobs: task ``shard_index`` of ``num_shards`` takes units K, K+N, K+2N, ..."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise UsageError(f"--shard-index must be in [0, {num_shards}) and --num-shards >= 1")
    return [u for u in units if u.index % num_shards == shard_index]
