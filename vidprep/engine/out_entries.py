"""An output directory that is resumed or overwritten is checked for entries vidprep could not have made.

vidprep publishes every file of OUT by rename and never makes a link, FIFO or device there. A directory handed to
a resumed run may have been crafted, though, and an entry under one of vidprep's own names that is not a plain
file would make the run reach outside OUT or hang: ``errors.jsonl`` linked to ``~/.bashrc`` gets error records
appended to it, ``shard-00000.h5`` linked elsewhere is read back as a finished unit, a FIFO under a shard's name
blocks the first read, and ``.parts`` linked to another directory has that directory's files deleted by
``--overwrite``. `check` refuses such a directory with one line (exit 2) before anything in it is read or
written; the readers behind it (`vidprep.shards.trust`, `manifest.read_own_text`, O_NOFOLLOW opens) check again.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from vidprep.engine.sinks.files import PARTS_DIR
from vidprep.errors import UsageError

_OWN_FILES = re.compile(r"^(manifest\.json|errors\.jsonl|normalization\.h5|\.manifest\.lock|index\.jsonl"
                        r"|index\.parquet|metadata\.jsonl|shard-\d+\.(h5|tar))$")
_OWN_PARTS = re.compile(r"^shard-\d+\.jsonl$")
SHOWN = 3


def problems(out: Path) -> list[str]:
    """One line per entry under vidprep's own names in ``out`` (and its index parts) that is not what it writes."""
    found = [_problem(out / name, want_dir=False) for name in _names(out) if _OWN_FILES.match(name)]
    parts = out / PARTS_DIR
    found.append(_problem(parts, want_dir=True) if os.path.lexists(parts) else None)
    if not any(found) and parts.is_dir():
        found += [_problem(parts / name, want_dir=False) for name in _names(parts) if _OWN_PARTS.match(name)]
    return [p for p in found if p]


def check(out: Path) -> None:
    """Raise UsageError naming the first entries `problems` finds (nothing has been read or written through them)."""
    found = problems(out)
    if found:
        more = f" (and {len(found) - SHOWN} more)" if len(found) > SHOWN else ""
        raise UsageError(f"output directory holds entries vidprep never writes: {'; '.join(found[:SHOWN])}{more}. "
                         "Remove them (their units are made again) or use a new output directory", path=str(out))


def _names(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _problem(path: Path, *, want_dir: bool) -> str | None:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return f"{path.name} is a symlink"
    if want_dir and not stat.S_ISDIR(mode):
        return f"{path.name} is not a directory"
    if not want_dir and not stat.S_ISREG(mode):
        return f"{path.name} is not a regular file (directory, FIFO or device)"
    return None
