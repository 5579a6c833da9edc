"""Scaling on one machine: `vidprep run` (split + features) with the serial, process and Ray executors.

Usage::

    python benchmarks/scale.py [--quick] [--repeats 1] [--no-ray]

20 short 480p videos (3-5 s, 25 fps; 6 with --quick) go through one pipeline file: ``[split] clip_frames=8
size=112`` + ``[features] model="resnet18" weights="none"``, two videos per shard (so there are enough work units
to share between workers). Each executor runs the real CLI in a fresh process on a fresh output directory:

- wall time, and the speed-up of each executor over ``serial`` measured in the same run;
- CPU utilization = user+sys CPU seconds of the run and all its descendants / (wall x cores). The CPU time comes
  from ``os.wait4``'s rusage of the CLI, which covers every descendant that was waited for (pool workers, ffmpeg).
  Ray needs two additions: its daemons outlive the driver briefly, so this process becomes a child subreaper and
  reaps and counts them; and raylet ignores SIGCHLD, so its worker processes are reaped by the kernel and their CPU
  never reaches any rusage. Those are sampled from /proc every 0.25 s instead (utime+stime, plus the children they
  waited for, e.g. ffmpeg, at the last sample before they exit);
- for Ray: its start-up (the driver logs how long ``ray.init`` took) and its overhead against ``process`` on the
  same job, with and without that start-up.

Prints a table and writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import VIDPREP, make_video, report  # noqa: E402

PIPELINE = """[split]
clip_frames = 8
size = 112

[features]
model = "resnet18"
weights = "none"

[run]
videos_per_shard = 2
"""
PR_SET_CHILD_SUBREAPER = 36
RAY_START = re.compile(r"started a local Ray with \d+ CPUs in ([0-9.]+) s")


def inputs(quick: bool) -> list[Path]:
    """480p25 testsrc2 with noise, 3, 4 or 5 s long; made once under benchmarks/media."""
    count = 6 if quick else 20
    return [make_video(f"scale480_{i:02d}.mp4", 854, 480, 25, 3 + i % 3) for i in range(count)]


def become_subreaper() -> bool:
    """Orphaned descendants (Ray's daemons and workers) get re-parented to this process, so their CPU is counted."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout_s: float = 60.0) -> int:
    """Wait for every remaining descendant re-parented here; returns how many were reaped."""
    reaped, deadline = 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.1)
        else:
            reaped += 1
    return reaped


class AutoReapedSampler(threading.Thread):
    """Last-seen CPU seconds and peak RSS of descendants whose parent ignores SIGCHLD (Ray's workers under raylet)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, interval_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.cpu: dict[tuple[int, int], float] = {}
        self.rss_kb = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            self.sample()

    def stop(self) -> tuple[float, float]:
        """Stop sampling; (CPU seconds, peak RSS in MB) of the auto-reaped processes seen."""
        self._done.set()
        self.join()
        return sum(self.cpu.values()), self.rss_kb / 1024

    def sample(self) -> None:
        stats = {pid: st for pid in _pids() if (st := _stat(pid)) is not None}
        me, ignores = os.getpid(), {}
        for pid, st in stats.items():
            parent, chain = st["ppid"], set()
            while parent not in (me, 0, 1) and parent in stats and parent not in chain:
                chain.add(parent)
                parent = stats[parent]["ppid"]
            if parent != me or st["ppid"] == me:
                continue  # not ours, or reaped by this process (counted by rusage)
            if st["ppid"] not in ignores:
                ignores[st["ppid"]] = _ignores_sigchld(st["ppid"])
            if ignores[st["ppid"]]:
                self.cpu[(pid, st["start"])] = st["ticks"] / self.TICK
                self.rss_kb = max(self.rss_kb, _peak_rss_kb(pid))


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _stat(pid: int) -> dict | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields from 3 (state) on
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return {"ppid": int(fields[1]), "ticks": utime + stime + cutime + cstime, "start": int(fields[19])}


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _ignores_sigchld(pid: int) -> bool:
    mask = _status(pid).get("SigIgn", "0").strip()
    return bool(int(mask, 16) & (1 << (17 - 1)))  # SIGCHLD = 17 on Linux


def _peak_rss_kb(pid: int) -> int:
    value = _status(pid).get("VmHWM", "0 kB").split()
    return int(value[0]) if value else 0


def run_once(argv: list[str]) -> dict:
    """Run the CLI; wall, CPU (run + descendants), peak RSS, its --json summary and stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    sampler = AutoReapedSampler()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        orphans = reap_orphans()
        auto_cpu, auto_rss = sampler.stop()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:5])}... exited {code}: {stderr[-800:]}")
    reaped_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = json.loads(stdout.strip().splitlines()[-1])
    start = RAY_START.search(stderr)
    return {"wall_s": wall, "cpu_s": reaped_cpu + auto_cpu, "cpu_driver_tree_s": usage.ru_utime + usage.ru_stime,
            "cpu_orphans_s": reaped_cpu - (usage.ru_utime + usage.ru_stime), "orphans": orphans,
            "cpu_auto_reaped_s": auto_cpu, "peak_rss_mb": max(usage.ru_maxrss / 1024, auto_rss),
            "frames": summary["frames"], "clips": summary["clips"],
            "ray_start_s": float(start.group(1)) if start else None}


