"""Golden outputs: a fixed small corpus through a representative set of commands, digested to canonical JSON.

The acceptance harness of the engine restructuring (issue 13): every output must stay identical. ``digest_output``
turns an output directory into JSON (each HDF5 dataset's sha256 and its attributes, config_json parsed, every
jpg/png/mp4/index file's sha256, manifest.json without times/hosts/sizes); ``golden_digest`` runs every command
and collects those digests. Run ``python tests/golden.py --write`` to regenerate tests/golden_digest.json after a
deliberate change (say why in the commit message).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from videos import FFMPEG, encode_numbered, run  # noqa: E402

GOLDEN = Path(__file__).parent / "golden_digest.json"
#: Attributes/keys that change between runs of the same command (times, versions, hosts, sizes).
VOLATILE = frozenset({"created_utc", "vidprep_version", "started_utc", "finished_utc", "updated_utc", "host",
                      "hostname", "bytes", "size_bytes", "seconds", "time", "pid", "mtime", "sha256",
                      "config_fingerprint"})
#: The temporary working directory, replaced by "<WORK>" in every string so digests do not depend on it.
_ROOT: list[str] = []
FEATS = ("--model", "resnet18", "--weights", "none")
SERIAL = ("--executor", "serial")


def make_corpus(root: Path) -> Path:
    """Three tiny videos: numbered (CFR, B-frames), VFR, and rotated 90 degrees clockwise, in classes a/ and b/."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    encode_numbered(root / "a" / "numbered.mp4", 24, width=64, height=48)
    vf = "settb=1/1000,setpts='(0.03*N+0.0008*N*N+0.5*gte(N,12))/TB'"
    encode_numbered(root / "b" / "vfr.mp4", 24, width=64, height=48, vf=vf,
                    args=("-enc_time_base", "1/1000", "-video_track_timescale", "1000"))
    run([FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(root / "a" / "numbered.mp4"), "-c", "copy",
         "-metadata:s:v", "rotate=270", str(root / "b" / "rotated.mp4")])
    return root


def _text(value: str) -> str:
    for root in _ROOT:
        value = value.replace(root, "<WORK>")
    return value


def _json_value(value: object) -> object:
    """An HDF5 attribute as JSON (arrays as lists, bytes as text)."""
    if isinstance(value, bytes):
        return _text(value.decode("utf-8", "replace"))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attrs(obj: h5py.HLObject) -> dict:
    return {k: _json_value(v) for k, v in sorted(obj.attrs.items()) if k not in VOLATILE}


def _dataset(name: str, ds: h5py.Dataset) -> object:
    """A dataset's digest: config_json parsed (volatile keys dropped); floats of model outputs rounded to 1e-4
    (a thread-count change may move the last bits of a conv); quality metrics as values (compared by `diff` to a
    relative 1e-5: their float32 sums follow the CPU's SIMD width); anything else the sha256 of its exact bytes."""
    data = ds[()]
    if name.endswith("config_json") or name.endswith("errors_json"):
        text = data.decode() if isinstance(data, bytes) else str(data)
        return _strip(json.loads(text))
    arr = np.asarray(data)
    if arr.dtype.kind == "f" and "quality/" in name:  # cv2/numpy SIMD paths differ by CPU in the last float bits
        return {"dtype": str(arr.dtype), "shape": list(arr.shape), "values": arr.astype(np.float64).ravel().tolist(),
                "attrs": _attrs(ds)}
    if arr.dtype.kind == "O":
        arr = np.asarray([_text(x.decode() if isinstance(x, bytes) else str(x)) for x in arr.ravel()])
    if arr.dtype.kind == "f" and ("feature" in name or "mean" in name or "std" in name or "pca" in name
                                  or "components" in name or "scale" in name or "min" in name or "max" in name):
        arr = np.round(arr.astype(np.float64), 4) + 0.0
    digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]
    return {"dtype": str(arr.dtype), "shape": list(arr.shape), "sha256": digest, "attrs": _attrs(ds)}


