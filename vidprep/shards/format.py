"""The `vidprep-shard` v1 layout (DESIGN §4, docs/format.md): names, dtypes, naming rules and `validate()`.

Everything that says what a shard looks like lives here, so the writer, the reader and the checks agree. A change
to the layout bumps FORMAT_VERSION.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from vidprep.errors import ShardError
from vidprep.shards.safepath import id_problem
from vidprep.shards.atomic import TEMP_RE, parse_temp_name, safe_host, temp_name  # noqa: F401 - one temp scheme

log = logging.getLogger("vidprep.shards.format")

FORMAT = "vidprep-shard"
FORMAT_VERSION = 1
KINDS = ("frames", "features")
FRAME_CODECS = ("raw", "jpeg")
FEATURE_DTYPES = ("float32", "float16", "uint8")

ROOT_ATTRS = ("format", "format_version", "vidprep_version", "created_utc", "kind")
META_CONFIG = "meta/config_json"
META_CLASSES = "meta/class_names"

STR = h5py.string_dtype("utf-8")
JPEG_DTYPE = h5py.vlen_dtype(np.dtype("uint8"))

#: /videos/<name>: dtype ("str" = vlen utf-8). clip_offset has V+1 rows, the others V.
VIDEO_FIELDS: dict[str, str] = {
    "id": "str", "source": "str", "duration_s": "float64", "fps": "float64", "width": "int32",
    "height": "int32", "rotation": "int32", "sar": "float64", "codec": "str",
}
VIDEO_DEFAULTS: dict[str, float | int | str] = {
    "duration_s": np.nan, "fps": np.nan, "width": 0, "height": 0, "rotation": 0, "sar": 1.0, "codec": "",
}
#: /clips/<name>: dtype; every column has N rows. features is separate (shape depends on the model).
CLIP_FIELDS: dict[str, str] = {
    "video_index": "int32", "frame_start": "int64", "frame_stop": "int64", "clip_index": "int32",
    "aug_index": "int16", "start_s": "float64", "end_s": "float64", "label": "int64", "padded": "int32",
    "aug_params": "str",
}
#: /frames/<v>/<name> datasets with a fixed meaning; any other name there is a per-video extra array.
FRAME_RESERVED = ("rgb", "jpeg", "pts_s", "index")

#: Sane limits checked before columns are read (docs/format.md, "Shards are untrusted input"): more is refused.
MAX_VIDEOS = 1_000_000
MAX_ROWS = 1_000_000_000  # clips of a shard, frames of a video
MAX_FRAME_PIXELS = 8192 * 8192
MAX_FEATURE_VALUES = 2**24  # per clip row: T*D

SHARD_RE = re.compile(r"^shard-(\d{5,})\.h5$")


def shard_name(k: int) -> str:
    """File name of shard ``k``: ``shard-00000.h5`` (zero-padded so names sort like numbers)."""
    if k < 0:
        raise ValueError(f"shard number must be >= 0, got {k}")
    return f"shard-{k:05d}.h5"


def find_shards(path_or_paths: str | Path | Iterable[str | Path], *,
                refused: list[Path] | None = None) -> list[Path]:
    """Shard files named by a directory (its ``shard-*.h5``, sorted), a file, or a list of either.

    A directory's shard that is a symlink resolving outside that directory is never returned (reading it would
    read outside the output directory, as the stage inputs' directory walk also refuses): it raises ShardError,
    or with ``refused`` given is appended there and skipped.
    """
    items = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    found: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            # every entry named like a shard but a directory: a FIFO, device or dangling link is returned too, so
            # opening it (`trust.open_shard`) refuses it with one line instead of it vanishing from the listing
            shards = [c for c in p.iterdir() if SHARD_RE.match(c.name) and not c.is_dir() and _kept(c, p, refused)]
            found.extend(sorted(shards, key=lambda c: int(SHARD_RE.match(c.name)[1])))  # type: ignore[index]
        elif p.is_file():
            found.append(p)
        else:
            raise ShardError("no such shard file or directory", path=str(p))
    return found


SYMLINK_OUTSIDE = "symlink points outside the output directory; refused (not read)"


def _kept(shard: Path, directory: Path, refused: list[Path] | None) -> bool:
    """False (appended to ``refused``, else raised) for a symlinked shard whose target is outside ``directory``."""
    if not shard.is_symlink() or shard.resolve().is_relative_to(directory.resolve()):
        return True
    if refused is None:
        raise ShardError(SYMLINK_OUTSIDE, path=str(shard))
    refused.append(shard)
    return False


def read_json_attr(f: h5py.File, name: str, default: Any = None) -> Any:
    """Parse a scalar JSON string dataset such as /meta/config_json; ``default`` when absent."""
    if name not in f:
        return default
    return json.loads(f[name].asstr()[()] or "null")


def validate(path: str | Path) -> list[str]:
    """Check one shard against the v1 layout; one human-readable problem per item (empty list = valid).

    The file is untrusted: `trust.check_file` first refuses links, external storage, virtual datasets and claims
    beyond the stored bytes without reading any data, so a crafted file cannot make this read another file.
    """
    from vidprep.shards import trust

    problems = trust.check_file(path)
    if problems:
        return problems
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        return [f"cannot open as HDF5: {err}"]
    with f:
        problems = layout_problems(f)
    log.debug("validated %s: %d problem(s)", path, len(problems))
    return problems


def layout_problems(f: h5py.File) -> list[str]:
    """Layout problems of an open shard that `trust.check_file` accepted; counts are bounded before any read."""
    problems = root_problems(f)
    if problems:
        return problems
    try:
        problems += _check_meta(f) + _check_videos(f) + _check_clips(f)
        if not problems:
            problems += _check_offsets(f)
        if not problems:
            problems += _check_clip_values(f) + _check_frames(f) + _check_features(f)
    except Exception as err:  # noqa: BLE001 - whatever a crafted file makes h5py or numpy raise is a problem
        problems.append(f"unreadable content: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
    return problems


def root_problems(f: h5py.File) -> list[str]:
    """Root attributes and top-level groups (cheap: reads no dataset)."""
    try:
        return _check_root(f)
    except Exception as err:  # noqa: BLE001 - e.g. an attribute of an unexpected type
        return [f"unreadable root attributes: {type(err).__name__}: {' '.join(str(err).split())[:300]}"]


def _check_root(f: h5py.File) -> list[str]:
    value = f.attrs.get("format")
    if not (isinstance(value, str) and value == FORMAT):  # e.g. model weights or someone else's HDF5 data
        shown = "missing" if value is None else repr(value)[:80]
        return [f"not a vidprep shard: root attribute format is {shown}, expected {FORMAT!r}"]
    missing = [a for a in ROOT_ATTRS if a not in f.attrs]
    if missing:
        return [f"missing root attribute(s): {', '.join(missing)}"]
    out = []
    version = int(f.attrs["format_version"])
    if version > FORMAT_VERSION:
        out.append(f"format_version {version} is newer than this vidprep reads ({FORMAT_VERSION}); upgrade vidprep")
    elif version != FORMAT_VERSION:
        out.append(f"format_version {version} is not supported (expected {FORMAT_VERSION})")
    if f.attrs["kind"] not in KINDS:
        out.append(f"kind is {f.attrs['kind']!r}, expected one of {KINDS}")
    for group in ("meta", "videos", "clips", "frames"):
        if not isinstance(f.get(group), h5py.Group):
            out.append(f"missing group /{group}")
    return out


def _check_meta(f: h5py.File) -> list[str]:
    out = []
    for name, want in ((META_CONFIG, dict), (META_CLASSES, list)):
        try:
            value = read_json_attr(f, name, default=KeyError)
        except (ValueError, TypeError) as err:
            out.append(f"/{name} is not valid JSON: {err}")
            continue
        if value is KeyError:
            out.append(f"missing /{name}")
        elif not isinstance(value, want):
            out.append(f"/{name} must hold a JSON {want.__name__}")
    return out


def _check_columns(group: h5py.Group, fields: dict[str, str], length: int, where: str) -> list[str]:
    out = []
    for name, dtype in fields.items():
        ds = group.get(name)
        if not isinstance(ds, h5py.Dataset):
            out.append(f"missing dataset /{where}/{name}")
            continue
        if ds.shape != (length,):
            out.append(f"/{where}/{name} has shape {ds.shape}, expected ({length},)")
        is_str = h5py.check_string_dtype(ds.dtype) is not None
        if (dtype == "str") != is_str or (not is_str and ds.dtype != np.dtype(dtype)):
            out.append(f"/{where}/{name} has dtype {ds.dtype}, expected {dtype}")
    return out


def _check_videos(f: h5py.File) -> list[str]:
    videos = f["videos"]
    if "id" not in videos or "clip_offset" not in videos:
        return ["missing dataset /videos/id or /videos/clip_offset"]
    n_videos = _rows(videos["id"])
    if n_videos > MAX_VIDEOS:
        return [f"/videos/id claims {n_videos} videos (at most {MAX_VIDEOS} per shard)"]
    out = _check_columns(videos, VIDEO_FIELDS, n_videos, "videos")
    if out:
        return out
    off = videos["clip_offset"]
    if off.shape != (n_videos + 1,) or off.dtype != np.int64:
        return out + [f"/videos/clip_offset has shape {off.shape} dtype {off.dtype}, expected ({n_videos + 1},) int64"]
    ids = videos["id"].asstr()[:]
    if len(set(ids)) != len(ids):
        out.append("/videos/id holds duplicate video ids")
    unsafe = [(vid, p) for vid in ids if (p := id_problem(vid)) is not None]
    out += [f"/videos/id {vid!r} is unsafe: {p}" for vid, p in unsafe[:3]]
    return out


def _check_clips(f: h5py.File) -> list[str]:
    from vidprep.shards.clip_extras import problems as extras_problems

    if "video_index" not in f["clips"]:
        return ["missing dataset /clips/video_index"]
    n = _rows(f["clips/video_index"])
    if n > MAX_ROWS:
        return [f"/clips/video_index claims {n} clips (at most {MAX_ROWS} per shard)"]
    return _check_columns(f["clips"], CLIP_FIELDS, n, "clips") + extras_problems(f["clips"], n)


def _check_offsets(f: h5py.File) -> list[str]:
    n = f["clips/video_index"].shape[0]
    off = f["videos/clip_offset"][:]
    if off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 0):
        return [f"/videos/clip_offset must rise monotonically from 0 to N={n}, got {_short(off)}"]
    expect = np.repeat(np.arange(len(off) - 1, dtype=np.int32), np.diff(off))
    if not np.array_equal(f["clips/video_index"][:], expect):
        return ["/clips/video_index does not match /videos/clip_offset (clips must be sorted by video)"]
    return []


def _check_clip_values(f: h5py.File) -> list[str]:
    c = f["clips"]
    out = []
    start, stop = c["frame_start"][:], c["frame_stop"][:]
    if np.any(start < 0) or np.any(stop <= start):
        out.append("clip frame ranges must satisfy 0 <= frame_start < frame_stop")
    if np.any(c["end_s"][:] < c["start_s"][:]):
        out.append("clip end_s must be >= start_s")
    if np.any(c["padded"][:] < 0) or np.any(c["aug_index"][:] < 0):
        out.append("/clips/padded and /clips/aug_index must be >= 0")
    labels = c["label"][:]
    classes = read_json_attr(f, META_CLASSES, default=[]) or []
    if np.any(labels < -1) or (classes and np.any(labels >= len(classes))):
        out.append(f"/clips/label must be -1 or in [0, {len(classes)}) (the number of class names)")
    return out


def _check_frames(f: h5py.File) -> list[str]:
    n_videos = f["videos/id"].shape[0]
    frames = f["frames"]
    names = set(frames.keys())
    expect = {str(v) for v in range(n_videos)}
    if names != expect:
        return [f"/frames groups are {_short(sorted(names))}, expected 0..{n_videos - 1}"]
    off = f["videos/clip_offset"][:]
    stops = f["clips/frame_stop"][:]
    kind = str(f.attrs["kind"])
    out = []
    for v in range(n_videos):
        n_frames, problems = _check_frame_group(frames[str(v)], kind, f"/frames/{v}")
        out += problems
        if n_frames is not None and off[v + 1] > off[v] and stops[off[v]:off[v + 1]].max() > n_frames:
            out.append(f"clips of video {v} point past its {n_frames} frames")
    return out


def _check_frame_group(g: h5py.Group, kind: str, where: str) -> tuple[int | None, list[str]]:
    if not isinstance(g, h5py.Group):
        return None, [f"{where} is not a group"]
    ds = {name: g[name] for name in g}  # each member opened once (this loop runs per video)
    odd = next((name for name, obj in ds.items() if not isinstance(obj, h5py.Dataset)), None)
    if odd is not None:
        return None, [f"{where}/{odd} is not a dataset (a video's group holds datasets only)"]
    if "pts_s" not in ds or "index" not in ds:
        return None, [f"{where} lacks pts_s or index"]
    pts, index = ds["pts_s"], ds["index"]
    n = _rows(pts)
    if n > MAX_ROWS:
        return None, [f"{where}/pts_s claims {n} frames (at most {MAX_ROWS})"]
    out = []
    if pts.ndim != 1 or pts.dtype != np.float64 or index.dtype != np.int64 or index.shape != (n,):
        out.append(f"{where}/pts_s must be (F,) float64 and index (F,) int64")
    if "rgb" in ds:
        rgb = ds["rgb"]
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[0] != n or rgb.shape[3] != 3:
            out.append(f"{where}/rgb has shape {rgb.shape} dtype {rgb.dtype}, expected ({n},H,W,3) uint8")
        elif rgb.shape[1] * rgb.shape[2] > MAX_FRAME_PIXELS:
            out.append(f"{where}/rgb claims {rgb.shape[2]}x{rgb.shape[1]} frames (at most {MAX_FRAME_PIXELS} pixels)")
    elif "jpeg" in ds:
        if ds["jpeg"].shape != (n,) or h5py.check_vlen_dtype(ds["jpeg"].dtype) != np.uint8:
            out.append(f"{where}/jpeg must be ({n},) vlen uint8")
    elif kind == "frames":
        out.append(f"{where} has neither rgb nor jpeg (required in a frames shard)")
    return n, out


def _check_features(f: h5py.File) -> list[str]:
    n = f["clips/video_index"].shape[0]
    ds = f["clips"].get("features")
    if ds is None:
        return ["missing /clips/features (required in a features shard)"] if f.attrs["kind"] == "features" else []
    out = []
    if ds.ndim not in (2, 3) or ds.shape[0] != n:
        out.append(f"/clips/features has shape {ds.shape}, expected ({n},D) or ({n},T,D)")
    elif int(np.prod(ds.shape[1:])) > MAX_FEATURE_VALUES:
        out.append(f"/clips/features claims {ds.shape[1:]} values per clip (at most {MAX_FEATURE_VALUES})")
    if ds.dtype.name not in FEATURE_DTYPES:
        out.append(f"/clips/features has dtype {ds.dtype}, expected one of {FEATURE_DTYPES}")
    return out


def _rows(ds: h5py.Dataset) -> int:
    """Length of a 1-D column; a dataset of another rank gets -1 so the shape checks report it."""
    return int(ds.shape[0]) if ds.shape is not None and len(ds.shape) == 1 else -1


def _short(values: object, limit: int = 8) -> str:
    items = list(np.asarray(values).tolist()) if not isinstance(values, list) else values
    text = ", ".join(str(x) for x in items[:limit])
    return f"[{text}{', ...' if len(items) > limit else ''}]"