def measure(executor: str, workers: int, videos: list[Path], pipeline: Path, repeats: int) -> dict:
    """Fastest of ``repeats`` runs, each on a fresh output directory."""
    runs = []
    for _ in range(repeats):
        tmp = Path(tempfile.mkdtemp(prefix="vidprep-scale-"))
        try:
            argv = [*VIDPREP, "run", str(pipeline), *map(str, videos), "-o", str(tmp / "out"), "--json",
                    "--executor", executor, "--workers", str(workers)]
            runs.append(run_once(argv))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    best = min(runs, key=lambda r: r["wall_s"])
    cores = os.cpu_count() or 1
    return {"executor": executor, "workers": workers, **best, "cpu_util": best["cpu_s"] / (best["wall_s"] * cores),
            "frames_per_s": best["frames"] / best["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 videos instead of 20: a smoke run")
    parser.add_argument("--repeats", type=int, default=1, help="runs per executor (fastest kept)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()
    subreaper = become_subreaper()
    videos = inputs(args.quick)
    cores = os.cpu_count() or 1
    plan = [("serial", 1), ("process", cores)]
    if not args.no_ray:
        plan.append(("ray", cores))
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Path(tmp) / "pipeline.toml"
        pipeline.write_text(PIPELINE)
        rows = [measure(name, workers, videos, pipeline, args.repeats) for name, workers in plan]
    base = {r["executor"]: r for r in rows}
    for r in rows:
        r["speedup"] = base["serial"]["wall_s"] / r["wall_s"]
        r["vs_process"] = r["wall_s"] / base["process"]["wall_s"]
    extra = {"quick": args.quick, "videos": len(videos), "pipeline": PIPELINE, "cores": cores,
             "subreaper": subreaper, "repeats": args.repeats}
    if "ray" in base:
        ray, proc = base["ray"], base["process"]
        start = ray["ray_start_s"] or 0.0
        extra["ray_overhead_s"] = ray["wall_s"] - proc["wall_s"]
        extra["ray_overhead_after_start_s"] = ray["wall_s"] - start - proc["wall_s"]
    columns = ["executor", "workers", "wall_s", "speedup", "vs_process", "cpu_s", "cpu_util", "frames_per_s",
               "peak_rss_mb", "ray_start_s"]
    report("scale", columns, rows, extra)
    for key in ("ray_overhead_s", "ray_overhead_after_start_s"):
        if key in extra:
            print(f"{key}: {extra[key]:.1f}")


if __name__ == "__main__":
    main()
