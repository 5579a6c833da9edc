"""Read a small file named on the command line (pipeline TOML, ``@list``, labels CSV, text labels) whole.

Such a file may be a pipe on purpose (``vidprep split @<(find ...)``, ``--labels <(...)``), so pipes, FIFOs and
character devices are read like regular files. What must never happen is a hang or an endless read: the file is
opened non-blocking, so a FIFO that nobody writes to reads as empty (the caller's "no entries" error) instead of
blocking the open forever; directories and sockets are refused; reading stops with an error past `MAX_BYTES`
(``/dev/zero`` never ends). Text is UTF-8 with or without the byte-order mark spreadsheet programs put first.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat

#: Largest file read: far above any real list (a million 200-byte paths is 200 MB), far below what would hurt.
MAX_BYTES = 512 * 2**20
_BLOCK = 1 << 20


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``.

    Raises:
        FileNotFoundError: no such file.
        OSError: anything else, with ``strerror`` saying what (a directory, a socket, too large, unreadable).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise OSError(errno.EINVAL, "not a regular file, pipe or character device")
        os.set_blocking(fd, True)  # a pipe with a writer is read to its end; one without reads as empty
        chunks, total = [], 0
        while chunk := os.read(fd, _BLOCK):
            total += len(chunk)
            if total > MAX_BYTES:
                raise OSError(errno.EFBIG, f"larger than {MAX_BYTES // 2**20} MiB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped); UnicodeDecodeError, or `read_bytes`' errors."""
    return read_bytes(path).decode("utf-8-sig")


def without_bom(data: bytes) -> bytes:
    """``data`` without a leading UTF-8 byte-order mark (for byte-level readers such as path lists)."""
    return data.removeprefix(codecs.BOM_UTF8)
