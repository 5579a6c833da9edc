"""Keep freed large blocks in the C heap for reuse, instead of giving them back to the kernel after every batch.

glibc's malloc serves each block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns it
with ``munmap`` when freed, and a thread's own arena (64 MiB heaps) maps anything larger afresh. A model forward on
a CPU allocates activations of tens of MiB per layer for every batch, so every batch page-faults them in again and
the kernel zeroes every page: system time the model never needed. Measured on a 2-core AMD EPYC, resnet18 fp32 as
vidprep runs it (two streams of 16 frames): 414k minor faults for 320 frames, 0.98 s of system time, 86.6
frames/s; with freed blocks kept: 6k faults, 0.06 s, 107 frames/s. End to end, ``features --every 1`` on 480p
60 s: 29.8 s -> 27.2 s (fp32), 19.9 s -> 18.0 s (bf16); r2plus1d_18 clips 2-3 % faster; peak RSS within +-6 %.

So vidprep's own processes ask glibc (``mallopt``) for: no mmap for malloc blocks (they come from the heap),
freed memory kept unless over 1 GiB of it sits at the top of the heap, and one arena that every thread started
afterwards shares (a thread's own arena would map large blocks afresh anyway). The cost is that freed memory stays
with the process: the batches of one work unit reuse it, and between units (`release_freed`, after each unit) the
free pages go back to the kernel once more than 256 MiB of them have piled up (``malloc_trim``: 24-27 ms and about
300 MiB given back after resnet18 batches; the next unit faults its pages in once), so a long run holds what its
current unit needs rather than the most any unit ever needed.
Applied only in processes vidprep owns, before their threads start: the CLI, each process-executor worker and
each Ray task's worker (threads Ray started earlier keep their own arenas). A program that uses vidprep as a library
keeps its allocator as it is — these settings are process-wide, and one shared arena could slow its own threads —
unless it calls `keep_freed_blocks` itself. Elsewhere than glibc: nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("vidprep.host_heap")

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

TRIM_THRESHOLD = 1 << 30
"""Freed memory at the top of the heap past which glibc gives it back (bytes)."""

RELEASE_ABOVE = 256 << 20
"""Free heap bytes past which `release_freed` gives them back to the kernel."""

_applied: bool | None = None
_libc: ctypes.CDLL | None = None


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): byte counts of the heap."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def keep_freed_blocks() -> bool:
    """Apply the policy above once per process; True when glibc took every setting (False elsewhere)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def release_freed() -> bool:
    """Give free heap pages back to the kernel when the policy is on and more than :data:`RELEASE_ABOVE` bytes are
    free (called between work units); True when it did."""
    if not _applied or _libc is None:
        return False
    try:
        info = _libc.mallinfo2
    except AttributeError:  # glibc < 2.33: trim unconditionally
        return bool(_libc.malloc_trim(0))
    info.restype = _MallInfo2
    if info().fordblks <= RELEASE_ABOVE:
        return False
    _libc.malloc_trim(0)
    return True


def _apply() -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _libc = libc
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, 1))
    taken = all([mallopt(param, value) == 1 for param, value in settings])  # every one tried
    log.debug("freed heap blocks kept for reuse: %s", taken)
    return taken