def _strip(value: object) -> object:
    """JSON with volatile keys removed, recursively."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, str):
        return _text(value)
    return value


def digest_h5(path: Path) -> dict:
    """Every group's attributes and every dataset's digest of one HDF5 file."""
    out: dict = {"/": _attrs(h5py.File(path, "r"))}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: h5py.HLObject) -> None:
            out[name] = _dataset(name, obj) if isinstance(obj, h5py.Dataset) else _attrs(obj)
        f.visititems(visit)
    return out


def digest_output(out: Path) -> dict:
    """Canonical JSON of an output directory (temp/lock files and logs left out)."""
    result: dict = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel.endswith(".lock") or "/.tmp" in rel or rel.startswith(".tmp"):
            continue
        if path.suffix == ".h5":
            result[rel] = digest_h5(path)
        elif path.name == "manifest.json":
            result[rel] = _strip(json.loads(path.read_text()))
        elif path.suffix == ".parquet":  # its rows name source paths under the (temporary) work dir
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            result[rel] = {"schema": str(table.schema), "rows": _strip(json.loads(json.dumps(table.to_pylist())))}
        elif path.suffix in (".jsonl",):
            result[rel] = [_strip(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        else:
            result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return result


def _commands(corpus: Path, work: Path) -> list[tuple[str, list[str]]]:
    """(name, CLI arguments) of every golden command; outputs go to work/<name>."""
    frames = work / "split_h5"
    pipeline = work / "pipeline.toml"
    pipeline.write_text('[split]\nclip_frames = 4\nstride = 4\nsize = 32\n[enhance]\ncontrast = "autolevels"\n'
                        '[augment]\ncrop = "24"\nhflip = 0.5\ncopies = 2\n[run]\nseed = 3\nvideos_per_shard = 2\n')
    split = ["--fps", "6", "--size", "32", "--label-from-dir", *SERIAL]
    return [
        ("split_h5", ["split", corpus, *split, "--videos-per-shard", "2"]),
        ("split_jpeg_codec", ["split", corpus, *split, "--frame-codec", "jpeg", "--jpeg-quality", "80"]),
        ("split_jpg", ["split", corpus, "--clip-frames", "4", "--stride", "6", "--size", "32", *SERIAL,
                       "--format", "jpg"]),
        ("split_png", ["split", corpus, "--clip-frames", "4", "--stride", "6", "--size", "32", *SERIAL,
                       "--format", "png"]),
        ("split_mp4", ["split", corpus, "--clip-frames", "5", "--stride", "8", "--size", "32", *SERIAL,
                       "--format", "mp4"]),
        ("split_scenes", ["split", corpus, "--scenes", "--clip-frames", "4", "--size", "32", *SERIAL]),
        ("split_tail_pad", ["split", corpus, "--clip-frames", "7", "--tail", "pad", "--size", "32", *SERIAL]),
        ("enhance", ["enhance", corpus, "--fps", "6", "--size", "32", "--contrast", "clahe", "--white-balance",
                     "grayworld", "--temporal-smoothing", "0.5", *SERIAL]),
        ("augment", ["augment", corpus, "--clip-frames", "4", "--stride", "4", "--size", "32", "--crop", "24",
                     "--rotate", "10", "--hflip", "0.5", "--copies", "2", "--keep-original", "--seed", "5", *SERIAL]),
        ("features_2d", ["features", corpus, *FEATS, "--fps", "4", "--size", "32", "--normalize", "zscore",
                         "--labels", work / "labels.csv", *SERIAL]),
        ("features_3d", ["features", corpus, "--model", "r3d_18", "--weights", "none", "--clip-frames", "4",
                         "--stride", "8", "--size", "32", "--normalize", "zscore", *SERIAL]),
        ("run_pipeline", ["run", pipeline, corpus, *SERIAL]),
        ("features_on_shards", ["features", frames, *FEATS, *SERIAL]),
        ("enhance_on_shards", ["enhance", frames, "--contrast", "autolevels", *SERIAL]),
    ]


def golden_digest(work: Path, run_cli: Callable[[list[str]], tuple[int, str]] | None = None) -> dict:
    """Run every golden command into ``work`` and digest each output; a command that fails is recorded as such."""
    _ROOT[:] = [str(work), str(work.resolve())]
    corpus = make_corpus(work / "corpus")
    (work / "labels.csv").write_text("video_id,label\na/numbered,2\nb/vfr,0\nb/rotated,1\n")
    run_cli = run_cli or _in_process
    digest: dict = {}
    for name, args in _commands(corpus, work):
        out = work / name
        code, err = run_cli([str(a) for a in args] + ["-o", str(out)])
        digest[name] = {"exit": code, "output": digest_output(out) if out.exists() else None}
        if code != 0:
            digest[name]["stderr"] = _text(err[-500:])
    return digest


def _in_process(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from vidprep.cli.app import app

    res = CliRunner().invoke(app, args)
    return res.exit_code, res.stderr


def diff(expected: object, actual: object, where: str = "") -> list[str]:
    """Human-readable differences between two digests (first ones only matter); floats (quality metrics, in
    shards and index rows) equal to a relative 1e-5, anything else exactly."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                out.append(f"{where}/{key}: missing")
            elif key not in expected:
                out.append(f"{where}/{key}: unexpected")
            else:
                out += diff(expected[key], actual[key], f"{where}/{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [p for i, (e, a) in enumerate(zip(expected, actual)) for p in diff(e, a, f"{where}[{i}]")]
    if isinstance(expected, float) and isinstance(actual, float) and (
            math.isclose(expected, actual, rel_tol=1e-5, abs_tol=1e-9) or math.isnan(expected) and math.isnan(actual)):
        return []
    return [] if expected == actual else [f"{where}: {str(expected)[:200]} != {str(actual)[:200]}"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        digest = golden_digest(Path(tmp))
    text = json.dumps(digest, indent=1, sort_keys=True) + "\n"
    if "--write" in sys.argv:
        GOLDEN.write_text(text)
    else:
        problems = diff(json.loads(GOLDEN.read_text()), json.loads(text))
        print("\n".join(problems[:50]) or "golden outputs identical")
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
