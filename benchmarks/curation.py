"""Curation benchmark: metric classes on a labelled synthetic corpus, metric cost on 720p, dedup quality and scale.

Usage::

    python benchmarks/curation.py [--quick]

(a) **Classes.** Eight deterministic lavfi clips, one per label (static shot, slideshow, black, heavy blur,
    letterboxed, fast pan, ordinary motion, frozen frames), split whole (`--clip-seconds 4`, every frame), each
    classified by `vidprep.stages.quality_rules.classify` (the documented defaults). Target 100%.
(b) **Overhead.** `vidprep split` of a 720p30 video with `--metrics` and `--no-metrics`, runs interleaved, best of
    N wall and CPU (user + sys, children included) times, same run: every frame at `--size 224 --clip-seconds 2`
    and `--fps 2 --size 224` (the metrics still see every decoded frame, on their own 64 px decode branch, so
    this row measures the branch plus per-frame metric work against a sampled decode). Target: ratio <= 1.10.
    The CPU ratio is the steadier number on a shared machine.
(c) **Dedup.** Varied sources (mandelbrot views, Sierpinski carpets, life, cellular automata, test patterns), each
    copied as CRF 35 re-encode, 0.5x scale, 10% centre crop, grayscale and a 1 s trim; `vidprep dedup`; pair-level
    precision and recall against the truth (same source). Target recall >= 0.95 at precision >= 0.99.
(d) **Scale.** Tier-1 grouping of 100,000 synthetic signatures (8 hashes per clip: a random base hash with 0-3 bits
    flipped per frame; 5% are planted copies of another clip with 2-6 bits flipped per frame). Target < 60 s.
Writes benchmarks/results/curation.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from common import MEDIA, VIDPREP, make_video, report  # noqa: E402

S, R = "320x180", 25
CLASSES = {  # label -> (lavfi source, filters)
    "static": (f"smptehdbars=size={S}:rate={R}", "noise=alls=4:allf=t"),
    "slideshow": (f"testsrc2=size={S}:rate=1", f"fps={R}"),
    "black": (f"color=black:size={S}:rate={R}", "noise=alls=3:allf=t"),
    "blurred": (f"testsrc2=size={S}:rate={R}", "gblur=sigma=12"),
    "letterboxed": (f"testsrc2=size=320x120:rate={R}", "pad=320:180:0:30"),
    "fast_motion": (f"mandelbrot=size=1600x180:rate={R}", "crop=320:180:'t*300':0"),
    "ordinary": (f"testsrc2=size={S}:rate={R}", "null"),
    "frozen": (f"testsrc2=size={S}:rate={R}", "loop=loop=40:size=1:start=20"),
}
SOURCES = [
    "mandelbrot=size=320x240:rate=25", "mandelbrot=size=320x240:rate=25:start_x=-0.75:start_y=0.1:start_scale=0.3",
    "mandelbrot=size=320x240:rate=25:start_x=0.3:start_y=0.5:start_scale=0.5",
    "mandelbrot=size=320x240:rate=25:start_x=-1.3:start_y=0.05:start_scale=0.2",
    "sierpinski=size=320x240:rate=25:seed=1:jump=10", "sierpinski=size=320x240:rate=25:seed=7:type=triangle:jump=5",
    "life=size=320x240:rate=25:seed=3:mold=10:life_color=#ff8800", "life=size=320x240:rate=25:seed=11:ratio=0.3",
    "cellauto=size=320x240:rate=25:rule=30:seed=5", "cellauto=size=320x240:rate=25:rule=110:seed=9",
    "testsrc2=size=320x240:rate=25", "rgbtestsrc=size=320x240:rate=25,hue=H=t",
    "mptestsrc=rate=25:test=ring2,scale=320:240",
    "mptestsrc=rate=25:test=dc_luma,scale=320:240,noise=alls=40:allf=u",
]
TRANSFORMS = {"crf35": ["-crf", "35"], "half": ["-vf", "scale=iw/2:ih/2"], "crop": ["-vf", "crop=iw*0.9:ih*0.9"],
              "gray": ["-vf", "format=gray,format=yuv420p"], "trim": ["-ss", "1"]}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def vidprep(*args: str | Path) -> None:
    subprocess.run([*VIDPREP, *map(str, args), "-q"], check=True, stdout=subprocess.DEVNULL)


def clip_metrics(out: Path) -> dict[str, dict]:
    """{video_id: metrics of its first clip} of a split output (plain h5py)."""
    import h5py

    found = {}
    for path in sorted(out.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            ids, vid = f["videos/id"].asstr()[:], f["clips/video_index"][:]
            q = {k: f["clips/quality"][k][:] for k in f["clips/quality"]}
            for i, v in enumerate(vid):
                found.setdefault(str(ids[v]), {k: float(c[i]) for k, c in q.items()})
    return found


def bench_classes(tmp: Path) -> list[dict]:
    from vidprep.stages.quality_rules import classify

    src = tmp / "classes"
    src.mkdir()
    for label, (source, vf) in CLASSES.items():
        ffmpeg("-f", "lavfi", "-i", source, "-vf", vf, "-t", "4", "-c:v", "libx264", "-preset", "veryfast",
               "-pix_fmt", "yuv420p", str(src / f"{label}.mp4"))
    vidprep("split", src, "-o", tmp / "classes_out", "--clip-seconds", "4", "--tail", "keep")
    rows = []
    for vid, m in sorted(clip_metrics(tmp / "classes_out").items()):
        label = vid.removesuffix(".mp4")
        rows.append({"label": label, "predicted": classify(m), "ok": classify(m) == label,
                     **{k: round(m[k], 3) for k in ("motion", "motion_max", "frozen_ratio", "blur", "black_ratio",
                                                    "letterbox")}})
    return rows


def bench_overhead(tmp: Path, seconds: float, repeats: int) -> list[dict]:
    """Split with and without metrics, runs interleaved; best wall time and best CPU time (user + sys) of each."""
    video = make_video(f"curation720_{int(seconds)}s.mp4", 1280, 720, 30, seconds)
    rows = []
    for name, opts in (("every frame --size 224", ["--size", "224", "--clip-seconds", "2"]),
                       ("--fps 2 --size 224", ["--fps", "2", "--size", "224"])):
        wall: dict[str, list[float]] = {"--no-metrics": [], "--metrics": []}
        cpu: dict[str, list[float]] = {"--no-metrics": [], "--metrics": []}
        for _ in range(repeats):
            for mode in wall:
                argv = [*VIDPREP, "split", str(video), "-o", str(tmp / f"ov{len(rows)}{mode}"), *opts, mode,
                        "--executor", "serial", "--overwrite", "-q"]
                w, c = timed(argv)
                wall[mode].append(w)
                cpu[mode].append(c)
        rows.append({"case": name, "no_metrics_s": round(min(wall["--no-metrics"]), 2),
                     "metrics_s": round(min(wall["--metrics"]), 2),
                     "ratio": round(min(wall["--metrics"]) / min(wall["--no-metrics"]), 3),
                     "cpu_ratio": round(min(cpu["--metrics"]) / min(cpu["--no-metrics"]), 3)})
    return rows


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children) of one run."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_dedup(tmp: Path, sources: list[str]) -> dict:
    src = tmp / "dedup"
    src.mkdir()
    for k, source in enumerate(sources):
        base = src / f"s{k:02d}.mp4"
        ffmpeg("-f", "lavfi", "-i", source, "-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
               str(base))
        for name, args in TRANSFORMS.items():
            pre, post = (args, []) if name == "trim" else ([], args)
            ffmpeg(*pre, "-i", str(base), *post, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                   str(src / f"s{k:02d}_{name}.mp4"))
    out = tmp / "dedup_out"
    vidprep("split", src, "-o", out, "--clip-seconds", "4", "--fps", "5")
    started = time.monotonic()
    vidprep("dedup", out)
    seconds = time.monotonic() - started
    records = [json.loads(line) for line in (out / "duplicates.jsonl").read_text().splitlines()]
    return {**pair_scores(records, len(sources) * (1 + len(TRANSFORMS))), "dedup_s": round(seconds, 2)}


def pair_scores(records: list[dict], clips: int) -> dict:
    """Pair-level precision/recall of predicted groups against 'same source' (clip 0 of each video)."""
    group = {r["video_id"]: r["group"] for r in records if r["clip_index"] == 0}
    names = sorted(group)
    predicted = {(a, b) for i, a in enumerate(names) for b in names[i + 1:] if group[a] == group[b]}
    truth_size = (clips // (1 + len(TRANSFORMS))) * (1 + len(TRANSFORMS)) * len(TRANSFORMS) // 2
    correct = {(a, b) for a, b in predicted if a[:3] == b[:3]}
    return {"true_pairs": truth_size, "predicted_pairs": len(predicted), "correct_pairs": len(correct),
            "recall": round(len(correct) / truth_size, 4),
            "precision": round(len(correct) / len(predicted), 4) if predicted else 1.0}


def bench_scale(n: int, seed: int = 0) -> dict:
    from vidprep.stages.dedup import candidate_pairs, groups, pair_similarity

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    sigs = np.repeat(base[:, None], 8, axis=1) ^ flips(rng, (n, 8), 3)
    planted = rng.choice(n, n // 20, replace=False)
    origin = (planted + 1 + rng.integers(0, n - 1, len(planted))) % n
    sigs[planted] = sigs[origin] ^ flips(rng, (len(planted), 8), 6, low=2)
    started = time.monotonic()
    cand = candidate_pairs(sigs)
    sims = pair_similarity(sigs, cand, 12)
    labels = groups(n, cand[sims >= 0.5])
    seconds = time.monotonic() - started
    found = float(np.mean(labels[planted] == labels[origin]))
    return {"clips": n, "candidates": int(len(cand)), "seconds": round(seconds, 2), "planted_found": round(found, 4)}


def flips(rng: np.random.Generator, shape: tuple, high: int, low: int = 0) -> np.ndarray:
    """uint64 masks with between ``low`` and ``high`` random bits set."""
    count = rng.integers(low, high + 1, shape)
    bits = rng.random((*shape, 64)).argsort(axis=-1) < count[..., None]
    return np.packbits(bits, axis=-1).view(">u8")[..., 0].astype(np.uint64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sources, shorter video, smaller scale row")
    args = parser.parse_args()
    MEDIA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=MEDIA) as name:  # under benchmarks/media (git-ignored)
        tmp = Path(name)
        classes = bench_classes(tmp)
        overhead = bench_overhead(tmp, 10 if args.quick else 20, 2 if args.quick else 3)
        dedup = bench_dedup(tmp, SOURCES[:6] if args.quick else SOURCES)
    scale = bench_scale(20_000 if args.quick else 100_000)
    accuracy = sum(r["ok"] for r in classes) / len(classes)
    report("curation_classes", list(classes[0]), classes, {"accuracy": accuracy})
    report("curation_overhead", list(overhead[0]), overhead)
    report("curation", ["row", "value"], [
        {"row": "class accuracy (target 1.0)", "value": accuracy},
        *({"row": f"metrics overhead, {r['case']} (target <= 1.10)", "value": r["ratio"]} for r in overhead),
        *({"row": f"metrics CPU overhead, {r['case']}", "value": r["cpu_ratio"]} for r in overhead),
        {"row": "dedup recall (target >= 0.95)", "value": dedup["recall"]},
        {"row": "dedup precision (target >= 0.99)", "value": dedup["precision"]},
        {"row": f"tier-1 grouping of {scale['clips']} signatures, s (target < 60)", "value": scale["seconds"]},
        {"row": "planted duplicates found", "value": scale["planted_found"]},
    ], {"classes": classes, "overhead": overhead, "dedup": dedup, "scale": scale})


if __name__ == "__main__":
    main()
