"""Video ids are untrusted text that becomes file names: check them, and keep every derived path inside OUT.

A video id comes from an input's path relative to its root, or from ``/videos/id`` of an input shard, which anyone
can write. The file sink turns it into ``OUT/<id>/...``, so an id like ``../../x`` or ``/etc/x`` would write
outside OUT. `id_problem` is the rule (DESIGN: nothing outside OUT is written); `output_path` is the last check
before a write, which also catches symlinks inside OUT that point elsewhere.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any
from pathlib import Path

from vidprep.errors import InputError

#: Longest id accepted (bytes of UTF-8); Linux allows 4096 for a whole path, OUT's own path needs some of it.
MAX_ID_BYTES = 2048


def id_problem(video_id: Any) -> str | None:
    """Why ``video_id`` cannot name files under OUT, or None when it is safe.

    Safe means: a non-empty relative path of '/'-separated components, none empty, ``.`` or ``..``; no NUL, no
    other control characters, no lone surrogates; at most MAX_ID_BYTES. A backslash is an ordinary character on
    POSIX (vidprep writes non-UTF-8 bytes of a file name as ``\\xff`` escapes), but a ``..`` component between
    backslashes is refused too, so an id cannot climb out where ``\\`` is a separator.
    """
    if not isinstance(video_id, str) or not video_id:
        return "empty or not text"
    if len(video_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes"
    bad = next((c for c in video_id if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        return f"contains the control or surrogate character {bad!r}"
    if video_id.startswith(("/", "\\")):
        return "is an absolute path"
    parts = video_id.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' path component"
    return None


def check_id(video_id: Any) -> str:
    """``video_id`` itself when safe; else InputError naming it and the reason."""
    problem = id_problem(video_id)
    if problem is not None:
        raise InputError(f"unsafe video id {video_id!r}: {problem}; refusing to write files for it")
    return video_id  # type: ignore[return-value]


def output_path(out_dir: str | os.PathLike, *parts: str) -> Path:
    """``out_dir/parts...`` after checking it resolves inside ``out_dir`` (symlinks followed); else InputError."""
    root = os.path.realpath(out_dir)
    target = Path(out_dir).joinpath(*parts)
    real = os.path.realpath(target)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise InputError(f"refusing to write {os.fsdecode(target)!r}: it resolves outside the output directory")
    return target
