"""TEST-ONLY fault injection: a full disk or a read-only output directory, where a test cannot mount one.

Inert unless its environment variables are set; they are read once, at import, and nothing in normal use sets
them. tests/test_hostile.py uses them in CI containers that can neither mount a tmpfs (unprivileged) nor rely on
permission bits (root writes through them). The real code paths run: the injected error is raised exactly where
the operating system's would be.

- ``VIDPREP_TEST_FAIL_WRITE_AFTER=<bytes>``: once this process has written that many bytes of temp shard data,
  every further write fails with ENOSPC, as on a full disk (:class:`vidprep.shards.storage.DiscardableFile`).
- ``VIDPREP_TEST_READ_ONLY=<dir>``: creating the output directory, or the write test in it, anywhere under
  ``dir`` fails with EROFS, as on a read-only mount (:func:`vidprep.engine.driver.prepare_output`).
"""

from __future__ import annotations

import errno
import os

FAIL_WRITE_AFTER = "VIDPREP_TEST_FAIL_WRITE_AFTER"
READ_ONLY = "VIDPREP_TEST_READ_ONLY"

_write_budget: int | None = int(os.environ[FAIL_WRITE_AFTER]) if os.environ.get(FAIL_WRITE_AFTER) else None
_read_only: str | None = os.path.abspath(os.environ[READ_ONLY]) if os.environ.get(READ_ONLY) else None


def before_shard_write(nbytes: int) -> None:
    """ENOSPC when ``nbytes`` more would exceed the injected budget (and for every write after that)."""
    global _write_budget
    if _write_budget is None:
        return
    if nbytes > _write_budget:
        _write_budget = 0
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _write_budget -= nbytes


def before_output_write(path: str | os.PathLike) -> None:
    """EROFS when ``path`` lies under the directory injected as read-only."""
    if _read_only is None:
        return
    where = os.path.abspath(path)
    if where == _read_only or where.startswith(_read_only.rstrip(os.sep) + os.sep):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
