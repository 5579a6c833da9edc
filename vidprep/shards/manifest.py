"""Output-directory bookkeeping: manifest.json and errors.jsonl (temp files: atomic.py and cleanup.py).

Several processes (workers, array-job tasks on one machine) may finish shards into the same directory, so every
manifest update is a read-modify-write under an ``fcntl.flock`` lock file, written to a temp file and renamed.
errors.jsonl is appended with one ``write`` on an O_APPEND descriptor per record, so lines never interleave.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import stat
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import h5py
import numpy as np

from vidprep import __version__
from vidprep.errors import ShardError, UsageError
from vidprep.shards import format as fmt
from vidprep.shards.atomic import NOFOLLOW, atomic_write_text, file_lock, fsync_dir  # noqa: F401 - re-exported (older import sites)
from vidprep.shards.cleanup import cleanup_temp, find_temp  # noqa: F401 - re-exported (public API)

log = logging.getLogger("vidprep.shards.manifest")

MANIFEST_NAME = "manifest.json"
ERRORS_NAME = "errors.jsonl"
LOCK_NAME = ".manifest.lock"
ERROR_FIELDS = ("path", "video_id", "stage", "error_type", "message", "time")
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class ShardSummary:
    """What `commit()` wrote; recorded in manifest.json."""

    path: Path
    kind: str
    videos: int
    clips: int
    frames: int
    bytes: int
    sha256: str
    video_ids: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        """Plain-JSON view, plus ``name`` (the file name: the manifest's key for a shard)."""
        d = asdict(self)
        d["name"] = self.path.name
        d["path"] = str(self.path)
        d["video_ids"] = list(self.video_ids)
        return d


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def versions() -> dict[str, str]:
    """Versions recorded in the manifest (cheap ones only; torch etc. are added by the stage that uses them)."""
    return {"vidprep": __version__, "python": platform.python_version(), "h5py": h5py.version.version,
            "hdf5": h5py.version.hdf5_version, "numpy": np.__version__}


def config_fingerprint(config: dict | None) -> str | None:
    """sha256 of the canonical JSON of a config: equal configs give equal fingerprints."""
    if config is None:
        return None
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def empty_manifest(config: dict | None = None) -> dict[str, Any]:
    """A manifest with no shards."""
    return {"format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "versions": versions(),
            "config": config, "config_fingerprint": config_fingerprint(config), "shards": [],
            "failed_inputs": 0, "updated_utc": _utc_now()}


def read_own_text(path: Path, errors: str = "strict") -> str:
    """The text of a file vidprep writes in an output directory (manifest.json, errors.jsonl).

    An output directory given to `vidprep shards verify` or resumed into may have been crafted: the file must be a
    regular file, not a symlink (vidprep publishes them by rename, never as links), so nothing outside the
    directory is read, and a FIFO named like one never blocks the run. FileNotFoundError when it is absent;
    ShardError naming the file when it is refused.
    """
    with _open_own(path) as fh:
        return fh.read().decode("utf-8", errors)


def _open_own(path: Path) -> BinaryIO:
    """``path`` opened for reading when it is a regular file itself (not a link, FIFO, device or directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        reason = "a symlink" if Path(path).is_symlink() else err.strerror
        raise ShardError(f"cannot read ({reason}); refused", path=str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ShardError("not a regular file (FIFO, device or directory); refused", path=str(path))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def load(out_dir: str | Path) -> dict[str, Any]:
    """The directory's manifest, or an empty one when there is none yet."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        return json.loads(read_own_text(path))
    except FileNotFoundError:
        return empty_manifest()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShardError(f"manifest is not valid JSON: {err}", path=str(path)) from None


@contextlib.contextmanager
def locked(out_dir: str | Path) -> Iterator[None]:
    """Hold the directory's exclusive manifest lock."""
    with file_lock(Path(out_dir) / LOCK_NAME):
        yield


def record_shard(out_dir: str | Path, summary: Any, *, config: dict | None = None,
                 inputs: list[str | None] | None = None) -> dict[str, Any]:
    """Add or replace one shard entry (a ShardSummary or its dict) and refresh failed_inputs; returns the manifest.

    ``inputs``: every video id of the shard's work unit, failed ones included (kept as ``input_ids``, so a resume
    can tell that the unit's inputs changed without opening the shard).
    """
    entry = _entry({**(summary.to_dict() if hasattr(summary, "to_dict") else dict(summary)),
                    **({"input_ids": inputs} if inputs is not None else {})})
    update = empty_manifest(config)
    update["shards"] = [entry]
    return merge_into(out_dir, update)


def merge_into(out_dir: str | Path, other: dict[str, Any]) -> dict[str, Any]:
    """Merge ``other`` into the directory's manifest under the lock; failed_inputs is recomputed from errors.jsonl."""
    with locked(out_dir):
        merged = merge(load(out_dir), other)
        _save(out_dir, merged)
    return merged


def _save(out_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Refresh failed_inputs and write the manifest atomically; the caller holds the lock."""
    manifest["failed_inputs"] = len(read_errors(out_dir, succeeded=_video_ids(manifest)))
    atomic_write_text(Path(out_dir) / MANIFEST_NAME, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def _video_ids(manifest: dict[str, Any]) -> set[str]:
    return {vid for s in manifest.get("shards", []) for vid in s.get("video_ids", [])}


def merge(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Union of two manifests' shards by name (``other`` wins a name); configs must agree when both are set.

    Array-job tasks write disjoint shards, so their manifests merge into one listing all. failed_inputs is summed
    (right for manifests of different directories; `merge_into` recomputes it for a shared directory).
    """
    fa, fb = base.get("config_fingerprint"), other.get("config_fingerprint")
    if fa and fb and fa != fb:
        raise UsageError("manifests were written with different configs; use a new output directory or --overwrite")
    shards = {s["name"]: s for s in base.get("shards", [])}
    for s in other.get("shards", []):
        old = shards.get(s["name"])
        if old and old.get("sha256") != s.get("sha256"):
            log.debug("manifest entry for %s replaced (shard rewritten)", s["name"])
        if old and "input_ids" in old and "input_ids" not in s and old.get("video_ids") == s.get("video_ids"):
            s = {**s, "input_ids": old["input_ids"]}  # a rewrite (normalization) keeps what the unit was made from
        shards[s["name"]] = s
    out = {**empty_manifest(), **base, **{k: v for k, v in other.items() if v is not None}}
    out["config"] = other.get("config") or base.get("config")
    out["config_fingerprint"] = fb or fa
    out["shards"] = [shards[k] for k in sorted(shards)]
    out["failed_inputs"] = int(base.get("failed_inputs", 0)) + int(other.get("failed_inputs", 0))
    out["updated_utc"] = _utc_now()
    return out


def check_config(out_dir: str | Path, config: dict) -> None:
    """Raise UsageError when the directory's manifest was written with a different config (resume refuses it)."""
    have = load(out_dir).get("config_fingerprint")
    if have and have != config_fingerprint(config):
        raise UsageError("output directory holds shards made with a different config; use --overwrite",
                         path=str(out_dir))


def rebuild(out_dir: str | Path, *, config: dict | None = None) -> dict[str, Any]:
    """Recreate manifest.json from the shard files on disk (recovery when it was lost or disagrees).

    Raises:
        ShardError: a shard is refused by `trust.open_shard` (it would read another file, or is not a shard).
    """
    from vidprep.shards.summary import shard_entry
    from vidprep.shards.trust import open_shard

    built = empty_manifest(config)
    for path in fmt.find_shards(out_dir):
        with open_shard(path) as f:
            failed = json.loads(f["meta/errors_json"].asstr()[()]) if "meta/errors_json" in f else []
            entry = shard_entry(f, path)
            entry["input_ids"] = entry["video_ids"] + [e["video_id"] for e in failed if e.get("video_id")]
            built["config"] = built["config"] or fmt.read_json_attr(f, fmt.META_CONFIG)
        digest, size = fsync_and_hash(path)
        built["shards"].append(_entry({**entry, "bytes": size, "sha256": digest}))
    built["config_fingerprint"] = config_fingerprint(built["config"])
    with locked(out_dir):
        _save(out_dir, built)
    return built


def _entry(d: dict) -> dict[str, Any]:
    keys = ("name", "kind", "videos", "clips", "frames", "bytes", "sha256", "video_ids")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ShardError(f"shard summary lacks {', '.join(missing)}")
    entry = {k: list(d[k]) if k == "video_ids" else d[k] for k in keys}
    if d.get("input_ids") is not None:
        entry["input_ids"] = sorted(set(d["input_ids"]))
    return entry


def append_error(out_dir: str | Path, record: dict[str, Any]) -> None:
    """Append one failure to errors.jsonl: path, video_id, stage, error_type, one-line message, time (UTC).

    One ``os.write`` on an O_APPEND descriptor, so concurrent writers never interleave within a line.
    """
    rec = {k: record.get(k) for k in ERROR_FIELDS}
    rec.update({k: v for k, v in record.items() if k not in rec})
    rec["message"] = " ".join(str(rec.get("message") or "").split())[:MAX_MESSAGE_CHARS]
    rec["time"] = rec.get("time") or _utc_now()
    line = (json.dumps(rec, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    try:  # never through a link: a crafted errors.jsonl -> ~/.bashrc must not be appended to
        fd = os.open(Path(out_dir) / ERRORS_NAME, os.O_RDWR | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o644)
    except OSError as err:
        raise ShardError(f"cannot append an error record ({err.strerror}); refused",
                         path=str(Path(out_dir) / ERRORS_NAME)) from None
    try:
        if _ends_torn(fd):  # a writer died mid-line: start ours on a fresh line
            line = b"\n" + line
        os.write(fd, line)
    finally:
        os.close(fd)


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_errors(out_dir: str | Path, *, succeeded: set[str] | None = None) -> list[dict[str, Any]]:
    """Current failures from errors.jsonl, deduplicated for resume.

    Rule: records are keyed by video_id (path when there is none); the last record of a key wins (a video that
    failed again is listed once, with its latest error); keys whose video_id is in a shard of the manifest
    (``succeeded``, read from manifest.json when None) are dropped. A torn last line (crash mid-write) is skipped.
    """
    path = Path(out_dir) / ERRORS_NAME
    if succeeded is None:
        succeeded = _video_ids(load(out_dir))
    latest: dict[str, dict] = {}
    try:
        lines = read_own_text(path, errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d is not valid JSON; skipped", path, n)
            continue
        key = rec.get("video_id") or rec.get("path") or ""
        latest.pop(key, None)
        latest[key] = rec
    return [r for r in latest.values() if r.get("video_id") not in succeeded]


def compact_errors(out_dir: str | Path) -> list[dict[str, Any]]:
    """Rewrite errors.jsonl holding only `read_errors()`'s records (e.g. at the end of a resumed run)."""
    with locked(out_dir):
        records = read_errors(out_dir)
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        atomic_write_text(Path(out_dir) / ERRORS_NAME, text)
    return records


def append_shard_error(out_dir: str | Path, shard: Path, stage: str, err: Exception) -> None:
    """Log one line and append one error record for an input shard that could not be used (its run goes on)."""
    from vidprep.errors import printable_path

    shown = printable_path(str(shard))
    message = " ".join(str(err).split())
    message = message if message.startswith(shown) else f"{shown}: {message}"
    log.error("%s", message)
    append_error(out_dir, {"path": shown, "video_id": None, "stage": stage,
                           "error_type": getattr(err, "kind", type(err).__name__), "message": message})


def fsync_and_hash(path: Path) -> tuple[str, int]:
    """sha256 and size of a closed file, fsynced so its bytes are on disk before it is renamed.

    Only a regular file under ``path`` itself is read (a link is refused, a FIFO never blocks): ShardError otherwise.
    """
    h = hashlib.sha256()
    with _open_own(path) as fh:
        for block in iter(lambda: fh.read(4 * 2**20), b""):
            h.update(block)
        os.fsync(fh.fileno())
        size = fh.tell()
    return h.hexdigest(), size


def check_listed(d: Path, files: list[Path], required: bool, *, suffix: str = "",
                 hash_symlinks: bool = True) -> list[str]:
    """Compare the output files of directory ``d`` with its manifest.json (presence, sizes and checksums).

    Only manifest entries whose name ends with ``suffix`` are considered. ``hash_symlinks=False`` never hashes a
    file that is a symlink (a caller that already refuses symlinked outputs must not read what one points at).
    Returns one line per problem; a missing manifest is a problem only when ``required``.
    """
    if not (d / MANIFEST_NAME).exists():
        return [f"{d}: no {MANIFEST_NAME}"] if required else []
    try:
        entries = {s["name"]: s for s in load(d).get("shards", []) if str(s.get("name", "")).endswith(suffix)}
    except ShardError as err:
        return [str(err)]
    problems = [f"{d / name}: listed in {MANIFEST_NAME} but missing"
                for name in sorted(set(entries) - {p.name for p in files})]
    for path in files:
        entry = entries.get(path.name)
        if entry is None:
            problems.append(f"{path}: not listed in {MANIFEST_NAME}")
            continue
        if not hash_symlinks and path.is_symlink():
            continue
        digest, size = fsync_and_hash(path)
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            problems.append(f"{path}: checksum mismatch (size {size}, sha256 {digest[:12]}... differ from manifest)")
    return problems
