"""Crafted shards for the shard-input trust tests (issue 11): copies of a GOOD shard tampered with h5py.

``craft_all(good, bad_dir, outside)`` copies ``good`` (a real `vidprep split` output) once per attack and changes one
thing in each copy: an id that climbs out of OUT or is absolute or holds control characters; pixels that HDF5
would read from another file (external storage, a virtual dataset, an external link) or through a soft link;
absurd claimed shapes and counts (nothing stored behind them); a wrong dtype; clips pointing past their frames; a
hard link that makes a cycle; a root attribute of the wrong type; a truncated file; and an HDF5 file that is not
a shard at all.

Every "other file" lives in ``outside``: ``canary.bin`` (raw bytes) and ``canary.h5`` (a dataset of those bytes),
filled with CANARY, a 64-byte pattern that must never show up in any output. `make_fifo_canaries` builds the same
attacks against a FIFO instead: opening it blocks, so a run that tried to read it would hang (and fail on timeout).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

CANARY = bytes(range(0xC0, 0x100)) + bytes(range(0x20, 0x40))  # 64 bytes, no repeat: unmistakable in any output
RGB = "frames/0/rgb"


@dataclass(frozen=True)
class Crafted:
    """One crafted input: where it is and words (any, case-insensitive) its error message must contain."""

    path: Path
    needles: tuple[str, ...]


def canary_bytes(n: int) -> bytes:
    """``n`` bytes of the repeated canary pattern."""
    return (CANARY * (n // len(CANARY) + 1))[:n]


def make_canaries(outside: Path, shape: tuple[int, ...]) -> tuple[Path, Path]:
    """canary.bin and canary.h5 (dataset /rgb of ``shape`` uint8) filled with the pattern."""
    outside.mkdir(parents=True, exist_ok=True)
    n = int(np.prod(shape))
    raw = outside / "canary.bin"
    raw.write_bytes(canary_bytes(n))
    h5 = outside / "canary.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("rgb", data=np.frombuffer(canary_bytes(n), np.uint8).reshape(shape))
    return raw, h5


def _replace_rgb(f: h5py.File, make: Callable[[h5py.Group, tuple, np.dtype], None]) -> None:
    shape, dtype = f[RGB].shape, f[RGB].dtype
    del f[RGB]
    make(f["frames/0"], shape, dtype)


def external_storage(target: Path) -> Callable[[h5py.File], None]:
    """/frames/0/rgb stores its bytes in ``target``."""
    def tamper(f: h5py.File) -> None:
        _replace_rgb(f, lambda g, shape, dt: g.create_dataset(
            "rgb", shape=shape, dtype=dt, external=[(str(target), 0, int(np.prod(shape)))]))
    return tamper


def virtual_dataset(source: Path) -> Callable[[h5py.File], None]:
    """/frames/0/rgb is a virtual dataset mapping ``source``:/rgb (unlimited, so HDF5 opens it to size it)."""
    def tamper(f: h5py.File) -> None:
        def make(g: h5py.Group, shape: tuple, dt: np.dtype) -> None:
            layout = h5py.VirtualLayout(shape=shape, maxshape=(None, *shape[1:]), dtype=dt)
            src = h5py.VirtualSource(str(source), "rgb", shape=shape, maxshape=(None, *shape[1:]))
            layout[0:h5py.h5s.UNLIMITED] = src[0:h5py.h5s.UNLIMITED]
            g.create_virtual_dataset("rgb", layout)
        _replace_rgb(f, make)
    return tamper


def external_link(source: Path) -> Callable[[h5py.File], None]:
    def tamper(f: h5py.File) -> None:
        del f[RGB]
        f[RGB] = h5py.ExternalLink(str(source), "/rgb")
    return tamper


def soft_link(f: h5py.File) -> None:
    f.move(RGB, "/hidden_rgb")
    f[RGB] = h5py.SoftLink("/hidden_rgb")


def set_id(video_id: str) -> Callable[[h5py.File], None]:
    def tamper(f: h5py.File) -> None:
        f["videos/id"][0] = video_id
    return tamper


def huge_frame(f: h5py.File) -> None:
    """Two frames of 1e6 x 1e6 pixels claimed, nothing stored (reading one would need 3 TB)."""
    _replace_rgb(f, lambda g, shape, dt: g.create_dataset(
        "rgb", shape=(shape[0], 10**6, 10**6, 3), dtype=np.uint8, chunks=(1, 64, 64, 3)))


def huge_count(f: h5py.File) -> None:
    """/clips/label claims 10^12 rows, nothing stored."""
    del f["clips/label"]
    f["clips"].create_dataset("label", shape=(10**12,), dtype=np.int64, chunks=(4096,))


def wrong_dtype(f: h5py.File) -> None:
    _replace_rgb(f, lambda g, shape, dt: g.create_dataset("rgb", data=np.zeros(shape, np.float32)))


def clips_past_frames(f: h5py.File) -> None:
    f["clips/frame_stop"][0] = 10**9


def hard_link_cycle(f: h5py.File) -> None:
    f["frames/0/loop"] = f["frames"]


def format_not_text(f: h5py.File) -> None:
    """The root attribute format is an array (comparing it to a string must not raise)."""
    f.attrs["format"] = np.array([1, 2])


def copy_with(good: Path, dst: Path, tamper: Callable[[h5py.File], None]) -> Path:
    shutil.copyfile(good, dst)
    with h5py.File(dst, "r+") as f:
        tamper(f)
    return dst


def truncated(good: Path, dst: Path) -> Path:
    data = good.read_bytes()
    dst.write_bytes(data[: len(data) * 6 // 10])
    return dst


def not_a_shard(dst: Path) -> Path:
    """An HDF5 file that is not a vidprep shard (say, model weights)."""
    with h5py.File(dst, "w") as f:
        f.create_dataset("conv1/weight", data=np.random.default_rng(0).normal(size=(8, 3, 3, 3)).astype(np.float32))
        f.attrs["framework"] = "keras"
    return dst


def craft_all(good: Path, bad_dir: Path, outside: Path) -> dict[str, Crafted]:
    """Every crafted shard, by name (file ``bad_dir/<name>.h5``)."""
    bad_dir.mkdir(parents=True, exist_ok=True)
    with h5py.File(good, "r") as f:
        shape = f[RGB].shape
    raw, h5 = make_canaries(outside, shape)
    tampers: dict[str, tuple[Callable[[h5py.File], None], tuple[str, ...]]] = {
        "id_traversal": (set_id("../../../escape-traversal"), ("unsafe", "..")),
        "id_absolute": (set_id(str(outside / "escape-absolute")), ("unsafe", "absolute")),
        "id_control": (set_id("evil\x1b[2J\nname.mp4"), ("unsafe", "control")),
        "external_storage": (external_storage(raw), ("external storage",)),
        "virtual_dataset": (virtual_dataset(h5), ("virtual dataset",)),
        "external_link": (external_link(h5), ("external link",)),
        "soft_link": (soft_link, ("soft link",)),
        "huge_frame": (huge_frame, ("claims",)),
        "huge_count": (huge_count, ("claims",)),
        "wrong_dtype": (wrong_dtype, ("dtype",)),
        "clips_past_frames": (clips_past_frames, ("past",)),
        "hard_link_cycle": (hard_link_cycle, ("not a dataset",)),
        "format_not_text": (format_not_text, ("not a vidprep shard",)),
    }
    out = {name: Crafted(copy_with(good, bad_dir / f"{name}.h5", fn), needles)
           for name, (fn, needles) in tampers.items()}
    out["truncated"] = Crafted(truncated(good, bad_dir / "truncated.h5"), ("hdf5", "truncated", "cannot open"))
    out["not_a_shard"] = Crafted(not_a_shard(bad_dir / "not_a_shard.h5"), ("not a vidprep shard",))
    return out


def make_fifo_canaries(good: Path, bad_dir: Path, outside: Path) -> dict[str, Crafted]:
    """External storage, a virtual dataset and an external link whose target is a FIFO: opening it would block."""
    bad_dir.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    fifo = outside / "canary.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    return {
        "fifo_external_storage": Crafted(copy_with(good, bad_dir / "fifo_external_storage.h5",
                                                   external_storage(fifo)), ("external storage",)),
        "fifo_virtual_dataset": Crafted(copy_with(good, bad_dir / "fifo_virtual_dataset.h5", virtual_dataset(fifo)),
                                        ("virtual dataset",)),
        "fifo_external_link": Crafted(copy_with(good, bad_dir / "fifo_external_link.h5", external_link(fifo)),
                                      ("external link",)),
    }


def tree(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every entry under ``root`` (links not followed), minus ``skip`` dirs."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            found[str(p.relative_to(root))] = (st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return found
