"""Whole-machine use at every job size: fixed start-up cost, one-video jobs, and many short videos.

Usage::

    python benchmarks/machine.py [--quick] [--repeats 3]

Every row is a ratio to a reference measured in the same run, doing the same work (same file, same decode size,
same frames, same threads: every process may use all CPUs, OMP_NUM_THREADS is unset):

- fixed cost: `vidprep features --fps 1` (resnet18, default executor) on a 1 s 720p clip ÷ a bare Python that
  imports torch + torchvision and builds resnet18 headless (target <= 1.25); `vidprep split --fps 1` on the same
  clip in seconds (target <= 1.0 s), beside a bare `python -c "import vidprep.cli.main"`;
- split: `vidprep split --fps 2 --size 224` on 720p 40 s (default executor) ÷ ffmpeg running vidprep's own decode
  argv (same filters, including the quality-metrics branch a default run decodes) with every output thrown away
  (ratio = limit / vidprep; target >= 0.9, start-up included); and the same with `--no-metrics` against the argv
  without that branch;
- dense features on one video: `vidprep features --model resnet18 --every 1` on 480p 60 s (1,500 frames), default
  executor and precision. Its throughput (frames / (wall - the fixed cost above)) ÷ the model alone on the same
  frames (decoded by vidprep at the model's input size beforehand, same extractor settings: batch, precision,
  channels-last, all CPUs, two streams on a CPU) (target >= 0.9), and ÷ the model alone run as one stream of
  32-frame batches on all CPUs (slower on a CPU, see vidprep/stages/model_streams.py), and ÷ plain torchvision
  resnet18 in a fresh process without vidprep (batches of 32, channels-last, all CPUs: how the issue measured the
  model limit; none of vidprep's BatchNorm folding or heap policy), and its wall time ÷ a naive loop doing the
  same job (OpenCV decode, per-frame torchvision preprocessing, batch-1 fp32; target >= 1.4 on CPUs without native
  bf16, >= 3 with);
- many short videos: 20 x 480p (3-5 s) through split (8-frame clips, 112 px) + resnet18 features, two videos per
  shard, with the process executor ÷ the serial one (target >= 1.6 on 2 quiet cores); the 1-minute load average
  before the run is printed beside it. And the process executor's wall time against the bound the serial run's own
  CPU time sets (its CPU-seconds, ffmpeg included, ÷ the cores; target >= 0.9): when the serial run already keeps
  the cores busy, no executor can be faster than that, so this row says how much of the machine is left unused.

Writes benchmarks/results/machine.json. Weights are random (`none`): the cost is the same as pretrained.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from common import VIDPREP, best_of, make_video, report  # noqa: E402
from scale import PIPELINE  # noqa: E402
from vidprep import host_heap  # noqa: E402

host_heap.keep_freed_blocks()  # as the CLI does: in-process references and runs share vidprep's heap settings

BUILD_R18 = ("import torch, torchvision; m = torchvision.models.resnet18(weights=None); "
             "m.fc = torch.nn.Identity(); m.eval()")


def cli(argv: list[str], repeats: int) -> float:
    """Best wall seconds of the CLI on fresh output directories (`-o` appended)."""
    best = float("inf")
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="vidprep-machine-"))
        try:
            best = min(best, best_of(1, [*VIDPREP, *argv, "-o", str(out / "o"), "-q"])[0])
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return best


def fixed_cost_rows(clip: Path, repeats: int) -> list[dict]:
    base = best_of(repeats, [sys.executable, "-c", BUILD_R18])[0]
    feats = cli(["features", str(clip), "--fps", "1", "--model", "resnet18", "--weights", "none"], repeats)
    imports = best_of(repeats, [sys.executable, "-c", "import vidprep.cli.main"])[0]
    split = cli(["split", str(clip), "--fps", "1"], repeats)
    return [
        {"case": "fixed cost: features --fps 1, 1 s 720p", "vidprep_s": feats, "reference_s": base,
         "reference": "import torch+torchvision, build resnet18", "ratio": feats / base, "target": "<= 1.25"},
        {"case": "fixed cost: split --fps 1, 1 s 720p", "vidprep_s": split, "reference_s": imports,
         "reference": "python -c 'import vidprep.cli.main'", "ratio": split / imports, "target": "vidprep_s <= 1.0"},
    ]


def split_row(path: Path, repeats: int) -> list[dict]:
    """vidprep split ÷ ffmpeg running the same decode argv: with the quality-metrics branch (the default run's
    filter graph: its 64-px view of every decoded frame goes to a second output) and without it (--no-metrics)."""
    from vidprep.engine.curation import DecodeMetrics
    from vidprep.media.decode import decode_argv
    from vidprep.media.probe import probe
    from vidprep.types import Sampling, SizeSpec

    info = probe(path)
    branch = DecodeMetrics(info).branch
    rows = []
    for label, branches, extra in (("default (quality branch)", [(branch.filters, 1)], []),
                                   ("--no-metrics", [], ["--no-metrics"])):
        # every output is raw video to the discarded stdout
        argv = decode_argv(info, Sampling("fps", 2), SizeSpec(short_side=224), branches=branches)
        limit = best_of(repeats, argv)[0]
        wall = cli(["split", str(path), "--fps", "2", "--size", "224", *extra], repeats)
        rows.append({"case": f"split --fps 2 --size 224, 720p 40 s, {label}", "vidprep_s": wall,
                     "reference_s": limit, "reference": "same ffmpeg decode argv, frames discarded",
                     "ratio": limit / wall, "target": ">= 0.9"})
    return rows


def decoded(path: Path, limit: int) -> np.ndarray:
    """The first ``limit`` frames as vidprep decodes them for resnet18 (every frame, short side 256)."""
    from vidprep.config import SplitConfig
    from vidprep.media.decode import decode
    from vidprep.media.probe import probe

    cfg = SplitConfig(every=1, size=256)
    frames = []
    for frame in decode(probe(path), cfg.sampling(), cfg.size_spec()):
        frames.append(frame.rgb)
        if len(frames) == limit:
            break
    return np.stack(frames)


def model_rate(frames: np.ndarray, precision: str, one_stream: bool = False) -> float:
    """resnet18 frames/s on pre-decoded frames, with the extractor settings `vidprep features` uses (all CPUs); with
    ``one_stream``, batches of 32 one at a time on all CPUs instead."""
    from vidprep.config import FeaturesConfig
    from vidprep.executors.threads import available_cpus
    from vidprep.stages.features import FeatureExtractor
    from vidprep.stages.model_streams import ModelStreams

    cpus = available_cpus()
    ex = FeatureExtractor(FeaturesConfig(model="resnet18", weights="none", precision=precision), threads=cpus)
    if one_stream:
        ex.streams, ex.batch_size = ModelStreams(1, lambda: cpus), 32
    ex.extract_frames(frames[: ex.batch_size * ex.streams.streams])  # warm-up: oneDNN primitives on every stream
    started = time.perf_counter()
    ex.extract_frames(frames)
    return len(frames) / (time.perf_counter() - started)


PLAIN_MODEL = """
import sys, time, torch, torchvision
bf16 = sys.argv[1] == "bf16"
m = torchvision.models.resnet18(weights=None)
m.fc = torch.nn.Identity()
m = m.eval().to(memory_format=torch.channels_last)
x = torch.rand(32, 3, 224, 224).to(memory_format=torch.channels_last)
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    m(x)
    started = time.perf_counter()
    for _ in range(8):
        m(x)
