"""Shared benchmark plumbing: deterministic inputs made with ffmpeg, timed child processes with peak RSS, and
the table + JSON report every benchmark prints and writes.

Benchmarks report ratios against a baseline measured in the same run (the machines are shared and noisy), never
absolute timings as pass/fail.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEDIA = HERE / "media"
RESULTS = HERE / "results"
VIDPREP = [sys.executable, "-m", "vidprep"]


def _compile_vidprep() -> None:
    """Write vidprep's bytecode once, as an installed wheel has it: with PYTHONDONTWRITEBYTECODE set (as on this
    machine) every CLI run would otherwise compile ~70 modules from source (0.2-0.4 s) before doing anything."""
    import compileall

    compileall.compile_dir(str(HERE.parent / "vidprep"), quiet=1)


_compile_vidprep()


def make_video(name: str, width: int, height: int, rate: int, seconds: float, *, noise: int = 12,
               gop: int | None = None) -> Path:
    """testsrc2 with temporal noise (so decoding costs what real footage costs), H.264 veryfast; made once.

    ``gop`` sets the keyframe interval in frames (x264's default is 250)."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    path = MEDIA / name
    if not path.exists():
        tmp = path.with_name(".tmp-" + path.name)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}",
             "-vf", f"noise=alls={noise}:allf=t", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
             *(["-g", str(gop)] if gop else []), "-f", "mp4", str(tmp)],
            check=True,
        )
        tmp.rename(path)
    return path


_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def run_measured(argv: Sequence[str], *, env: dict | None = None) -> tuple[float, int]:
    """Run a command to completion; return (wall seconds, peak RSS in bytes of the command and its descendants).

    The command is started by a tiny launcher process: a child forked straight from this (large, torch-holding)
    process would count the parent's shared pages in its peak RSS. stderr goes to a temp file (a pipe nobody reads
    would fill and stall a chatty ffmpeg), read only on failure.
    """
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, argv)], stdout=subprocess.PIPE,
                              stderr=err, env={**os.environ, **(env or {})})
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace")[-800:]
            raise RuntimeError(f"{' '.join(map(str, argv[:4]))}... exited {proc.returncode}: {tail}")
    return wall, int(proc.stdout.split()[-1]) * 1024


def best_of(repeats: int, argv: Sequence[str], **kwargs: object) -> tuple[float, int]:
    """Fastest of ``repeats`` runs (less noise from other load), with the largest peak RSS seen."""
    runs = [run_measured(argv, **kwargs) for _ in range(repeats)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def machine() -> dict:
    """What the numbers were measured on."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0]}


def report(name: str, columns: Sequence[str], rows: list[dict], extra: dict | None = None) -> Path:
    """Print rows as a fixed-width table and write them (plus machine info) to benchmarks/results/NAME.json."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({"benchmark": name, "machine": machine(), "rows": rows, **(extra or {})}, indent=1))
    print(f"wrote {out}")
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)
