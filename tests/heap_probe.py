"""Minor page faults of touching a large block twice from a new thread (see test_host_heap.py); importable by
process-executor workers."""

from __future__ import annotations

import ctypes
import resource
import threading

BLOCK = 96 << 20
"""Above glibc's 32 MiB mmap threshold and a thread arena's 64 MiB heaps: a size glibc's default maps afresh."""


def fault_rounds() -> list[int]:
    """Minor faults of allocating and filling ``BLOCK`` bytes, then freeing them, twice, on a thread started now."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    faults: list[int] = []

    def rounds() -> None:
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = libc.malloc(BLOCK)  # C malloc itself: numpy would ask for huge pages, changing the counts
            ctypes.memset(block, 1, BLOCK)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            libc.free(block)

    thread = threading.Thread(target=rounds)
    thread.start()
    thread.join()
    return faults


def rss_mib() -> int:
    """This process's resident memory (MiB), from /proc."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) // 1024


def freed_block(size: int) -> None:
    """Allocate ``size`` bytes with C malloc, touch every page, free them (on this thread)."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