print(8 * 32 / (time.perf_counter() - started))
"""


def plain_model_rate(precision: str) -> float:
    """torchvision resnet18 frames/s as the issue measured the model alone: a fresh process with none of vidprep
    (so glibc's default heap), batches of 32 channels-last on all CPUs, fp32 or bf16 autocast."""
    from vidprep.stages.runtime import pick_precision

    done = subprocess.run([sys.executable, "-c", PLAIN_MODEL, pick_precision("cpu", precision)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def naive_seconds(path: Path) -> tuple[float, int]:
    """features.py's naive loop (OpenCV + per-frame preprocessing + batch-1 fp32 resnet18) with all CPUs."""
    import torch

    from features import naive_seconds as naive_loop
    from vidprep.executors.threads import available_cpus

    torch.set_num_threads(available_cpus())
    return naive_loop(path)


def dense_rows(path: Path, frames: int, fixed_s: float, precision: str) -> list[dict]:
    wall = cli(["features", str(path), "--every", "1", "--model", "resnet18", "--weights", "none",
                "--precision", precision], 1)
    rate = frames / max(1e-9, wall - fixed_s)
    sample = decoded(path, 320)
    model, one_stream = model_rate(sample, precision), model_rate(sample, precision, one_stream=True)
    plain = plain_model_rate(precision)
    naive_s, naive_frames = naive_seconds(path)
    assert naive_frames == frames, (naive_frames, frames)
    return [
        {"case": f"dense resnet18 every frame, 480p {frames} frames, {precision}", "vidprep_s": wall,
         "items_per_s": rate, "reference_items_per_s": model,
         "reference": "model alone, same frames and settings", "ratio": rate / model, "target": ">= 0.9"},
        {"case": f"dense resnet18 every frame, 480p {frames} frames, {precision}", "vidprep_s": wall,
         "items_per_s": rate, "reference_items_per_s": one_stream,
         "reference": "model alone, one stream of 32 frames on all CPUs", "ratio": rate / one_stream,
         "target": ">= 0.9"},
        {"case": f"dense resnet18 every frame, 480p {frames} frames, {precision}", "vidprep_s": wall,
         "items_per_s": rate, "reference_items_per_s": plain,
         "reference": "plain torchvision resnet18, batch 32, channels-last, all CPUs, fresh process",
         "ratio": rate / plain, "target": ">= 0.9"},
        {"case": f"dense vs naive loop, {precision}", "vidprep_s": wall, "reference_s": naive_s,
         "reference": "OpenCV + batch-1 fp32 loop", "ratio": naive_s / wall,
         "target": ">= 3 (native bf16) / >= 1.4"},
    ]


def cli_cpu(argv: list[str], repeats: int) -> tuple[float, float]:
    """Best wall seconds and least CPU seconds (user + system, ffmpeg included) of the CLI over ``repeats`` runs.

    CPU time is what the waited-for process tree used; only the serial executor's whole tree is waited for (pool
    workers are reaped by their forkserver), so this is used for serial runs only."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = min(wall, cli(argv, 1))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = min(cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def many_short_rows(videos: list[Path], repeats: int) -> list[dict]:
    """Process executor vs serial, and vs the bound serial's own CPU time sets: once the serial run keeps both
    cores mostly busy (two model streams, decode beside them), no executor can beat it by more than
    cores x wall / CPU-seconds, whatever the target says."""
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vidprep-machine-") as tmp:
        pipeline = Path(tmp) / "pipeline.toml"
        pipeline.write_text(PIPELINE)
        load = os.getloadavg()[0]
        argv = ["run", str(pipeline), *map(str, videos), "--executor"]
        serial_s, serial_cpu = cli_cpu([*argv, "serial"], repeats)
        process_s = cli([*argv, "process"], repeats)
    bound = serial_cpu / cpus
    case = f"{len(videos)} x 480p split+resnet18"
    return [{"case": f"{case}, process vs serial (load {load:.2f})",
             "vidprep_s": process_s, "reference_s": serial_s, "reference": "serial executor",
             "ratio": serial_s / process_s, "target": ">= 1.6 (quiet 2 cores)"},
            {"case": f"{case}, process vs the all-cores bound (serial used {serial_cpu / serial_s / cpus:.0%} "
                     f"of {cpus} cores)",
             "vidprep_s": process_s, "reference_s": bound, "reference": "serial CPU-seconds / cores",
             "ratio": bound / process_s, "target": ">= 0.9"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs, one repeat (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["fixed", "split", "dense", "short"], action="append",
                        help="run only these row groups (repeatable)")
    args = parser.parse_args()
    os.environ.pop("OMP_NUM_THREADS", None)
    repeats = 1 if args.quick else args.repeats
    only = set(args.only or ["fixed", "split", "dense", "short"])
    clip = make_video("m720_1s.mp4", 1280, 720, 30, 1)
    rows = fixed_cost_rows(clip, repeats)
    fixed_s = rows[0]["vidprep_s"]
    rows = rows if "fixed" in only else []
    if "split" in only:
        rows += split_row(make_video("m720_40s.mp4", 1280, 720, 30, 10 if args.quick else 40), repeats)
    if "dense" in only:
        seconds = 10 if args.quick else 60
        path = make_video(f"m480_{seconds}s.mp4", 854, 480, 25, seconds)
        from vidprep.stages.runtime import cpu_has_native_bf16

        for precision in ("auto", "fp32") if cpu_has_native_bf16() else ("auto",):
            rows += dense_rows(path, seconds * 25, fixed_s, precision)
    if "short" in only:
        videos = [make_video(f"scale480_{i:02d}.mp4", 854, 480, 25, 3 + i % 3) for i in range(6 if args.quick else 20)]
        rows += many_short_rows(videos, 1 if args.quick else 2)
    report("machine", ["case", "vidprep_s", "reference_s", "items_per_s", "reference_items_per_s", "ratio",
                       "target", "reference"], rows)


if __name__ == "__main__":
    main()
